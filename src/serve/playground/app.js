// The playground's logic: one image (picked, dropped or pasted) and a question go to POST /v1/chat/completions
// with stream: true; the answer is shown as its server-sent events arrive. Plain browser JavaScript, no
// libraries: the page must work with no network beyond the server that serves it.
const $ = (id) => document.getElementById(id);
const answer = $('answer');
const errorBox = $('error');
const stats = $('stats');
let imageUrl = null; // the picked image as a data: URL
let modelId = null;
let running = null; // the AbortController of the request in flight

async function loadModel() {
  try {
    const res = await fetch('/v1/models');
    const body = await res.json();
    if (!res.ok) throw new Error(body?.error?.message ?? `GET /v1/models answered HTTP ${res.status}`);
    modelId = body.data[0].id;
    $('model').textContent = `model: ${modelId}`;
  } catch (e) {
    showError(`cannot list the model: ${e.message}`);
  }
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function setImage(file) {
  if (!file) return;
  if (!file.type.startsWith('image/')) {
    showError(`${file.name || 'the pasted item'} is not an image; pick a PNG, JPEG, GIF or WebP file`);
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    imageUrl = reader.result;
    $('preview').src = imageUrl;
    $('preview').hidden = false;
    $('drop-hint').hidden = true;
    $('clear-image').hidden = false;
    errorBox.hidden = true;
  };
  reader.onerror = () => showError(`cannot read ${file.name}: ${reader.error?.message}`);
  reader.readAsDataURL(file);
}

function clearImage() {
  imageUrl = null;
  $('preview').hidden = true;
  $('preview').removeAttribute('src');
  $('drop-hint').hidden = false;
  $('clear-image').hidden = true;
  $('file').value = '';
}

/** The request body from the form; empty number fields are left out (the server's defaults). */
function requestBody() {
  const question = $('question').value.trim() || $('question').placeholder;
  const content = [];
  if (imageUrl) content.push({ type: 'image_url', image_url: { url: imageUrl } });
  content.push({ type: 'text', text: question });
  const body = { model: modelId, messages: [{ role: 'user', content }], stream: true, stream_options: { include_usage: true } };
  const num = (id, key, int) => {
    const v = $(id).value.trim();
    if (v !== '') body[key] = int ? parseInt(v, 10) : parseFloat(v);
  };
  num('temperature', 'temperature', false);
  num('top-p', 'top_p', false);
  num('max-tokens', 'max_tokens', true);
  num('seed', 'seed', true);
  return body;
}

/** Yields the data of each server-sent event of `res` until [DONE]. */
async function* events(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data === '[DONE]') return;
      if (data) yield JSON.parse(data);
    }
  }
}

async function send(ev) {
  ev.preventDefault();
  if (running || !modelId) return;
  errorBox.hidden = true;
  answer.textContent = '';
  answer.className = 'streaming';
  answer.dataset.state = 'streaming';
  stats.textContent = '';
  $('send').disabled = true;
  $('stop').disabled = false;
  running = new AbortController();
  const t0 = performance.now();
  let tFirst = null;
  let pieces = 0;
  let usage = null;
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(requestBody()), signal: running.signal,
    });
    if (!res.ok) {
      // an OpenAI error body; anything else is shown as its status
      const text = await res.text();
      let message = `HTTP ${res.status}`;
      try { message = JSON.parse(text).error.message ?? message; } catch { /* not JSON */ }
      throw new Error(message);
    }
    for await (const chunk of events(res)) {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const piece = chunk.choices?.[0]?.delta?.content;
      if (piece) {
        tFirst ??= performance.now();
        pieces++;
        answer.textContent += piece;
      }
    }
    answer.dataset.state = 'done';
    const secs = (performance.now() - (tFirst ?? t0)) / 1000;
    const tokens = usage?.completion_tokens ?? pieces;
    const ttft = tFirst === null ? '' : `first token after ${((tFirst - t0) / 1000).toFixed(2)} s · `;
    stats.textContent = `${ttft}${tokens} tokens · ${secs > 0 ? (tokens / secs).toFixed(1) : '–'} tokens/s`;
  } catch (e) {
    answer.dataset.state = 'error';
    showError(e.name === 'AbortError' ? 'stopped' : e.message);
  } finally {
    answer.className = '';
    running = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

$('ask').addEventListener('submit', send);
$('question').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) send(e);
});
$('stop').addEventListener('click', () => running?.abort());
$('file').addEventListener('change', () => setImage($('file').files[0]));
$('clear-image').addEventListener('click', clearImage);
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  setImage(e.dataTransfer.files[0]);
});
document.addEventListener('paste', (e) => {
  const item = [...e.clipboardData.items].find((i) => i.kind === 'file');
  if (item) setImage(item.getAsFile());
});
loadModel();
