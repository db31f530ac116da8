"""The Triton gate kernels agree with the torch pair kernel, forward and backward (run on
Triton's CPU interpreter in CI); the GRU monoid runs them with ``backend="triton"``, and under
``backend="auto"`` inside ``use_backend("triton")``."""

import os
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("triton")

from gnnagg import LCMAggregation  # noqa: E402
from gnnagg.monoids import GRUMonoid  # noqa: E402
from gnnagg.monoids.gru_kernel import GRUPairKernel, gru_cell_parameters  # noqa: E402
from gnnagg.monoids.gru_triton import TritonGRUPairKernel  # noqa: E402
from gnnagg.segment import use_backend  # noqa: E402


def _run(kernel, pair, params, grad):
    packed = kernel.pack(*params)
    saved = pair.new_empty((pair.shape[0], kernel.saved_width(pair.shape[2])))
    out = kernel.forward(pair, packed, saved)
    grads = kernel.packed_grad_buffers(packed)
    grad_pair = torch.empty_like(pair)
    kernel.backward(grad, pair, saved, packed, grads, grad_pair)
    return out, grad_pair, kernel.unpack_grads(grads)


@settings(max_examples=10)
@given(rows=st.integers(1, 70), channels=st.integers(1, 20), seed=st.integers(0, 999))
def test_triton_kernel_matches_torch_kernel(rows, channels, seed):
    generator = torch.Generator().manual_seed(seed)
    monoid = GRUMonoid(channels)
    params = [
        p.detach() + 0.3 * torch.randn(p.shape, generator=generator)
        for p in gru_cell_parameters(monoid.cell)
    ]
    # Operands far apart in one buffer, as the tree lays them out.
    level = 2 * torch.randn(2 * rows + 3, channels, generator=generator)
    pair = level[: 2 * rows].view(2, rows, channels).transpose(0, 1)
    grad = torch.randn(rows, channels, generator=generator)
    want = _run(GRUPairKernel(), pair, params, grad)
    got = _run(TritonGRUPairKernel(), pair, params, grad)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-5)
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("block, num_warps", [(128, 4), (512, 4), (1024, 8)])
def test_every_launch_shape_matches_the_torch_kernel(block, num_warps):
    """The launch shape (elements per program, warps) changes no result: more elements than
    one program holds, and fewer."""
    generator = torch.Generator().manual_seed(block)
    monoid = GRUMonoid(37)
    params = [p.detach() for p in gru_cell_parameters(monoid.cell)]
    level = torch.randn(2 * 30 + 1, 37, generator=generator)
    pair = level[:60].view(2, 30, 37).transpose(0, 1)
    grad = torch.randn(30, 37, generator=generator)
    want = _run(GRUPairKernel(), pair, params, grad)
    got = _run(TritonGRUPairKernel(block, num_warps), pair, params, grad)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-5)
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


class _CountingKernel:
    """Stands in for a Triton kernel: counts launches instead of running them."""

    def __init__(self, counts: Counter, name: str) -> None:
        self.counts, self.name = counts, name

    def __getitem__(self, grid):
        def launch(*args, **kwargs) -> None:
            self.counts[self.name] += 1

        return launch


def test_one_forward_and_one_backward_launch_per_tree_level(monkeypatch):
    """What the Triton tree saves on a GPU: the gates of a whole level are one kernel each
    way, however many pairs the level has."""
    from gnnagg.monoids import gru_triton

    counts = Counter()
    for name in ("_pair_forward_kernel", "_pair_backward_kernel"):
        monkeypatch.setattr(gru_triton, name, _CountingKernel(counts, name))
    degrees = torch.tensor([9, 12, 10, 8, 11, 0, 1, 10])  # the deepest tree: 4 levels
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    x = torch.randn(index.numel(), 8, requires_grad=True)
    LCMAggregation(8, 8, backend="triton")(x, index).sum().backward()
    assert counts == {"_pair_forward_kernel": 4, "_pair_backward_kernel": 4}


def test_gru_monoid_chooses_its_kernel_itself():
    assert type(GRUMonoid(4, backend="triton").pair_kernel()[0]) is TritonGRUPairKernel
    with use_backend("triton"):
        assert type(GRUMonoid(4, backend="torch").pair_kernel()[0]) is GRUPairKernel
    aggr = LCMAggregation(4, 4, backend="triton")
    assert aggr.monoid.backend == "triton"


def test_triton_kernel_refuses_what_it_cannot_run(monkeypatch):
    with pytest.raises(TypeError, match="backend='triton' computes in float32"):
        GRUMonoid(4, backend="triton").double().pair_kernel()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="backend='triton' needs the monoid on a CUDA device"):
        LCMAggregation(4, 4, backend="triton")(torch.randn(3, 4), torch.tensor([0, 0, 1]))
    # "auto" runs the torch kernel then.
    assert type(GRUMonoid(4).pair_kernel()[0]) is GRUPairKernel


@pytest.mark.parametrize("backend", ["cuda", "", None, 1])
def test_unknown_backend_is_refused(backend):
    with pytest.raises(ValueError, match="backend must be one of"):
        GRUMonoid(4, backend=backend)


def test_lcm_aggregation_same_with_backend_argument():
    torch.manual_seed(0)
    x = torch.randn(40, 8, requires_grad=True)
    index = torch.randint(0, 6, (40,))
    outs = []
    for backend in ("torch", "triton"):
        torch.manual_seed(1)
        outs.append(LCMAggregation(8, 8, backend=backend)(x, index, dim_size=7))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)


def test_gru_monoid_uses_triton_kernel_with_the_triton_backend():
    monoid = GRUMonoid(4)
    assert type(monoid.pair_kernel()[0]) is GRUPairKernel
    with use_backend("triton"):
        assert type(monoid.pair_kernel()[0]) is TritonGRUPairKernel
        # float64 stays on the torch kernel (the gates run in float32 in Triton).
        assert type(monoid.double().pair_kernel()[0]) is GRUPairKernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lcm_aggregation_same_with_either_kernel(dtype):
    torch.manual_seed(0)
    aggr = LCMAggregation(8, 8).to(dtype)
    x = torch.randn(90, 8, dtype=dtype, requires_grad=True)
    index = torch.randint(0, 12, (90,))
    results = []
    for backend in ("torch", "triton"):
        with use_backend(backend):
            out = aggr(x, index, dim_size=14)
            grads = torch.autograd.grad(out.float().square().sum(), [x, *aggr.parameters()])
        results.append((out, grads))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=0.05, atol=0.05)
    torch.testing.assert_close(results[1][0], results[0][0], **tol)
    for g, w in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(g, w, **{k: 10 * v for k, v in tol.items()})


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_triton_kernel_saturates_like_torch():
    """Pre-activations far beyond exp's range give 0/1 gates and finite gradients."""
    monoid = GRUMonoid(8)
    params = [30 * p.detach() for p in gru_cell_parameters(monoid.cell)]
    generator = torch.Generator().manual_seed(0)
    pair = 50 * torch.randn(33, 2, 8, generator=generator)
    grad = torch.randn(33, 8, generator=generator)
    want = _run(GRUPairKernel(), pair, params, grad)
    got = _run(TritonGRUPairKernel(), pair, params, grad)
    assert all(torch.isfinite(t).all() for t in (got[0], got[1], *got[2]))
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-4)
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6 * w.abs().max().item())


def test_kernels_compile_for_cuda_targets(tmp_path):
    """The interpreter above checks the arithmetic; this checks that both kernels compile for
    sm_80 and sm_90 in every dtype the monoid hands them (no GPU needed)."""
    from ..cuda_compile import compile_in_subprocess

    compiled = compile_in_subprocess("gru_pair", cache_dir=tmp_path)
    seen = {(r["kernel"], r["signature"]["a_ptr"], r["target"]) for r in compiled}
    assert seen == {
        (kernel, dtype, target)
        for kernel in ("_pair_forward_kernel", "_pair_backward_kernel")
        for dtype in ("*fp32", "*fp16", "*bf16")
        for target in ("sm_80", "sm_90")
    }
    assert all(r["cubin_bytes"] > 0 for r in compiled)
    # No spills to local memory (the launch shape is chosen to keep registers low).
    assert all(r["stack"] == 0 and r["local"] == 0 for r in compiled), compiled


@pytest.mark.parametrize(
    "bad, error",
    [
        (dict(block=300), ValueError),
        (dict(num_warps=0), ValueError),
        (dict(block=2.0), TypeError),
        (dict(block=True), TypeError),
    ],
)
def test_launch_shape_must_be_powers_of_two(bad, error):
    with pytest.raises(error, match=next(iter(bad))):
        TritonGRUPairKernel(**bad)


@pytest.mark.skipif(
    not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
    reason="needs CUDA with compiled Triton kernels (GNNAGG_TRITON_ON_GPU=1)",
)
def test_backend_argument_on_cuda():
    torch.manual_seed(0)
    x = torch.randn(500, 16, device="cuda", requires_grad=True)
    index = torch.randint(0, 40, (500,), device="cuda")
    results = []
    for backend in ("torch", "triton"):
        torch.manual_seed(1)
        aggr = LCMAggregation(16, 16, backend=backend).cuda()
        out = aggr(x, index, dim_size=45)
        results.append((out, torch.autograd.grad(out.square().sum(), [x, *aggr.parameters()])))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    for got, want in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="backend='triton' needs the monoid on a CUDA device"):
        LCMAggregation(16, 16, backend="triton")(x.detach().cpu(), index.cpu())


def test_layer_norm_wraps_the_triton_kernel():
    from gnnagg.monoids.gru_kernel import LayerNormPairKernel

    generator = torch.Generator().manual_seed(0)
    monoid = GRUMonoid(6)
    params = [p.detach() for p in gru_cell_parameters(monoid.cell)]
    level = torch.randn(2 * 9 + 1, 6, generator=generator)
    pair = level[:18].view(2, 9, 6).transpose(0, 1)
    grad = torch.randn(9, 6, generator=generator)
    want = _run(LayerNormPairKernel(GRUPairKernel()), pair, params, grad)
    got = _run(LayerNormPairKernel(TritonGRUPairKernel()), pair, params, grad)
    for g, w in zip([got[0], got[1], *got[2]], [want[0], want[1], *want[2]]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
