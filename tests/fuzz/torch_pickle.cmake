# ---- clihelp branch: the unpickler's fuzz harness (issue 17, must-show 4) -------------------
# For the lead to reconcile with the `fuzz` branch's tests/fuzz/CMakeLists.txt: add
# `torch_pickle` to ALLMREC_FUZZ_HARNESSES there (the loop then builds test_fuzz_torch_pickle,
# replaying seeds/torch_pickle/ in every build, and with ALLMREC_FUZZ=ON the libFuzzer binary
# fuzz_torch_pickle). The harness needs nothing of fuzz_util.c (it reads no files), so it builds
# with that loop as is. Until then this file is not included by any CMakeLists.txt.
# Seeds (seeds/torch_pickle/): torch.save files from tests/fixtures/torch_pickle prefixed with
# byte 0x00 (the zip entry point), and their data.pkl prefixed with 0x01 (the bare unpickler).
