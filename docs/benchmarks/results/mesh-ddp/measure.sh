#!/bin/bash
# 1 process vs 2 gloo ranks, global batch 2, gt-2x32-adjacency, 200 steps, study's 1k-node data (ell=1)
cd /work/wt-ddp
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
PY=/work/main/.venv/bin/python
OPTS="--models gt-2x32-adjacency --ells 1 --train-steps 200 --warmup-steps 20 --val-points 2 --batch-size 2 --baselines persistence --device cpu --threads 1"
echo "start $(date -u +%T) $(uptime)"
/usr/bin/env time -f "one: wall %e s user %U s sys %S s" $PY -m gnnagg.bench.cli train-mesh $OPTS --out /work/runs/28/ddp/one > /work/runs/28/ddp/one.log 2>&1 || bash -c "time $PY -m gnnagg.bench.cli train-mesh $OPTS --out /work/runs/28/ddp/one" >> /work/runs/28/ddp/one.log 2>&1
echo "after one $(date -u +%T) $(uptime)"
/usr/bin/env time -f "two: wall %e s user %U s sys %S s" $PY -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29561 -m gnnagg.bench.cli train-mesh $OPTS --out /work/runs/28/ddp/two > /work/runs/28/ddp/two.log 2>&1
echo "after two $(date -u +%T) $(uptime)"
