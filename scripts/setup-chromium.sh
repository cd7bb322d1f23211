#!/usr/bin/env bash
# Install Debian's headless Chromium and its WebDriver (for the preview page's browser test,
# tests/python/test_preview.py) when they are missing and we may: as root or with
# password-less sudo. Otherwise say so; the browser test then skips (and fails under CI=true).
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup-chromium: chromium/chromium-driver missing and no root: the browser test" \
            "will be skipped (apt-get install chromium chromium-driver)" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-chromium: no apt-get here; install chromium and chromedriver at /usr/bin" >&2
    exit 0
fi
echo "setup-chromium: installing chromium chromium-driver"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core </dev/null >/dev/null
