#!/usr/bin/env bash
# Run the daemon (release build): `./scripts/run.sh` uses the embedded default config,
# `./scripts/run.sh --config FILE` a config file. Arguments go to `scopepilot serve`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The daemon loads ONNX Runtime from the onnxruntime wheel in .venv (the default pipeline
# denoises with the shipped model): install only the runtime requirements here.
SCOPEPILOT_REQUIREMENTS="requirements-runtime.txt" "$root/scripts/setup-venv.sh"

# No cd: relative --config paths stay relative to the caller's directory.
exec cargo run --release --manifest-path "$root/Cargo.toml" --bin scopepilot -- serve "$@"
