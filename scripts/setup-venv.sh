#!/usr/bin/env bash
# Create (if missing) the repo's Python virtualenv `.venv` and install the Python requirements
# into it. Idempotent and fast when nothing changed: the installed requirements are recorded
# as a hash in .venv/.requirements.sha256 and pip runs only when that hash changes.
#
# Requirement files: $SCOPEPILOT_REQUIREMENTS (space-separated, relative to the repo root),
# default: the DEFAULT_REQUIREMENTS list below. To add a dependency (e.g. onnxruntime), add it
# to one of those files (or add a file to the list); the next run installs it.
#
# Environment:
#   PYTHON                  interpreter used to create the venv (default: python3)
#   SCOPEPILOT_VENV         venv directory (default: <repo>/.venv)
#   SCOPEPILOT_REQUIREMENTS requirement files to install
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
venv="${SCOPEPILOT_VENV:-$root/.venv}"
stamp="$venv/.requirements.sha256"

DEFAULT_REQUIREMENTS=(requirements-runtime.txt requirements-test.txt)

if [[ -n "${SCOPEPILOT_REQUIREMENTS:-}" ]]; then
    read -r -a reqs <<<"$SCOPEPILOT_REQUIREMENTS"
else
    reqs=("${DEFAULT_REQUIREMENTS[@]}")
fi
for f in "${reqs[@]}"; do
    [[ -f "$f" ]] || { echo "setup-venv: requirements file $f not found" >&2; exit 1; }
done

# A venv is usable when its interpreter runs and has pip (a failed `venv` run, e.g. without
# Debian's python3-venv, leaves a directory without pip behind).
venv_ok() {
    [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import pip' >/dev/null 2>&1
}

if ! venv_ok; then
    command -v "$python" >/dev/null || { echo "setup-venv: $python not found" >&2; exit 1; }
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "setup-venv: $python cannot create virtualenvs (on Debian/Ubuntu:" \
            "apt-get install python3-venv)" >&2
        exit 1
    fi
    echo "setup-venv: creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

# What is wanted: interpreter version + the content of every requirements file.
want="$(
    {
        "$venv/bin/python" -c 'import sys; print(sys.version)'
        for f in "${reqs[@]}"; do
            echo "== $f"
            cat "$f"
        done
    } | sha256sum | cut -d' ' -f1
)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

if ((${#reqs[@]} > 0)); then
    echo "setup-venv: installing ${reqs[*]} into $venv"
    args=()
    for f in "${reqs[@]}"; do args+=(-r "$f"); done
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q "${args[@]}"
fi
echo "$want" >"$stamp"
