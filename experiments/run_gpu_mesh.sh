#!/usr/bin/env bash
# Learned mesh simulators on one CUDA GPU (written for an H100/H200; not yet run on one).
#   1. correctness: a MeshGraphNet and a masked GraphTransformer, float32 on the GPU against
#      float64 on the CPU (loss, gradients, one rollout step);
#   2. the full suite's 10k-node 2-D study at l = 1 and 6 with every model, seed 0, 20 s of
#      training per model (wall clock): on a CPU 300 CPU-s buy mgn-15x128 13 steps, so this is
#      the run that can say whether the smallest transformer matches a trained MeshGraphNet.
#      The data are generated on the CPU first (about 1 minute for both l).
# Fits a 10-minute device call; results go to $OUT (default experiments/results/gpu).
set -u
out=${OUT:-experiments/results/gpu}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

timeout 120 python3 experiments/mesh_gpu_check.py --device cuda 2>&1 | tee "$out/mesh_check.txt"

timeout 420 python3 -m gnnagg.bench.cli mesh --device cuda --seeds 1 --max-seconds 20 \
  --eval-trajectories 1 --one-step-stride 5 --quiet --out "$out/mesh-10k" 2>&1 | tail -40 \
  | tee "$out/mesh-10k.txt"
