#!/usr/bin/env bash
# Tests of the `genicam` source against Aravis's fake GigE Vision camera.
#
# 1. Installs the Debian packages it needs when missing (scripts/setup-genicam.sh).
# 2. Builds with `--features genicam` outside any namespace (cargo may need the network;
#    after scripts/test.sh's `cargo test --features genicam` only this test binary is left).
# 3. Runs tests/genicam.rs inside a private network namespace (`unshare -n`) that has only
#    the loopback interface: the cameras are opened by IP 127.0.0.1, and nothing can reach
#    (or broadcast on) a real network.
#
# Usage: scripts/test-genicam.sh [--bench] [extra cargo test args...]
#   --bench  also run benches/genicam.rs (fake camera into the pipeline vs arv-camera-test-0.8)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

bench=0
if [[ "${1:-}" == "--bench" ]]; then
    bench=1
    shift
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || {
        echo "test-genicam.sh: needs root or sudo (apt-get, unshare -n)" >&2
        exit 1
    }
    sudo=(sudo -n)
fi

./scripts/setup-genicam.sh
command -v arv-fake-gv-camera-0.8 >/dev/null || {
    echo "test-genicam.sh: the Aravis packages are missing (see scripts/setup-genicam.sh)" >&2
    exit 1
}

echo "==> test-genicam.sh: building with --features genicam (outside the namespace)"
cargo test --no-run --features genicam --test genicam
if ((bench)); then
    cargo bench --features genicam --bench genicam --no-run
fi

# Inside: only lo, brought up; cargo runs offline on what was just built.
inner="ip link set lo up && cargo test --offline --features genicam --test genicam $* -- --test-threads=1"
if ((bench)); then
    inner="$inner && cargo bench --offline --features genicam --bench genicam"
fi
echo "==> test-genicam.sh: running in a private network namespace"
"${sudo[@]}" env "PATH=$PATH" "HOME=$HOME" ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} \
    unshare -n sh -c "$inner"
