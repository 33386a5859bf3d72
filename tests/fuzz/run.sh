#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD_DIR (make fuzz) for SECONDS each, one after another.
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# Each target starts from its seed corpus (tests/fuzz/corpus/<target>/, read only) and
# writes what it finds new to BUILD_DIR/fuzz-corpus/<target>/ (kept between runs, outside
# the repo); a crash, leak, timeout or oversized allocation leaves its input in
# BUILD_DIR/fuzz-artifacts/ (add it to the seed corpus with the fix: it is then a
# reproducer that `make test` replays). Prints one line per target; exits non-zero if any
# target found something. Logs: BUILD_DIR/fuzz-logs/<target>.log.
set -uo pipefail
build_dir=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:-60}
shift 2 || true
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for dir in "$here"/corpus/*/; do targets+=("$(basename "$dir")"); done
fi
mkdir -p "$build_dir/fuzz-logs" "$build_dir/fuzz-artifacts"
failed=0
for target in "${targets[@]}"; do
    binary="$build_dir/tests/fuzz/fuzz_$target"
    [ -x "$binary" ] || { echo "$target: $binary not built"; failed=1; continue; }
    corpus="$build_dir/fuzz-corpus/$target"
    log="$build_dir/fuzz-logs/$target.log"
    mkdir -p "$corpus"
    # -malloc_limit_mb: one allocation over 256 MiB from a few KiB of input is a bug
    # (decoders bound what they allocate); -timeout: 60 s for one input is a hang (inputs take
    # milliseconds; 10 s was hit once by a stall of a loaded machine, not by the input).
    "$binary" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -print_final_stats=1 -artifact_prefix="$build_dir/fuzz-artifacts/$target-" \
        "$corpus" "$here/corpus/$target" >"$log" 2>&1
    status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    units=$(find "$corpus" -type f | wc -l)
    if [ $status -eq 0 ]; then
        echo "$target: ${seconds}s, ${execs:-?} execs, $cov, $units new corpus files, no crash"
    else
        echo "$target: FAILED (exit $status) after ${execs:-?} execs; see $log and $build_dir/fuzz-artifacts/"
        grep -m3 -E 'ERROR: |FUZZ_CHECK|SUMMARY' "$log" | sed 's/^/    /'
        failed=1
    fi
done
exit $failed
