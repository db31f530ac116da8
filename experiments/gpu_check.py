"""One-shot GPU check: correctness of every CUDA path against a float64 CPU reference.

Run on a CUDA machine before trusting the GPU numbers (the benchmarks run after it):

    GNNAGG_TRITON_ON_GPU=1 python experiments/gpu_check.py --out results/gpu_check.json

Checks the segment reductions on every backend (sorted and unsorted, float32/float16/bfloat16,
forward and backward), and every aggregator on CUDA against the same module in float64 on the
CPU. Exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

import gnnagg.aggr as ours
from gnnagg.segment import REDUCTIONS, SegmentPlan, available_backends, segment, use_backend

TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def check_segment(device: str, scale: int = 1) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    num_rows, num_groups = 200_000 // scale, 30_000 // scale
    index = torch.randint(0, num_groups, (num_rows,), generator=generator)
    index[: 5000 // scale] = 7  # one hub group
    src64 = torch.randn(num_rows, 2, 48, generator=generator, dtype=torch.float64)
    rows = []
    for order in ("sorted", "unsorted"):
        idx = index.sort().values if order == "sorted" else index
        plan_cpu = SegmentPlan.from_index(idx, num_groups + 3)
        plan_gpu = SegmentPlan.from_index(idx.to(device), num_groups + 3)
        for reduce in REDUCTIONS:
            if reduce == "mul":
                reference_src = src64.clamp(-1.05, 1.05)
            else:
                reference_src = src64
            for dtype in TOLERANCE:
                # The reference sees the same rounded inputs, so near-ties that rounding turns
                # into ties (which move a max/min gradient) are ties on both sides.
                rounded = reference_src.to(dtype)
                leaf = rounded.double().requires_grad_()
                expected = segment(leaf, plan=plan_cpu, reduce=reduce)
                weights = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
                (expected * weights).sum().backward()
                for backend in available_backends():
                    x = rounded.to(device).clone().requires_grad_()
                    try:
                        out = segment(x, plan=plan_gpu, reduce=reduce, backend=backend)
                        (out * weights.to(device, dtype)).sum().backward()
                        err = (out.double().cpu() - expected).abs().max().item()
                        scale = expected.abs().max().item() + 1
                        grad_err = (x.grad.double().cpu() - leaf.grad).abs().max().item()
                        grad_scale = leaf.grad.abs().max().item() + 1
                        tol = TOLERANCE[dtype]
                        ok = err <= tol * scale and (
                            grad_err <= tol * grad_scale or dtype != torch.float32
                        )
                        status = "ok" if ok else "MISMATCH"
                    except Exception as error:  # report every failure, keep checking
                        err = grad_err = float("nan")
                        status = f"error: {str(error).splitlines()[0][:120]}"
                    rows.append(
                        dict(
                            check="segment",
                            backend=backend,
                            order=order,
                            reduce=reduce,
                            dtype=str(dtype),
                            max_err=err,
                            grad_err=grad_err,
                            status=status,
                        )
                    )
    return rows


def check_aggregators(device: str, scale: int = 1) -> list[dict]:
    # cuDNN's RNNs compute in TF32 by default (about 1e-4 relative): compare full float32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator().manual_seed(1)
    num_rows, num_nodes, channels = 20_000 // scale, 2_000 // scale, 32
    index = torch.randint(0, num_nodes, (num_rows,), generator=generator)
    index[: 1500 // scale] = 3
    x64 = torch.randn(num_rows, channels, generator=generator, dtype=torch.float64)
    factories = {
        f"LCM[{m}]": (lambda m=m: ours.LCMAggregation(channels, channels, monoid=m))
        for m in ("gru", "conjugated_sum", "softmax")
    }
    for name in ("GRUAggregation", "LSTMAggregation"):
        if hasattr(ours, name):
            factories[name] = lambda name=name: getattr(ours, name)(channels, channels)
    # The GRU monoid's tree with the Triton gate kernels (picked by the triton backend).
    factories["LCM[gru] triton"] = factories["LCM[gru]"]
    rows = []
    for name, factory in factories.items():
        backend = use_backend("triton") if name.endswith("triton") else contextlib.nullcontext()
        torch.manual_seed(0)
        reference = factory().double().eval()
        leaf = x64.clone().requires_grad_()
        expected = reference(leaf, index, dim_size=num_nodes + 2)
        expected.sum().backward()
        module = factory().to(device).eval()
        module.load_state_dict({k: v.float() for k, v in reference.state_dict().items()})
        x = x64.float().to(device).requires_grad_()
        try:
            with backend:
                out = module(x, index.to(device), dim_size=num_nodes + 2)
            out.sum().backward()
            err = (out.double().cpu() - expected).abs().max().item()
            grad_err = (x.grad.double().cpu() - leaf.grad).abs().max().item()
            scale_out = expected.abs().max().item() + 1
            scale_grad = leaf.grad.abs().max().item() + 1
            ok = err < 1e-4 * scale_out and grad_err < 1e-4 * scale_grad
            status = "ok" if ok else "MISMATCH"
        except Exception as error:
            err = grad_err = float("nan")
            status = f"error: {str(error).splitlines()[0][:120]}"
        rows.append(
            dict(check="aggregator", method=name, max_err=err, grad_err=grad_err, status=status)
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scale", type=int, default=1, help="divide problem sizes (smoke runs)")
    args = parser.parse_args(argv)
    rows = check_segment(args.device, args.scale) + check_aggregators(args.device, args.scale)
    failures = [r for r in rows if r["status"] != "ok"]
    for r in failures:
        print("FAIL", r)
    print(f"{len(rows) - len(failures)} passed, {len(failures)} failed")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
