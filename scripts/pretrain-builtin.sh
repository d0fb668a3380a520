#!/usr/bin/env bash
# Reproduces vlmkit's built-in model (models/vlmkit-shapes) from nothing but this repository: the tokenizer, the
# vision tower trained alone on per-patch labels (recipes/builtin/vision.json), the generated data, the run of
# recipes/builtin/recipe.json (the projection and decoder from a random initialisation on the frozen tower), the
# held-out evaluation and the model card. Every step is deterministic by seed. Extra arguments go to the training
# command (e.g. --resume after an interruption). About 3 hours on 2 quiet cores: the tower 31 min, the motion
# clips 30 min (ffmpeg), the rest of the data 10 min, the run 2 h.
# (The previous model's three-phase pipeline, recipes/builtin/phase1-3.json: git show 125062b:scripts/pretrain-builtin.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
vlmkit() { node bin/vlmkit.js "$@"; }

# 1. the tokenizer files of the recipe (byte-level BPE learned from the generators' text; identical on every run)
vlmkit data tokenizer --out runs/builtin-data/tokenizer --force
for f in tokenizer.json tokenizer_config.json chat_template.jinja; do
  cmp -s "runs/builtin-data/tokenizer/$f" "recipes/builtin/$f" || { echo "recipes/builtin/$f differs from the rebuilt one" >&2; exit 1; }
done

# 2. the vision tower, alone: per-patch kind, colour and part of the box on pictures made as the batches are
#    (metrics.jsonl beside it, read by the model card)
mkdir -p runs/builtin-vision
[ -f runs/builtin-vision/tower/model.safetensors ] || npx tsx scripts/pretrain-vision.ts --recipe recipes/builtin/vision.json --out runs/builtin-vision/tower > runs/builtin-vision/metrics.jsonl

# 3. the data: 40,000 scenes of 128 px, 5 questions each, split 0.8/0.1/0.1 by seed (a training row is one
#    image's 5 questions as a conversation; the validation loss during the run is taken on its first 1,000 rows),
#    and 3,750 motion clips (2-second videos made with ffmpeg; 3,000 train, 750 test), of which the first 1,500
#    training clips go in as the 2 frames the model samples of each, written once as pictures
[ -f runs/builtin-data/shapes/dataset.json ] || vlmkit data shapes --n 40000 --seed 1 --size 128 --questions 5 --conversation --out runs/builtin-data/shapes
head -n 1000 runs/builtin-data/shapes/validation.jsonl > runs/builtin-data/shapes/validation-1000.jsonl
[ -f runs/builtin-data/motion/dataset.json ] || vlmkit data motion --n 3750 --seed 4 --size 128 --out runs/builtin-data/motion
[ -f runs/builtin-data/motion-frames/dataset.json ] || npx tsx scripts/video-rows-as-frames.ts recipes/builtin runs/builtin-data/motion/train.jsonl:1500 runs/builtin-data/motion-frames
mkdir -p runs/builtin-data/mix
npx tsx scripts/mix-rows.ts runs/builtin-data/mix/train.jsonl runs/builtin-data/shapes/train.jsonl:32000 runs/builtin-data/motion-frames/train.jsonl:1500

# 4. the run (progress on stderr, metrics in runs/builtin/metrics.jsonl); the model lands in runs/builtin/model
vlmkit train pretrain --recipe recipes/builtin/recipe.json "$@"

# 5. held-out evaluation: exact match on the first 2,000 test questions with a text answer, box IoU on the first
#    400 grounding questions (the test split's pictures were never trained on), exact match on the first 300 of the
#    750 motion test clips, read as videos (ffprobe and ffmpeg for each clip, so 300 keep this to minutes)
d=runs/builtin-data/shapes
grep -v -m 2000 '"category":"grounding"' $d/test.jsonl > $d/test-qa-2000.jsonl
grep -m 400 '"category":"grounding"' $d/test.jsonl > $d/test-grounding-400.jsonl
vlmkit eval --model runs/builtin/model --data $d/test-qa-2000.jsonl --metric exact --batch-size 16 --out runs/builtin/eval-qa.json
vlmkit eval --model runs/builtin/model --data $d/test-grounding-400.jsonl --metric iou --batch-size 16 --out runs/builtin/eval-grounding.json
head -n 300 runs/builtin-data/motion/test.jsonl > runs/builtin-data/motion/test-300.jsonl
vlmkit eval --model runs/builtin/model --data runs/builtin-data/motion/test-300.jsonl --metric exact --batch-size 16 --out runs/builtin/eval-motion.json

# 6. the model folder with its card (models/vlmkit-shapes/README.md, written from the numbers above, the tower's
#    included, with the loss curve)
npx tsx scripts/builtin-card.ts runs/builtin runs/builtin/model models/vlmkit-shapes
