#!/usr/bin/env bash
# A short GPU re-check after fixes: correctness at reduced size, the GRU pair kernel's launch
# shapes, and the LCM and recurrent aggregators next to PyG. Results go to $OUT. (The segment
# kernels were timed in earlier runs: experiments/run_gpu_suite.sh.)
set -u
out=${OUT:-experiments/results/gpu}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
timeout 90 python3 experiments/gpu_check.py --scale 4 --out "$out/gpu_check_recheck.json"
timeout 60 python3 experiments/bench_gru_kernel.py --device cuda --out "$out/bench_gru_kernel.json"
timeout 160 python3 -m gnnagg.bench.studies.speed.aggr --device cuda --timeout 30 \
  --methods "pyg LCM" "gnnagg LCM[gru]" "gnnagg LCM[gru] triton" "gnnagg GRU" \
  --cases uniform random hub5000 \
  --out "$out/bench_aggr_recheck.json"
