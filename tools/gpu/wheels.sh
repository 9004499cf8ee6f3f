#!/usr/bin/env bash
# The Python packages the lent GPU machine lacks for `facenet train --backend jax` (it has JAX,
# h5py, rich, absl-py, ml-dtypes, numpy, pillow, click, tqdm), as CPython 3.12 x86-64 wheels in
# .whl/ (about 2.9 MB), for `run(..., carry=[".whl", ...])`; run.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
rm -rf .whl && mkdir .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
ls -la .whl
