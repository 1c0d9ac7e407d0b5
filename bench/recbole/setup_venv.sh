#!/usr/bin/env bash
# setup_venv.sh: the RecBole 1.2.0 environment of bench/recbole (every step we
# needed on a fresh Debian machine with Python 3.11; README.md says why each).
#   bash bench/recbole/setup_venv.sh [VENV]     (default /work/venv-recbole)
set -euxo pipefail
V=${1:-/work/venv-recbole}
python3 -m venv "$V"
"$V/bin/pip" install --upgrade pip "setuptools<70" wheel
# PyTorch: the CPU-only wheel index (download.pytorch.org) is preferred; where only
# PyPI is reachable its default Linux wheel (CUDA build, runs on the CPU) is used
"$V/bin/pip" install --index-url https://download.pytorch.org/whl/cpu torch || "$V/bin/pip" install torch
"$V/bin/pip" install "numpy<2" "recbole==1.2.0"
# recbole.model.general_recommender imports kmeans_pytorch (LDiffRec) at import time
"$V/bin/pip" install kmeans_pytorch
# h5_to_atomic.py reads our prepared HDF5 datasets
"$V/bin/pip" install h5py
# torch's install lifts setuptools past 70 again; RecBole 1.2.x wants < 70
"$V/bin/pip" install "setuptools<70"
"$V/bin/python" -c "import torch, numpy, recbole; print(torch.__version__, numpy.__version__, recbole.__version__)"
