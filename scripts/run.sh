#!/usr/bin/env bash
# Run the daemon (release build): `./scripts/run.sh` uses the embedded default config,
# `./scripts/run.sh --config FILE` a config file. Arguments go to `scopepilot serve`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Runtime setup hook. Nothing the daemon needs at run time comes from Python yet; when it does
# (e.g. the ONNX Runtime shared library from the onnxruntime wheel in .venv), set NEEDS_VENV=1
# here and export what the daemon needs (e.g. ORT_DYLIB_PATH) after the venv is ready.
NEEDS_VENV=0
if [[ "$NEEDS_VENV" == 1 ]]; then
    "$root/scripts/setup-venv.sh"
fi

# No cd: relative --config paths stay relative to the caller's directory.
exec cargo run --release --manifest-path "$root/Cargo.toml" --bin scopepilot -- serve "$@"
