# gpu_common.sh: sourced by bench/gpu_prebuild.sh and bench/gpu_check.sh.
# source_tree_hash: a hash of every source file a build reads, computed the
# same way on the development machine and on the GPU machine (which receives
# the working tree without .git), so a carried build is used only for the very
# sources it was built from.
source_tree_hash() {
    ( cd "$1" && find csrc kernels include tests bench CMakeLists.txt -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.tmp.*' ! -name '*.md' -print0 \
        | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16 )
}
