#!/usr/bin/env bash
# Fuzz every parser for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets (fuzz/fuzz_targets/, each a one-line call of scopepilot::hostile_input::<target>):
# config, rules, tiff, model_package, push_frame. Needs the nightly toolchain (cargo-fuzz
# builds with sanitizers); installs cargo-fuzz from crates.io when it is missing.
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written: inputs the fuzzer
# finds go to a private corpus under fuzz/target/work/ (gitignored; FUZZ_WORK overrides).
# Prints, per target: runs, exec/s, coverage (cov/ft from libFuzzer's last status line) and
# crashes. Exits non-zero when any target crashed, timed out or ran out of memory, and
# names the input that did it (fuzz/artifacts/<target>/); replay it with
# `cargo +nightly fuzz run <target> <file>`, then add it to tests/data/fuzz-regressions/.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config rules tiff model_package push_frame)
WORK="${FUZZ_WORK:-$PWD/fuzz/target/work}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

# Longest input per target, bytes: enough for the biggest seed plus room to grow.
max_len() {
    case "$1" in
        config | model_package) echo 16384 ;;
        rules) echo 4096 ;;
        tiff | push_frame) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

echo "building the fuzz targets (cargo +$TOOLCHAIN fuzz build)"
(cd fuzz && cargo "+$TOOLCHAIN" fuzz build)

mkdir -p "$WORK"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    [ -d "fuzz/corpus/$t" ] || { echo "unknown target $t (no fuzz/corpus/$t)" >&2; exit 2; }
    mkdir -p "$WORK/$t" "fuzz/artifacts/$t"
    log="$WORK/$t.log"
    echo "fuzzing $t for ${SECONDS_PER_TARGET}s (log: $log)"
    status=0
    (cd fuzz && cargo "+$TOOLCHAIN" fuzz run "$t" "$WORK/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
        -max_len="$(max_len "$t")" -print_final_stats=1) >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -1 | cut -d' ' -f2)
    ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -1 | cut -d' ' -f2)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    crashes=0
    if [ "$status" -ne 0 ] || [ -n "$artifact" ]; then
        crashes=1
        kind=$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+|ERROR: AddressSanitizer: [a-z-]+' "$log" || echo "exit $status")
        failed+=("$t: $kind; input: ${artifact:-fuzz/artifacts/$t/ (see $log)}")
    fi
    line=$(printf '%-14s runs=%-10s exec/s=%-7s cov=%-6s ft=%-6s crashes=%s' \
        "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$crashes")
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${SECONDS_PER_TARGET}s per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo "no crashes"
