#!/usr/bin/env bash
# The one test command: formatting, lints, Rust tests (unit, integration, benches in test
# mode) and the Python end-to-end API tests against the real binary.
#
# Needs only the Rust toolchain (with rustfmt and clippy) and python3 with venv; the Python
# test dependencies are installed into .venv by scripts/setup-venv.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
export SCOPEPILOT_BIN="${SCOPEPILOT_BIN:-$target_dir/debug/scopepilot}"

timings=()
step_start=0
step_name=""

step() {
    finish_step
    step_name="$1"
    step_start=$SECONDS
    printf '\n==> %s\n' "$step_name"
}

finish_step() {
    if [[ -n "$step_name" ]]; then
        timings+=("$(printf '%5ss  %s' "$((SECONDS - step_start))" "$step_name")")
    fi
    step_name=""
}

on_exit() {
    local rc=$?
    if [[ -n "$step_name" && $rc -ne 0 ]]; then
        printf '\n==> FAILED: %s (exit code %d)\n' "$step_name" "$rc" >&2
    fi
}
trap on_exit EXIT

step "python venv (scripts/setup-venv.sh)"
./scripts/setup-venv.sh

step "headless chromium for the browser test (scripts/setup-chromium.sh)"
./scripts/setup-chromium.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# Also builds target/debug/scopepilot (the integration tests need it). No separate
# `cargo build`: without dev-dependencies it resolves features differently and would rebuild
# dependencies and the binary on every run.
step "cargo test --all-targets"
cargo test --all-targets

step "pytest tests/python"
if [[ ! -x "$SCOPEPILOT_BIN" ]]; then
    cargo build --bin scopepilot
fi
.venv/bin/python -m pytest -q tests/python

finish_step
printf '\n==> all tests passed\n'
printf '%s\n' "${timings[@]}"
