// The playground's logic: one image (picked, dropped or pasted) and a question go to POST /v1/chat/completions
// with stream: true; the answer is shown as its server-sent events arrive, without its location tokens, and the
// boxes they make are drawn on the image with their labels (the raw text stays under "raw text"). Plain browser
// JavaScript, no libraries: the page must work with no network beyond the server that serves it.
import { answerBoxes, streamingText, stripLocTokens } from './grounding.js';

const $ = (id) => document.getElementById(id);
const answer = $('answer');
const raw = $('raw');
const preview = $('preview');
const boxesLayer = $('boxes');
const BOX_COLOURS = ['#e8365d', '#2f6fde', '#1e9e5a', '#d9820b', '#8b4fd6'];
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
    clearBoxes();
    preview.src = imageUrl;
    preview.hidden = false;
    $('drop-hint').hidden = true;
    $('clear-image').hidden = false;
    errorBox.hidden = true;
  };
  reader.onerror = () => showError(`cannot read ${file.name}: ${reader.error?.message}`);
  reader.readAsDataURL(file);
}

/** Shows the image as large as the pane allows (small pictures scaled up), its aspect ratio kept. */
function fitPreview() {
  const scale = Math.min(($('drop').clientWidth - 8) / preview.naturalWidth, 420 / preview.naturalHeight);
  preview.style.width = `${preview.naturalWidth * scale}px`;
  preview.style.height = `${preview.naturalHeight * scale}px`;
}

function clearBoxes() {
  boxesLayer.replaceChildren();
}

/**
 * One frame per box over the image, placed in fractions of it (so it stays on the object at any display size);
 * data-x0.. hold the box in the image's own pixels, as `vlmkit ask --json` prints it.
 */
function drawBoxes(text) {
  clearBoxes();
  if (!imageUrl || !preview.naturalWidth) return;
  answerBoxes(text, preview.naturalWidth, preview.naturalHeight).forEach((b, i) => {
    const el = document.createElement('div');
    el.className = b.v0 < 0.08 ? 'box low' : 'box'; // a box at the top edge gets its label inside
    el.style.setProperty('--c', BOX_COLOURS[i % BOX_COLOURS.length]);
    el.style.left = `${b.u0 * 100}%`;
    el.style.top = `${b.v0 * 100}%`;
    el.style.width = `${(b.u1 - b.u0) * 100}%`;
    el.style.height = `${(b.v1 - b.v0) * 100}%`;
    for (const k of ['x0', 'y0', 'x1', 'y1']) el.dataset[k] = String(b[k]);
    el.dataset.label = b.label;
    if (b.label) {
      const label = document.createElement('span');
      label.className = 'box-label';
      label.textContent = b.label;
      el.append(label);
    }
    boxesLayer.append(el);
  });
}

function clearImage() {
  imageUrl = null;
  clearBoxes();
  preview.hidden = true;
  preview.removeAttribute('src');
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
  raw.textContent = '';
  clearBoxes();
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
  let text = '';
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
        text += piece;
        raw.textContent = text;
        answer.textContent = streamingText(text);
      }
    }
    answer.textContent = stripLocTokens(text);
    drawBoxes(text);
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
preview.addEventListener('load', fitPreview);
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
