#!/usr/bin/env bash
# On the GPU box, from the repository root (the device tool's command): train the embedded
# model with the gpu-8min recipe and put the bundle's parts in $OUT (at most 8 files of at most
# 16 MiB). Needs what engine/training/gpu_prepare.sh wrote here (.whl, .train-data).
#   Back here: python -m engine.training.bundle unpack <files_at> --into .   then review, commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
work=/tmp/sfumato-gpu
time python3 -m engine.training.train --recipe gpu-8min --work "$work" \
  --dataset-archive .train-data/sprites.npz "$@"
out="${OUT:-$work/out}"  # $OUT: what the device tool brings back
mkdir -p "$out" && cp "$work"/bundle/* "$out"/
python3 -c "import json,sys; m=json.load(open('$work/export/resources/models/sfumato-tiny/training-logs/metrics.json')); print(json.dumps({k: (v['value'], v['passed']) for k, v in m['targets'].items()}), 'passed:', m['passed'])"
