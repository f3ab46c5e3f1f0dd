#!/bin/sh
# Runs one libFuzzer target briefly for ctest (tests/fuzz/CMakeLists.txt):
#   run_fuzzer.sh run FUZZER SEED_CORPUS_DIR WORK_DIR SECONDS
#   run_fuzzer.sh skip REASON          (the fuzzer cannot be built here; ctest shows Skipped)
# libFuzzer writes the inputs it finds into its first corpus directory and crash reproducers
# into the current one, so both go to WORK_DIR in the build tree, never into the source tree.
# Exit codes: 0 no finding, 77 skipped (1 with CI=true), anything else a crash, leak, timeout or
# UB report.
# Reproduce a finding with:  FUZZER WORK_DIR/artifacts/crash-...
set -eu

skip_code=77
# In CI (CI=true) clang-19 and libFuzzer are installed: a fuzzer that cannot run is a failure.
if [ "${CI:-}" = true ]; then
    not_run_code=1
else
    not_run_code=$skip_code
fi

case "${1:-}" in
skip)
    echo "SKIP: ${2:-no reason given}"
    exit "$not_run_code"
    ;;
run)
    [ "$#" -eq 5 ] || { echo "usage: $0 run FUZZER SEED_CORPUS_DIR WORK_DIR SECONDS" >&2; exit 2; }
    ;;
*)
    echo "usage: $0 run FUZZER SEED_CORPUS_DIR WORK_DIR SECONDS | skip REASON" >&2
    exit 2
    ;;
esac

fuzzer=$2
seeds=$3
work=$4
seconds=$5

if [ ! -x "$fuzzer" ]; then
    echo "FAIL: $fuzzer is not built; build the target $(basename "$fuzzer") first" >&2
    exit 1
fi

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$work/corpus/"
fi

cd "$work"
# A placeholder stub (see link_fuzzer.cmake) ignores the flags and exits 77 itself.
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" || status=$?

if [ "$status" -eq "$skip_code" ]; then
    exit "$not_run_code"
fi
if [ "$status" -ne 0 ]; then
    echo "FAIL: $(basename "$fuzzer") exited with $status; reproducers:" >&2
    ls -1 "$work/artifacts" >&2 || true
fi
exit "$status"
