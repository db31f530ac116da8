"""One level of the GRU monoid's tree: the torch pair kernel against the Triton gate kernels.

For ``m`` operand pairs of ``C`` channels (laid out as the tree lays them: two strided views of
one level buffer) this times, side by side in one run:

* ``forward`` / ``backward``: a whole level of :class:`GRUPairKernel` (torch ops) and of
  :class:`TritonGRUPairKernel` at several launch shapes (elements per program, warps), GEMMs
  included;
* ``gates fwd`` / ``gates bwd``: the Triton gate kernels alone, with the bandwidth they reach.
  Per element the forward kernel reads the two operands and twelve projections and writes
  eight saved values and the result (23 values); the backward reads the gradient, the operands
  and the saved values and writes two operand gradients and twelve projection gradients (25).
  Those kernels are launched ``--launches`` times back to back per timing, so the host's
  synchronisation is spread over them.

Every variant is checked against autograd through ``torch.gru_cell`` in float64 on the CPU
(``err``: largest error relative to the reference's largest magnitude, over the result and
every gradient); the script exits non-zero when one is off by more than ``--tolerance``. The
Triton rows need CUDA, or Triton's CPU interpreter (``TRITON_INTERPRET=1``, for the tests:
slow, no useful time).

    python experiments/bench_gru_kernel.py [--device cuda] [--sizes 50000x64 5000x64]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from gnnagg.bench.machine import machine_info
from gnnagg.bench.measure import median_time_ms
from gnnagg.bench.studies.speed.output import write_result
from gnnagg.monoids.gru_kernel import GRUPairKernel

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_gru_kernel.json"
# Uniform degree 10 at E = 100k (the uniform case of gnnagg.bench.studies.speed.aggr) puts about 50k
# pairs in the first level; the upper levels are a tenth of that and less.
DEFAULT_SIZES = [(50_000, 64), (5_000, 64)]
LAUNCH_SHAPES = [(128, 4), (256, 4), (512, 4), (1024, 4), (512, 8), (1024, 8)]
FORWARD_VALUES, BACKWARD_VALUES = 23, 25


def _triton_runs(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    return device == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


class _Level:
    """One tree level's operands, parameters and output gradient, on one device and dtype."""

    def __init__(self, m: int, c: int, seed: int, device: str, dtype: torch.dtype) -> None:
        generator = torch.Generator().manual_seed(seed)
        # W_ih, W_hh, b_ih, b_hh drawn as nn.GRUCell draws them: U(-1/sqrt(C), 1/sqrt(C)).
        shapes = [(3 * c, c), (3 * c, c), (3 * c,), (3 * c,)]
        self.params = [
            ((2 * torch.rand(shape, generator=generator) - 1) / c**0.5).to(device, dtype)
            for shape in shapes
        ]
        level = torch.randn(2 * m, c, generator=generator).to(device, dtype)
        self.pair = level.view(2, m, c).transpose(0, 1)
        self.grad = torch.randn(m, c, generator=generator).to(device, dtype)

    def run(self, kernel: GRUPairKernel, backward: bool = True):
        packed = kernel.pack(*self.params)
        m, _, c = self.pair.shape
        saved = self.pair.new_empty((m, kernel.saved_width(c)))
        out = kernel.forward(self.pair, packed, saved)
        if not backward:
            return (out,)
        grads = kernel.packed_grad_buffers(packed)
        grad_pair = torch.empty_like(self.pair)
        kernel.backward(self.grad, self.pair, saved, packed, grads, grad_pair)
        return (out, grad_pair, *kernel.unpack_grads(grads))

    def reference(self):
        """What :meth:`run` returns, by autograd through ``torch.gru_cell``."""
        a, b = (self.pair[:, k].detach().requires_grad_() for k in (0, 1))
        params = [p.detach().requires_grad_() for p in self.params]
        out = GRUPairKernel().reference(a, b, *params)
        grad_a, grad_b, *grad_params = torch.autograd.grad(out, [a, b, *params], self.grad)
        return (out.detach(), torch.stack([grad_a, grad_b], 1), *grad_params)


def _relative_error(got, want) -> float:
    return max(
        ((g.double().cpu() - w).abs().max() / w.abs().max().clamp(min=1e-12)).item()
        for g, w in zip(got, want)
    )


def _bench_size(m: int, c: int, args, seed: int) -> list[dict]:
    from gnnagg.monoids.gru_triton import TritonGRUPairKernel

    level = _Level(m, c, seed, args.device, torch.float32)
    reference = _Level(m, c, seed, "cpu", torch.float64).reference()
    variants = {"torch": GRUPairKernel()}
    if _triton_runs(args.device):
        for block, warps in LAUNCH_SHAPES:
            variants[f"triton {block}/{warps}"] = TritonGRUPairKernel(block, warps)
    rows = []
    for name, kernel in variants.items():
        error = _relative_error(level.run(kernel), reference)
        packed = kernel.pack(*level.params)
        saved = level.pair.new_empty((m, kernel.saved_width(c)))
        grads = kernel.packed_grad_buffers(packed)
        grad_pair = torch.empty_like(level.pair)
        kernel.forward(level.pair, packed, saved)  # fills ``saved`` for the backward timing
        forward_ms = median_time_ms(
            lambda: kernel.forward(level.pair, packed, saved), args.device, args.repeats
        )
        backward_ms = median_time_ms(
            lambda: kernel.backward(level.grad, level.pair, saved, packed, grads, grad_pair),
            args.device,
            args.repeats,
        )
        row = dict(
            pairs=m,
            channels=c,
            variant=name,
            forward_ms=round(forward_ms, 4),
            backward_ms=round(backward_ms, 4),
            err=error,
            ok=error <= args.tolerance,
        )
        if isinstance(kernel, TritonGRUPairKernel):
            row.update(_gate_kernels_alone(kernel, level, packed, saved, args))
        rows.append(row)
    return rows


def _gate_kernels_alone(kernel, level: _Level, packed, saved, args) -> dict:
    m, _, c = level.pair.shape
    a, b = level.pair[:, 0], level.pair[:, 1]
    weight, bias = packed
    proj_a = torch.addmm(bias, a, weight.t())
    proj_b = torch.addmm(bias, b, weight.t())
    out = a.new_empty((m, c))
    grad_pair = torch.empty_like(level.pair)
    proj_grads = a.new_empty((2, m, 6 * c))
    grads = (grad_pair[:, 0], grad_pair[:, 1], proj_grads)
    result = {}
    for label, launch, values in (
        (
            "gates_fwd",
            lambda: kernel.forward_gates(proj_a, proj_b, a, b, out, saved),
            FORWARD_VALUES,
        ),
        (
            "gates_bwd",
            lambda: kernel.backward_gates(level.grad, a, b, saved, *grads),
            BACKWARD_VALUES,
        ),
    ):

        def launches(launch=launch) -> None:
            for _ in range(args.launches):
                launch()

        ms = median_time_ms(launches, args.device, args.repeats) / args.launches
        result[f"{label}_ms"] = round(ms, 5)
        result[f"{label}_gb_per_s"] = round(values * m * c * a.element_size() / ms / 1e6, 1)
    return result


def run(args) -> dict:
    rows = []
    for m, c in args.sizes:
        rows += _bench_size(m, c, args, args.seed)
    return {"benchmark": "gru_kernel", "machine": machine_info(args.device), "rows": rows}


def format_table(result: dict) -> str:
    lines = [
        "| pairs | C | variant | fwd ms | bwd ms | gates fwd ms (GB/s) | gates bwd ms (GB/s) "
        "| err |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        gates = [
            f"{r[f'{k}_ms']:.4f} ({r[f'{k}_gb_per_s']:.0f})" if f"{k}_ms" in r else "-"
            for k in ("gates_fwd", "gates_bwd")
        ]
        flag = "" if r["ok"] else " FAIL"
        lines.append(
            f"| {r['pairs']:,} | {r['channels']} | {r['variant']} | {r['forward_ms']:.3f} "
            f"| {r['backward_ms']:.3f} | {gates[0]} | {gates[1]} | {r['err']:.1e}{flag} |"
        )
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        m, c = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes are PAIRSxC such as 50000x64, got {text!r}"
        ) from None
    if m <= 0 or c <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return m, c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", type=_size, default=DEFAULT_SIZES)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--launches", type=int, default=20, help="gate-kernel launches per timing")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.launches < 1:
        parser.error("--repeats and --launches must be at least 1")
    torch.manual_seed(args.seed)
    result = run(args)
    print(f"GRU pair kernel, one tree level, float32, on {result['machine']}")
    print(format_table(result))
    write_result(result, args.out)
    return 0 if all(r["ok"] for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
