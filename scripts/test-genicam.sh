#!/usr/bin/env bash
# Tests of the `genicam` source against Aravis's fake GigE Vision camera.
#
# 1. Installs the Debian packages it needs when missing (libaravis-dev, libusb-1.0-0-dev,
#    aravis-tools; as root or with password-less sudo).
# 2. Builds with `--features genicam` outside any namespace (cargo may need the network).
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

need=()
dpkg-query -W -f='${Status}' libaravis-dev 2>/dev/null | grep -q "ok installed" || need+=(libaravis-dev)
dpkg-query -W -f='${Status}' libusb-1.0-0-dev 2>/dev/null | grep -q "ok installed" || need+=(libusb-1.0-0-dev)
command -v arv-fake-gv-camera-0.8 >/dev/null || need+=(aravis-tools)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
if ((${#need[@]} > 0)); then
    echo "==> test-genicam.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null
fi

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
