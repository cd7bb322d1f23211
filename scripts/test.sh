#!/usr/bin/env bash
# The one test command: formatting, lints, Rust tests (unit, integration, benches in test
# mode), the genicam source against Aravis's fake camera, and the Python end-to-end tests
# against the real binary (gRPC, Micro-Manager, the preview page in headless Chromium).
#
# Needs the Rust toolchain (with rustfmt and clippy) and python3 with venv; the Python test
# dependencies are installed into .venv by scripts/setup-venv.sh. As root (or with
# password-less sudo) it also installs the Debian packages of the browser and camera tests.
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

step "Aravis for the genicam source (scripts/setup-genicam.sh)"
./scripts/setup-genicam.sh
# With Aravis installed, everything below is built once, with the genicam feature; the
# build without it (what a machine without Aravis gets) is linted on its own.
features=()
if pkg-config --exists aravis-0.8 2>/dev/null; then
    features=(--features genicam)
elif [[ -n "${CI:-}" ]]; then
    echo "CI needs Aravis (libaravis-dev) for the genicam tests: run as root or with sudo" >&2
    exit 1
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets ${features[*]} -- -D warnings"
cargo clippy --all-targets "${features[@]}" -- -D warnings
if ((${#features[@]} > 0)); then
    step "cargo clippy --all-targets -- -D warnings (the build without Aravis)"
    cargo clippy --all-targets -- -D warnings
fi

# Also builds target/debug/scopepilot (the integration tests need it). No separate
# `cargo build`: without dev-dependencies it resolves features differently and would rebuild
# dependencies and the binary on every run. The camera tests (tests/genicam.rs) are not
# among the default targets: they need the private network namespace below.
step "cargo test --all-targets ${features[*]}"
cargo test --all-targets "${features[@]}"

# The genicam source against Aravis's fake GigE Vision camera, in a private network
# namespace; needs root (or password-less sudo) for unshare.
step "genicam source on Aravis's fake camera (scripts/test-genicam.sh)"
if ((${#features[@]} > 0)) &&
    { [[ "$(id -u)" == 0 ]] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; }; then
    ./scripts/test-genicam.sh
elif [[ -n "${CI:-}" ]]; then
    echo "the genicam tests need Aravis and root or password-less sudo in CI" >&2
    exit 1
else
    echo "skipped: needs Aravis (scripts/setup-genicam.sh) and root or password-less sudo"
fi

step "pytest tests/python"
if [[ ! -x "$SCOPEPILOT_BIN" ]]; then
    cargo build --bin scopepilot "${features[@]}"
fi
.venv/bin/python -m pytest -q tests/python

finish_step
printf '\n==> all tests passed\n'
printf '%s\n' "${timings[@]}"
