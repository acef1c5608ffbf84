#!/usr/bin/env bash
# The wheels bench/gpu_suite.py needs on a lent GPU machine whose image lacks them (it has
# torch, transformers, accelerate, opencv, scipy, pytest, aiohttp; no diffusers, FastAPI,
# uvicorn, pydantic, torchsde). Run here, in the repository root, before the device call;
# the call carries .whl (9.6 MB; the tracked tree is ~52 MB of the 64 MB that travels).
# PyAV (35 MB) does not fit and is not needed: the suite's video stage and tests/gpu take
# frames from engine/video/sample_clip.py, not from a file.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl diffusers==0.42.1 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 pydantic==2.14.4 \
  pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 websockets==17.4 \
  platformdirs==4.14.9 torchsde==0.2.6 trampoline==0.1.2 importlib_metadata==10.2.0 \
  annotated-doc==0.0.7 opentelemetry-api==1.45.3
du -sh .whl
