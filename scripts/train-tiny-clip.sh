#!/usr/bin/env bash
# Reproduces the tiny CLIP of recipes/tiny-clip: the generated one-object scenes, the from-scratch contrastive run
# of recipes/tiny-clip/recipe.json and its continuation recipe-2.json, then the zero-shot evaluation on the
# held-out test split against all 48 colour x shape labels. Deterministic by seed. Extra arguments go to both
# `vlmkit train contrastive` runs (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
vlmkit() { node bin/vlmkit.js "$@"; }

# 1. the data: 3,600 one-object scenes of 64 px, split 0.8/0.05/0.15 by seed (2,880 train, 180 validation, 540 test)
[ -f runs/tiny-clip-data/dataset.json ] || vlmkit data objects --n 3600 --seed 1 --split 0.8,0.05,0.15 --out runs/tiny-clip-data

# 2. stage 1 from a random initialisation (progress on stderr, metrics in runs/tiny-clip/metrics.jsonl; the model
#    lands in runs/tiny-clip/model), then stage 2 from it (runs/tiny-clip-2/model)
[ -f runs/tiny-clip/model/model.safetensors ] || vlmkit train contrastive --recipe recipes/tiny-clip/recipe.json "$@"
node --import tsx scripts/eval-contrastive.ts --model runs/tiny-clip/model --data runs/tiny-clip-data/test.jsonl --out runs/tiny-clip/eval-test.json
vlmkit train contrastive --recipe recipes/tiny-clip/recipe-2.json "$@"

# 3. held-out zero-shot accuracy over every "a {colour} {shape}" label (the test pictures were never trained on)
node --import tsx scripts/eval-contrastive.ts --model runs/tiny-clip-2/model --data runs/tiny-clip-data/test.jsonl --out runs/tiny-clip-2/eval-test.json
