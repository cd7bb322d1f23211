#!/usr/bin/env bash
# Denoising speed, three ways, in one run, on the same model, frames and thread count:
#   (a) a bare ONNX Runtime loop (Rust, `ort`),
#   (b) the daemon's pipeline (ingest ring -> denoise stage -> subscriber),
#   (c) a Python pipeline (onnxruntime + numpy, same conversion and tiling).
# Prints a Markdown table with the ratios the README and docs/benchmarks.md quote.
#
#   scripts/bench-denoise.sh [MODEL_DIR] [FRAMES]
#
# Environment: SCOPEPILOT_BENCH_SIZE (512), SCOPEPILOT_BENCH_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model="${1:-models/denoise-fast-nuclei}"
frames="${2:-200}"
size="${SCOPEPILOT_BENCH_SIZE:-512}"
threads="${SCOPEPILOT_BENCH_THREADS:-2}"
out="target/bench"
mkdir -p "$out"

./scripts/setup-venv.sh >/dev/null
SCOPEPILOT_BENCH_MODEL="$model" SCOPEPILOT_BENCH_FRAMES="$frames" \
SCOPEPILOT_BENCH_SIZE="$size" SCOPEPILOT_BENCH_THREADS="$threads" \
SCOPEPILOT_BENCH_STACK_OUT="$out/denoise-frames.npy" \
    cargo bench --quiet --bench denoise | tee "$out/denoise-rust.txt"

onnx="$(.venv/bin/python - "$model" <<'PY'
import sys, pathlib, re
p = pathlib.Path(sys.argv[1])
if p.suffix == ".onnx":
    print(p)
else:
    rdf = (p / "rdf.yaml").read_text()
    src = re.search(r"onnx:\s*\n\s*source:\s*(\S+)", rdf).group(1)
    print(p / src)
PY
)"
.venv/bin/python scripts/bench_python_denoise.py --model "$onnx" --stack "$out/denoise-frames.npy" \
    --threads "$threads" --tile 0 --frames "$frames" --warmup 5 --json | tail -n 1 > "$out/denoise-python.json"

.venv/bin/python - "$out/denoise-rust.txt" "$out/denoise-python.json" <<'PY'
import json, sys
rust = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
py = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
a, b, c = rust["bare_fps"], rust["pipeline_fps"], py["fps"]
print()
print(f"model {rust['model']}, {rust['size']}x{rust['size']} u16 frames, {rust['frames']} frames, "
      f"{rust['threads']} ONNX Runtime threads, whole-frame inference")
print()
print("| | frames/s | latency p50 (ms) | latency p99 (ms) | vs (a) |")
print("| --- | --- | --- | --- | --- |")
print(f"| (a) bare ONNX Runtime loop (Rust) | {a:.2f} | {rust['bare_p50_ms']:.2f} | {rust['bare_p99_ms']:.2f} | 1.00 |")
print(f"| (b) daemon pipeline | {b:.2f} | {rust['pipeline_p50_ms']:.2f} | {rust['pipeline_p99_ms']:.2f} | {b / a:.3f} |")
print(f"| (c) Python pipeline (onnxruntime + numpy) | {c:.2f} | {py['p50_ms']:.2f} | {py['p99_ms']:.2f} | {c / a:.3f} |")
print()
print(f"(b)/(a) = {b / a:.3f} (goal >= 0.95); (b)/(c) = {b / c:.3f} (goal >= 1). "
      f"(a) and (c) latencies: per-frame compute; (b): arrival to subscriber, paced at "
      f"{rust['paced_fps']:.1f} frames/s (80% of its throughput).")
PY
