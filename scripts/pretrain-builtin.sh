#!/usr/bin/env bash
# Reproduces vlmkit's built-in model (models/vlmkit-shapes) from nothing but this repository: the tokenizer, the
# vision tower trained alone on per-patch labels (recipes/builtin/vision.json), the generated data, the run of
# recipes/builtin/recipe.json (the projection and the decoder from a random initialisation on the frozen tower, on
# shapes conversations mixed with motion clips), then the held-out evaluation and the model card. Every step is
# deterministic by seed. Extra arguments go to the training command (e.g. --resume after an interruption).
set -euo pipefail
cd "$(dirname "$0")/.."
vlmkit() { node bin/vlmkit.js "$@"; }

# 1. the tokenizer files of the recipe (byte-level BPE learned from the generators' text; identical on every run)
vlmkit data tokenizer --out runs/builtin-data/tokenizer --force
for f in tokenizer.json tokenizer_config.json chat_template.jinja; do
  cmp -s "runs/builtin-data/tokenizer/$f" "recipes/builtin/$f" || { echo "recipes/builtin/$f differs from the rebuilt one" >&2; exit 1; }
done

# 2. the vision tower: 1,500 steps of 32 generated pictures, each 8 px patch labelled with the kind and colour of the
#    object over it and the third of its box (progress on stderr; metrics beside the tower, which the card reads)
mkdir -p runs/builtin-vision
[ -f runs/builtin-vision/tower/model.safetensors ] || npx tsx scripts/pretrain-vision.ts --recipe recipes/builtin/vision.json --out runs/builtin-vision/tower > runs/builtin-vision/metrics.jsonl

# 3. the data: 40,000 scenes of 128 px, 5 questions each, split 0.8/0.1/0.1 by seed (a training row is one image's
#    5 questions as a conversation), and 3,750 motion clips (2-second videos made with ffmpeg, split 0.8/0.2; the
#    model takes 2 sampled frames of each as images): the 32,000 training conversations and the first 1,500 training
#    clips, mixed; the validation loss during the run is taken on the first 1,000 validation rows
d=runs/builtin-data
[ -f $d/shapes/dataset.json ] || vlmkit data shapes --n 40000 --seed 1 --size 128 --questions 5 --conversation --out $d/shapes
[ -f $d/motion/dataset.json ] || vlmkit data motion --n 3750 --seed 4 --size 128 --out $d/motion
head -n 1000 $d/shapes/validation.jsonl > $d/shapes/validation-1000.jsonl
mkdir -p $d/phase1
# the clips' rows as the trainer lowers them for this model (their 2 sampled frames as PNG pictures after the frames
# line: the same token ids and pixels, checked), so that a batch does not run ffprobe and ffmpeg for each clip
[ -f $d/motion-frames/train.jsonl ] || npx tsx scripts/video-rows-as-frames.ts recipes/builtin $d/motion/train.jsonl:1500 $d/motion-frames
npx tsx scripts/mix-rows.ts $d/phase1/train.jsonl $d/shapes/train.jsonl $d/motion-frames/train.jsonl

# 4. the run (progress on stderr, metrics in runs/builtin/metrics.jsonl); the model lands in runs/builtin/model
vlmkit train pretrain --recipe recipes/builtin/recipe.json "$@"

# 5. held-out evaluation: exact match on the first 2,000 test questions with a text answer, box IoU on the first
#    400 grounding questions (the test split's pictures were never trained on), exact match on the first 300 of the
#    750 motion test clips (never trained on either; each clip runs ffprobe and ffmpeg, so 300 keep this to minutes)
grep -v -m 2000 '"category":"grounding"' $d/shapes/test.jsonl > $d/shapes/test-qa-2000.jsonl
grep -m 400 '"category":"grounding"' $d/shapes/test.jsonl > $d/shapes/test-grounding-400.jsonl
head -n 300 $d/motion/test.jsonl > $d/motion/test-300.jsonl
vlmkit eval --model runs/builtin/model --data $d/shapes/test-qa-2000.jsonl --metric exact --batch-size 16 --out runs/builtin/eval-qa.json
vlmkit eval --model runs/builtin/model --data $d/shapes/test-grounding-400.jsonl --metric iou --batch-size 16 --out runs/builtin/eval-grounding.json
vlmkit eval --model runs/builtin/model --data $d/motion/test-300.jsonl --metric exact --batch-size 16 --out runs/builtin/eval-motion.json

# 6. the model folder with its card (models/vlmkit-shapes/README.md, written from the numbers above: the tower's
#    run, the decoder's loss curve, the held-out results)
npx tsx scripts/builtin-card.ts runs/builtin runs/builtin/model models/vlmkit-shapes
