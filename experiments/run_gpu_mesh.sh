#!/usr/bin/env bash
# Learned mesh simulators on one CUDA GPU: the mesh study's GPU configuration (not yet run on
# one; written for an H100/H200).
#   1. correctness: MeshGraphNet (sum and gnnagg's GRU aggregation) and a masked
#      GraphTransformer, float32 on the GPU against float64 on the CPU, on a geometry per
#      trajectory (loss, gradients, one rollout step);
#   2. the study under its protocol (a geometry per trajectory, the same optimiser steps and
#      node features for every model, plateau check, cost table) at 10k nodes with the paper's
#      MeshGraphNet (mgn-15x128) and the large transformers, l = 1 and 4, seeds 0 and 1.
# Step 2 is hours of GPU time in all: every finished (l, model, seed) job is kept in
# $OUT/mesh-gpu/checkpoints, so the script can be run again and again (each call within a
# 10-minute device call trains what it can; STUDY_SECONDS bounds it) until the report is whole.
# The data are generated on the CPU first (about 2 minutes for both l at 10k nodes).
# Results go to $OUT (default experiments/results/gpu).
set -u
out=${OUT:-experiments/results/gpu}
steps=${STEPS:-20000}
nodes=${NODES:-10000}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

timeout 120 python3 experiments/mesh_gpu_check.py --device cuda 2>&1 | tee "$out/mesh_check.txt"

timeout "${STUDY_SECONDS:-420}" python3 -m gnnagg.bench.cli mesh --device cuda \
  --nodes "$nodes" --train-steps "$steps" --warmup-steps 1000 --batch-size 2 \
  --models mgn-15x128 gt-2x32-adjacency gt-4x64-adjacency gt-4x64-khop2+dilated+global \
    gt-8x128-adjacency gt-8x128-khop2+dilated+global \
  --checkpoints --quiet --out "$out/mesh-gpu" 2>&1 | tail -60 | tee "$out/mesh-gpu.txt"
