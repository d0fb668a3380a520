#!/usr/bin/env bash
# Reproduces vlmkit's built-in model (models/vlmkit-shapes) from nothing but this repository: the tokenizer, the
# vision tower trained alone on per-patch labels (recipes/builtin/vision.json), the generated data, the run of
# recipes/builtin/recipe.json (the projection and decoder from a random initialisation on the frozen tower), the
# tower trained on with the box heads (recipes/builtin/vision-box.json), the second phase on it
# (recipes/builtin/recipe-box.json), the third with the tower unfrozen (recipes/builtin/recipe-unfrozen.json), the
# fourth on pictures asked more of the questions that bind a name to an object (recipes/builtin/recipe-binding.json),
# the held-out evaluation and the model card. Every step is deterministic by seed. Extra arguments go to the training
# commands (e.g. --resume after an interruption). About 7 hours on 2 quiet cores: the towers 31 + 20 min, the
# motion clips 30 min (ffmpeg), the rest of the data 25 min, the four phases 1 h 50 min (at 1.85 s a step; 1.1-1.5 s
# since rows are packed), 1 h 58 min (4,500 steps), 1 h 31 min (2,600 steps at 2.1 s: the tower's backward too) and
# about 1 h 30 min (2,400 steps).
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

# 4. phase 1 (progress on stderr, metrics in runs/builtin/metrics.jsonl); the model lands in runs/builtin/model
vlmkit train pretrain --recipe recipes/builtin/recipe.json "$@"

# 5. phase 2: the tower trained on with the box heads (every patch of an object learns that object's box edges),
#    then the phase-1 model on it, on new pictures (seed 2) mixed with the same 1,500 motion clips twice; the model
#    lands in runs/builtin-box/model
mkdir -p runs/builtin-vision-box
[ -f runs/builtin-vision-box/tower/model.safetensors ] || npx tsx scripts/pretrain-vision.ts --recipe recipes/builtin/vision-box.json --out runs/builtin-vision-box/tower > runs/builtin-vision-box/metrics.jsonl
[ -f runs/builtin-data/shapes-2/dataset.json ] || vlmkit data shapes --n 40000 --seed 2 --size 128 --questions 5 --conversation --out runs/builtin-data/shapes-2
mkdir -p runs/builtin-data/mix-box
npx tsx scripts/mix-rows.ts runs/builtin-data/mix-box/train.jsonl runs/builtin-data/shapes-2/train.jsonl:32000 runs/builtin-data/motion-frames/train.jsonl:1500 runs/builtin-data/motion-frames/train.jsonl:1500
vlmkit train sft --config recipes/builtin/recipe-box.json "$@"

# 6. phase 3: all of the phase-2 model trained on, its tower unfrozen at half the lr, on new pictures (seed 3) asked
#    more often the question types it got wrong most, mixed with the motion clips once; the model lands in
#    runs/builtin-unfrozen/model
[ -f runs/builtin-data/shapes-3/dataset.json ] || vlmkit data shapes --n 40000 --seed 3 --size 128 --questions 5 --conversation --weights grounding=3,size=2.5,color=2,count_kind=1.3 --out runs/builtin-data/shapes-3
mkdir -p runs/builtin-data/mix-3
npx tsx scripts/mix-rows.ts runs/builtin-data/mix-3/train.jsonl runs/builtin-data/shapes-3/train.jsonl:32000 runs/builtin-data/motion-frames/train.jsonl:1500
vlmkit train sft --config recipes/builtin/recipe-unfrozen.json "$@"

# 7. phase 4: all of the phase-3 model again, the tower at half the lr, on new pictures (seed 13) asked up to two
#    questions a picture of each type that names one object and reads another of its properties (colour of a kind,
#    which is larger, position, a box) and more captions, with the motion clips once; the model lands in
#    runs/builtin-binding/model. (The run that made the shipped model started from models/vlmkit-shapes as phase 3
#    left it, the very files of runs/builtin-unfrozen/model, and took its clips from `vlmkit data motion --n 1875
#    --seed 4`, whose 1,500 training clips are the first 1,500 of the 3,000 above: a clip is drawn from its own
#    stream of the seed.)
[ -f runs/builtin-data/shapes-13/dataset.json ] || vlmkit data shapes --n 32000 --seed 13 --size 128 --questions 6 --conversation --split 1,0,0 --repeat grounding=2,position=2,color=2,size=2 --weights caption=2.5,grounding=2,size=2.5,color=2.5,count_kind=1.3,count_color_kind=1.3,count_total=0.6,presence=0.6 --out runs/builtin-data/shapes-13
mkdir -p runs/builtin-data/mix-13
npx tsx scripts/mix-rows.ts runs/builtin-data/mix-13/train.jsonl runs/builtin-data/shapes-13/train.jsonl:32000 runs/builtin-data/motion-frames/train.jsonl:1500
vlmkit train sft --config recipes/builtin/recipe-binding.json "$@"
# the shipped model is the average of phase 3's model and phase 4's end, half each (WiSE-FT): phase 4's end gains more
# on the generator's pictures but names a colour wrong on a picture drawn by other means, the average does not
npx tsx scripts/average-models.ts runs/builtin-unfrozen/model runs/builtin-binding/model 0.5 runs/builtin-binding/model-avg

# 8. held-out evaluation: exact match on the first 2,000 test questions with a text answer, box IoU on the first
#    400 grounding questions (the test split's pictures were never trained on), exact match on the first 300 of the
#    750 motion test clips, read as videos (ffprobe and ffmpeg for each clip, so 300 keep this to minutes)
d=runs/builtin-data/shapes
grep -v -m 2000 '"category":"grounding"' $d/test.jsonl > $d/test-qa-2000.jsonl
grep -m 400 '"category":"grounding"' $d/test.jsonl > $d/test-grounding-400.jsonl
m=runs/builtin-binding/model-avg
vlmkit eval --model $m --data $d/test-qa-2000.jsonl --metric exact --batch-size 16 --out runs/builtin-binding/eval-qa.json
vlmkit eval --model $m --data $d/test-grounding-400.jsonl --metric iou --batch-size 16 --out runs/builtin-binding/eval-grounding.json
head -n 300 runs/builtin-data/motion/test.jsonl > runs/builtin-data/motion/test-300.jsonl
vlmkit eval --model $m --data runs/builtin-data/motion/test-300.jsonl --metric exact --batch-size 16 --out runs/builtin-binding/eval-motion.json

# 9. the model folder with its card (models/vlmkit-shapes/README.md, written from the numbers above, the tower's
#    included, with the loss curve)
npx tsx scripts/builtin-card.ts runs/builtin,runs/builtin-box,runs/builtin-unfrozen,runs/builtin-binding $m models/vlmkit-shapes --average 0.5
