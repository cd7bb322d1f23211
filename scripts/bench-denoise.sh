#!/usr/bin/env bash
# Denoising speed, three ways, in one run, on the same model, frames and thread count:
#   (a) a bare ONNX Runtime loop (Rust, `ort`),
#   (b) the daemon's pipeline (ingest ring -> denoise stage -> subscriber),
#   (c) a Python pipeline (onnxruntime + numpy, same conversion and tiling).
# Prints a Markdown table with the ratios the README and docs/benchmarks.md quote.
#
#   scripts/bench-denoise.sh [MODEL_DIR] [FRAMES] [ROUNDS]
#
# Environment: SCOPEPILOT_BENCH_SIZE (512), SCOPEPILOT_BENCH_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model="${1:-models/denoise-fast-nuclei}"
frames="${2:-200}"
rounds="${3:-5}"
size="${SCOPEPILOT_BENCH_SIZE:-512}"
threads="${SCOPEPILOT_BENCH_THREADS:-2}"
out="target/bench"
mkdir -p "$out"

./scripts/setup-venv.sh >/dev/null
cargo bench --quiet --no-run --bench denoise 2>/dev/null

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

# Rounds alternate (a)+(b) and (c), so slow phases of a shared machine hit all three alike.
rm -f "$out"/denoise-round-*.json
for round in $(seq 1 "$rounds"); do
    SCOPEPILOT_BENCH_MODEL="$model" SCOPEPILOT_BENCH_FRAMES="$frames" \
    SCOPEPILOT_BENCH_SIZE="$size" SCOPEPILOT_BENCH_THREADS="$threads" \
    SCOPEPILOT_BENCH_STACK_OUT="$out/denoise-frames.npy" \
        cargo bench --quiet --bench denoise | tee "$out/denoise-round-$round-rust.txt"
    .venv/bin/python scripts/bench_python_denoise.py --model "$onnx" --stack "$out/denoise-frames.npy" \
        --threads "$threads" --tile 0 --frames "$frames" --warmup 5 --json | tail -n 1 \
        > "$out/denoise-round-$round-python.json"
done

.venv/bin/python - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    rust = json.loads(open(f"{out}/denoise-round-{r}-rust.txt").read().strip().splitlines()[-1])
    py = json.loads(open(f"{out}/denoise-round-{r}-python.json").read().strip().splitlines()[-1])
    rows.append((rust, py))
med = lambda xs: statistics.median(xs)
rust0 = rows[0][0]
print()
print(f"model {rust0['model']}, {rust0['size']}x{rust0['size']} u16 frames, {rust0['frames']} frames per run, "
      f"{rust0['threads']} ONNX Runtime threads, whole-frame inference, {rounds} rounds")
print()
print("| round | (a) bare ORT frames/s | (b) pipeline frames/s | (c) Python frames/s | (b)/(a) | (b)/(c) | (b) latency p50 / p99 (ms) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for i, (rust, py) in enumerate(rows, 1):
    a, b, c = rust["bare_fps"], rust["pipeline_fps"], py["fps"]
    print(f"| {i} | {a:.2f} | {b:.2f} | {c:.2f} | {b / a:.3f} | {b / c:.3f} | "
          f"{rust['pipeline_p50_ms']:.2f} / {rust['pipeline_p99_ms']:.2f} |")
ba = med([r["pipeline_fps"] / r["bare_fps"] for r, _ in rows])
bc = med([r["pipeline_fps"] / p["fps"] for r, p in rows])
print(f"| median | {med([r['bare_fps'] for r, _ in rows]):.2f} | {med([r['pipeline_fps'] for r, _ in rows]):.2f} | "
      f"{med([p['fps'] for _, p in rows]):.2f} | **{ba:.3f}** | **{bc:.3f}** | "
      f"{med([r['pipeline_p50_ms'] for r, _ in rows]):.2f} / {med([r['pipeline_p99_ms'] for r, _ in rows]):.2f} |")
print()
print("Goals: (b)/(a) >= 0.95, (b)/(c) >= 1. (b) latency: arrival to subscriber, paced at half the "
      "pipeline's throughput. Per-frame compute p50 / p99 of (a) and (c) are in the round files.")
PY
