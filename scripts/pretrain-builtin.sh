#!/usr/bin/env bash
# Reproduces vlmkit's built-in model (models/vlmkit-shapes) from nothing but this repository: the tokenizer, the
# generated data, the from-scratch run of recipes/builtin/recipe.json (phase 1), the fine-tuning of its model on new
# pictures with recipes/builtin/phase2.json (phase 2), then the held-out evaluation. Every step is deterministic by
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

# 5. held-out evaluation: exact match on the first 2,000 test questions with a text answer, box IoU on the first
#    400 grounding questions (the test split's pictures were never trained on, in either phase)
d=runs/builtin-data/shapes
grep -v '"category":"grounding"' $d/test.jsonl | head -n 2000 > $d/test-qa-2000.jsonl
grep '"category":"grounding"' $d/test.jsonl | head -n 400 > $d/test-grounding-400.jsonl
vlmkit eval --model runs/builtin-2/model --data $d/test-qa-2000.jsonl --metric exact --batch-size 16 --out runs/builtin-2/eval-qa.json
vlmkit eval --model runs/builtin-2/model --data $d/test-grounding-400.jsonl --metric iou --batch-size 16 --out runs/builtin-2/eval-grounding.json

# 6. the model folder with its card (models/vlmkit-shapes/README.md, written from the numbers above, with the loss
#    curve of both phases)
npx tsx scripts/builtin-card.ts runs/builtin,runs/builtin-2 runs/builtin-2/model models/vlmkit-shapes
