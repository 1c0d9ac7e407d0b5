# ---- clihelp branch: the unpickler's fuzz harness (issue 17, must-show 4) -------------------
# For the lead to reconcile with the `fuzz` branch's tests/fuzz/CMakeLists.txt: add
# `torch_pickle` to ALLMREC_FUZZ_HARNESSES there (the loop then builds test_fuzz_torch_pickle,
# replaying seeds/torch_pickle/ in every build, and with ALLMREC_FUZZ=ON the libFuzzer binary
# fuzz_torch_pickle). The harness needs nothing of fuzz_util.c (it reads no files), so it builds
# with that loop as is. Until then this file is not included by any CMakeLists.txt.
# Seeds (seeds/torch_pickle/): torch.save files from tests/fixtures/torch_pickle prefixed with
# byte 0x00 (the zip entry point), and their data.pkl prefixed with 0x01 (the bare unpickler).
# Checked on the clihelp branch (17:00-18:05 UTC, 2026-12-04): built with clang -fsanitize=fuzzer,
# address,undefined against torch_pickle.c alone; the first campaign found one UBSan report
# (null + 0 on an empty MARK; fixed, input in regressions/torch_pickle/); then about 1.2 million
# runs (three campaigns of 5-10 minutes, coverage 551 edges) found nothing; the seeds and the
# regression replay clean through the fuzz branch's replay_main.c + fuzz_util.c under gcc ASan/UBSan.
