#!/usr/bin/env bash
# Reproduces vlmkit's built-in model (models/vlmkit-shapes) from nothing but this repository: the tokenizer, the
# generated data, the from-scratch run of recipes/builtin/recipe.json (phase 1), the fine-tuning of its model on new
# pictures with recipes/builtin/phase2.json (phase 2), then on new pictures mixed with motion clips (videos) with
# recipes/builtin/phase3.json (phase 3), then the held-out evaluation. Every step is deterministic by
# seed. Extra arguments go to both training commands (e.g. --resume after an interruption).
set -euo pipefail
cd "$(dirname "$0")/.."
vlmkit() { node bin/vlmkit.js "$@"; }

# 1. the tokenizer files of the recipe (byte-level BPE learned from the generators' text; identical on every run)
vlmkit data tokenizer --out runs/builtin-data/tokenizer --force
for f in tokenizer.json tokenizer_config.json chat_template.jinja; do
  cmp -s "runs/builtin-data/tokenizer/$f" "recipes/builtin/$f" || { echo "recipes/builtin/$f differs from the rebuilt one" >&2; exit 1; }
done

# 2. the data: 40,000 scenes of 128 px, 5 questions each, split 0.8/0.1/0.1 by seed; a training row is one
#    image's 5 questions as a conversation; the validation loss during the run is taken on its first 1,000 rows
[ -f runs/builtin-data/shapes/dataset.json ] || vlmkit data shapes --n 40000 --seed 1 --size 128 --questions 5 --conversation --out runs/builtin-data/shapes
head -n 1000 runs/builtin-data/shapes/validation.jsonl > runs/builtin-data/shapes/validation-1000.jsonl

# 3. the run (progress on stderr, metrics in runs/builtin/metrics.jsonl); the model lands in runs/builtin/model
vlmkit train pretrain --recipe recipes/builtin/recipe.json "$@"

# 4. phase 2: the phase-1 model fine-tuned (every weight) on 32,000 new pictures of another seed
[ -f runs/builtin-data/shapes-2/dataset.json ] || vlmkit data shapes --n 40000 --seed 2 --size 128 --questions 5 --conversation --out runs/builtin-data/shapes-2
vlmkit train sft --config recipes/builtin/phase2.json "$@"

# 5. phase 3: the phase-2 model fine-tuned (every weight) on 29,000 new pictures of a third seed mixed with 3,000
#    motion clips (2-second videos made with ffmpeg; the model takes 2 sampled frames of each as images)
[ -f runs/builtin-data/shapes-3/dataset.json ] || vlmkit data shapes --n 60000 --seed 3 --size 128 --questions 5 --conversation --split 0.96,0.02,0.02 --out runs/builtin-data/shapes-3
[ -f runs/builtin-data/motion/dataset.json ] || vlmkit data motion --n 7500 --seed 4 --size 128 --out runs/builtin-data/motion
mkdir -p runs/builtin-data/phase3
npx tsx scripts/mix-rows.ts runs/builtin-data/phase3/train.jsonl runs/builtin-data/motion/train.jsonl:3000 runs/builtin-data/shapes-3/train.jsonl:29000
vlmkit train sft --config recipes/builtin/phase3.json "$@"

# 6. held-out evaluation: exact match on the first 2,000 test questions with a text answer, box IoU on the first
#    400 grounding questions (the test split's pictures were never trained on, in any phase), exact match on the
#    first 300 of the 1,500 motion test clips (never trained on either; each clip runs ffprobe and ffmpeg, so 300
#    keep this to minutes)
d=runs/builtin-data/shapes
grep -v -m 2000 '"category":"grounding"' $d/test.jsonl > $d/test-qa-2000.jsonl
grep -m 400 '"category":"grounding"' $d/test.jsonl > $d/test-grounding-400.jsonl
vlmkit eval --model runs/builtin-3/model --data $d/test-qa-2000.jsonl --metric exact --batch-size 16 --out runs/builtin-3/eval-qa.json
vlmkit eval --model runs/builtin-3/model --data $d/test-grounding-400.jsonl --metric iou --batch-size 16 --out runs/builtin-3/eval-grounding.json
head -n 300 runs/builtin-data/motion/test.jsonl > runs/builtin-data/motion/test-300.jsonl
vlmkit eval --model runs/builtin-3/model --data runs/builtin-data/motion/test-300.jsonl --metric exact --batch-size 16 --out runs/builtin-3/eval-motion.json

# 7. the model folder with its card (models/vlmkit-shapes/README.md, written from the numbers above, with the loss
#    curve of every phase)
npx tsx scripts/builtin-card.ts runs/builtin,runs/builtin-2,runs/builtin-3 runs/builtin-3/model models/vlmkit-shapes
