#!/bin/sh
# The long fuzzing campaign behind `make fuzz` (the short runs of `make test` are run_fuzzer.sh):
#   campaign.sh MANIFEST WORK_ROOT RUNS [TARGET...]
# MANIFEST is written by tests/fuzz/CMakeLists.txt, one fuzzer a line: "NAME BINARY CORPUS_DIR",
# or "NAME SKIP REASON" when the fuzzer cannot be built here (then the campaign fails: asking
# for a campaign that cannot run is an error, not a skip). TARGETs restrict the run to those
# names; without them every fuzzer runs.
#
# Each fuzzer runs RUNS executions in one process (the CPU is shared: one target at a time,
# never -jobs > 1) on a fresh copy of its corpus from the repository; PW_FUZZ_MAX_SECONDS=N
# stops each after N seconds at most. Then the inputs that found new coverage are merged back
# into the repository's corpus with -merge=1, which keeps only those that add a feature, so
# tests/fuzz/corpus/<target>/ stays small; commit them.
# libFuzzer's final figures (executions, cov: edges, ft: features, corpus) go to
# WORK_ROOT/stats.txt, one line a target, and the full logs to WORK_ROOT/<target>/fuzz.log.
# Exit code: 0 when every target ran RUNS executions without a finding, 1 otherwise.
# Reproduce a finding with:  BINARY WORK_ROOT/<target>/artifacts/crash-...
set -u

if [ "$#" -lt 3 ]; then
    echo "usage: $0 MANIFEST WORK_ROOT RUNS [TARGET...]" >&2
    exit 2
fi
manifest=$1
work_root=$2
runs=$3
shift 3
merge=${PW_FUZZ_MERGE:-1}
# A time box per target in seconds (0: none). A target stopped by it before RUNS executions
# is reported with the executions it reached and fails the campaign.
max_seconds=${PW_FUZZ_MAX_SECONDS:-0}

if [ ! -f "$manifest" ]; then
    echo "FAIL: no fuzzer manifest $manifest; configure with cmake first" >&2
    exit 1
fi

mkdir -p "$work_root"
# Absolute: each fuzzer runs inside its own work directory (its crash files land there).
work_root=$(cd "$work_root" && pwd)
stats="$work_root/stats.txt"
: >"$stats"
failed=0
ran=0

wanted() {
    [ "$#" -eq 1 ] && return 0
    candidate=$1
    shift
    for target in "$@"; do
        [ "$target" = "$candidate" ] && return 0
    done
    return 1
}

# The last libFuzzer status line ("#N DONE cov: ... ft: ... corp: ...") and the executions of
# -print_final_stats=1, as one line of stats.txt.
summarise() {
    label=$1
    log=$2
    status=$3
    corpus_files=$4
    line=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(printf '%s\n' "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$line" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
    rate=$(printf '%s\n' "$line" | sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p')
    printf '%s executions=%s cov=%s ft=%s campaign_corpus=%s exec_per_s=%s repo_corpus_files=%s exit=%s\n' \
        "$label" "${executions:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rate:-?}" \
        "$corpus_files" "$status" | tee -a "$stats"
}

while read -r name binary corpus; do
    case "$name" in '' | '#'*) continue ;; esac
    wanted "$name" "$@" || continue
    if [ "$binary" = SKIP ]; then
        echo "$name NOT RUN: $corpus" | tee -a "$stats"
        failed=1
        continue
    fi
    work="$work_root/$name"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    mkdir -p "$corpus"
    cp -R "$corpus/." "$work/corpus/"
    echo "fuzz: $name, $runs executions from $(ls "$corpus" | wc -l) seeds ($work/fuzz.log)"
    status=0
    (cd "$work" && "$binary" -runs="$runs" -max_total_time="$max_seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        "$work/corpus") >"$work/fuzz.log" 2>&1 || status=$?
    if [ "$status" -eq 0 ] && [ "$merge" = 1 ]; then
        # Only the inputs that add coverage to what the repository holds already are copied.
        "$binary" -merge=1 -rss_limit_mb=2048 "$corpus" "$work/corpus" >"$work/merge.log" 2>&1 ||
            { echo "FAIL: $name: merging the corpus back failed ($work/merge.log)" >&2; failed=1; }
    fi
    # What the repository's corpus alone covers now, as `make test` starts from it.
    "$binary" -runs=0 -rss_limit_mb=2048 "$corpus" >"$work/replay.log" 2>&1 || true
    replay=$(grep -E '^#[0-9]+[[:space:]]+INITED' "$work/replay.log" | tail -n 1 |
        sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/repo_cov=\1 repo_ft=\2/p')
    summarise "$name" "$work/fuzz.log" "$status" "$(ls "$corpus" | wc -l) ${replay:-repo_cov=?}"
    ran=$((ran + 1))
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
    if [ "$status" -eq 0 ] && [ "${executed:-0}" -lt "$runs" ]; then
        echo "FAIL: $name stopped by the time box after ${executed:-?} of $runs executions" >&2
        failed=1
    fi
    if [ "$status" -ne 0 ]; then
        echo "FAIL: $name exited with $status; reproducers in $work/artifacts:" >&2
        ls -1 "$work/artifacts" >&2
        failed=1
    fi
done <"$manifest"

if [ "$ran" -eq 0 ]; then
    echo "FAIL: no fuzzer ran (targets: ${*:-all})" >&2
    exit 1
fi
echo "fuzz: figures in $stats"
exit "$failed"
