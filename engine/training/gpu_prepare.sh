#!/usr/bin/env bash
# Here (a machine with the `train` extra, the Noto font and PySide6), before a GPU session:
# what engine/training/gpu_run.sh needs on a GPU box that has torch but no diffusers, no fonts,
# no Twemoji and no Qt. Writes two ignored folders that the device tool carries:
#   .whl/        diffusers 0.42.1 and importlib_metadata (pure-Python wheels, ~6.4 MB)
#   .train-data/ sprites.npz, every emoji drawn in both styles at 128 px (~4.9 MB)
# The device tool's call then names them: carry [".whl", ".train-data"].
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl .train-data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform any -d .whl diffusers==0.42.1 importlib_metadata==8.7.0
QT_QPA_PLATFORM=offscreen python3 -m engine.training.dataset --sprite-archive \
  --out .train-data/sprites.npz
du -sh .whl .train-data
