#!/usr/bin/env bash
# One GPU session, in the order that matters: correctness against a float64 CPU reference
# first, then the segment and aggregator benchmarks. Results go to $OUT (or experiments/results/gpu).
set -u
out=${OUT:-experiments/results/gpu}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, triton, torch_geometric as g; print(torch.__version__, triton.__version__, g.__version__)"
} | tee "$out/gpu.txt"
timeout 120 python3 experiments/gpu_check.py --out "$out/gpu_check.json"
timeout 150 python3 -m gnnagg.bench.studies.speed.segment --device cuda --out "$out/bench_segment.json"
timeout 270 python3 -m gnnagg.bench.studies.speed.aggr --device cuda --timeout 60 --out "$out/bench_aggr.json"
