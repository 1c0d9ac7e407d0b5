#!/usr/bin/env bash
# gpu_prebuild.sh: build, on the development machine (no GPU needed), everything
# bench/gpu_check.sh runs on the lent GPU machine, so that its minutes go to
# running, not compiling. Run from the repository root:
#
#     bash bench/gpu_prebuild.sh
#
# It configures build-gpu for sm_90 (H100/H200; ALLMREC_GPU_ARCHS overrides),
# builds the `gpu`-labelled tests, the CUDA-capable benches and the CLI, and
# packs them with the CTest files into .gpu-carry/gpubin.tar.xz (about 17 MB:
# the executables share most of their bytes); it also fetches the libraries
# the GPU machine lacks into .gpu-deps (../shared/tools/gpu-carry-deps.sh).
# It also copies the tokenizers of ../shared/data that GPU tests and benches read.
# Both folders are git-ignored; pass them to the device tool's `carry`:
#     carry: [".gpu-carry", ".gpu-deps"]
# gpu_check.sh unpacks the build when the packed source commit matches the
# checkout's and every library it needs resolves there; else it builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/bench/gpu_common.sh"
BUILD=$ROOT/build-gpu
ARCHS=${ALLMREC_GPU_ARCHS:-90}
cmake -S "$ROOT" -B "$BUILD" -DALLMREC_CUDA_ARCHS="$ARCHS" -DCMAKE_BUILD_TYPE=Release >/dev/null
GPU_TESTS=$(cd "$BUILD" && ctest -L gpu -N | sed -nE 's/^ *Test +#[0-9]+: +([A-Za-z0-9_]+).*/\1/p' | sort -u)
# test executables are named after the test; the SASRec CUDA step check lives in test_sasrec_grad
TARGETS="allmrec_cli test_sasrec_grad $GPU_TESTS bench_ceilings bench_attention bench_layernorm \
bench_xent bench_ops bench_sasrec_step bench_bert_step bench_tokenize bench_opt bench_stage2_step bench_tallrec_step bench_llm_infer \
bench_recformer_step"
cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target $TARGETS
mkdir -p .gpu-carry
cd "$BUILD"
FILES=$(for t in $TARGETS; do f=$(find . -path ./CMakeFiles -prune -o -type f -perm -u+x \( -name "$t" -o -name allmrec \) -print); echo "$f"; done | sort -u)
{
    echo "source_dir=$ROOT"
    echo "build_dir=$BUILD"
    echo "commit=$(git -C "$ROOT" rev-parse --short HEAD)"
    echo "tree=$(source_tree_hash "$ROOT")"
    echo "archs=$ARCHS"
    echo "built=$(date -u +%FT%TZ)"
} > gpubin.manifest
tar cf - gpubin.manifest $FILES $(find . -name CTestTestfile.cmake) | xz -T"${JOBS:-$(nproc)}" -6 > "$ROOT/.gpu-carry/gpubin.tar.xz"
cp gpubin.manifest "$ROOT/.gpu-carry/"
cd "$ROOT"
[ -d .gpu-deps/usr ] || bash ../shared/tools/gpu-carry-deps.sh .gpu-deps >/dev/null
# the small parts of ../shared the GPU tests and benches read (../shared does not travel):
# gpu_check.sh links them where the build expects ../shared
for d in tokenizer_gpt2_opt tokenizer_bert_uncased; do
    if [ -d "../shared/data/$d" ]; then
        mkdir -p .gpu-carry/shared/data && rm -rf ".gpu-carry/shared/data/$d" && cp -r "../shared/data/$d" .gpu-carry/shared/data/
    fi
done
du -sh .gpu-carry .gpu-deps
cat .gpu-carry/gpubin.manifest
