#!/usr/bin/env bash
# A short GPU re-check after fixes: correctness at reduced size, the LCM and recurrent
# aggregators next to PyG, and the largest segment case. Results go to $OUT.
set -u
out=${OUT:-experiments/results/gpu}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
timeout 90 python3 experiments/gpu_check.py --scale 4 --out "$out/gpu_check_recheck.json"
timeout 160 python3 experiments/bench_aggr.py --device cuda --timeout 30 \
  --methods "pyg LCM" "gnnagg LCM[gru]" "gnnagg LCM[gru] triton" "gnnagg GRU" \
  --cases uniform random hub5000 \
  --out "$out/bench_aggr_recheck.json"
timeout 40 python3 experiments/bench_segment.py --device cuda --sizes 10000000x128 10000000x32 \
  --out "$out/bench_segment_recheck.json"
