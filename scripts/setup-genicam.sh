#!/usr/bin/env bash
# Install the Debian packages of the `genicam` source and its tests when they are missing and
# we may (as root or with password-less sudo): libaravis-dev and libusb-1.0-0-dev (to build
# with `--features genicam`), aravis-tools (the fake GigE Vision camera and
# arv-camera-test-0.8), iproute2 and util-linux (`ip`, `unshare` for the private network
# namespace). Without root it says what is missing and exits 0; scripts/test.sh then builds
# without the feature (and fails under CI=true).
set -euo pipefail

need=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
installed libaravis-dev || need+=(libaravis-dev)
installed libusb-1.0-0-dev || need+=(libusb-1.0-0-dev)
command -v arv-fake-gv-camera-0.8 >/dev/null || need+=(aravis-tools)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
((${#need[@]} == 0)) && exit 0

sudo=()
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup-genicam: missing ${need[*]} and no root: building without the genicam" \
            "feature (apt-get install ${need[*]})" >&2
        exit 0
    fi
fi
echo "setup-genicam: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
