"""Compile gnnagg's Triton kernels for real CUDA targets, on a machine without a GPU.

CI runs the kernels on Triton's interpreter (``TRITON_INTERPRET=1``), which executes a kernel's
body as NumPy code: it checks the arithmetic but never type-checks, lowers or register-allocates
the kernel, so code that cannot compile for a GPU can pass there. This script records each
kernel's launches exactly as the library makes them (the kernel objects are replaced by
recorders and the torch parts run on the CPU), then compiles every distinct launch signature to
a cubin for each target with the ``ptxas`` that ships in the triton wheel. No driver is needed.

It must run in its own process without ``TRITON_INTERPRET`` (``triton.jit`` decides at import
time whether a kernel is interpreted), so the tests call it as::

    python tests/cuda_compile.py gru_pair segment_csr

and read the JSON list it prints: one entry per (kernel, launch signature, target), with the
cubin's size, registers per thread and spill memory (``cuobjdump -res-usage``). It exits
non-zero when a kernel does not compile. Integer arguments are compiled without the alignment
specialisation Triton adds on a GPU (divisible by 16), so the code generated there can differ
in its vector widths, not in what has to compile.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

# sm_80: A100; sm_90: H100 and H200, the machines the benchmarks target.
TARGETS = (80, 90)
POINTER_TYPES = {
    torch.float64: "*fp64",
    torch.float32: "*fp32",
    torch.float16: "*fp16",
    torch.bfloat16: "*bf16",
    torch.int64: "*i64",
    torch.int32: "*i32",
}


class _Recorder:
    """Stands in for a ``triton.jit`` kernel: records ``kernel[grid](*args, **kwargs)``."""

    def __init__(self, kernel) -> None:
        self.kernel, self.launches = kernel, []

    def __getitem__(self, grid):
        def launch(*args, **kwargs) -> None:
            self.launches.append((args, kwargs))

        return launch


@contextlib.contextmanager
def recording(module, *names: str):
    """Replace ``module``'s kernels ``names`` by recorders for the duration of the block."""
    recorders = {name: _Recorder(getattr(module, name)) for name in names}
    try:
        for name, recorder in recorders.items():
            setattr(module, name, recorder)
        yield list(recorders.values())
    finally:
        for name, recorder in recorders.items():
            setattr(module, name, recorder.kernel)


def launch_signature(kernel, args: tuple, kwargs: dict) -> tuple[dict, dict, dict]:
    """Triton's ``(signature, constexprs, options)`` for one recorded launch of ``kernel``."""
    values = dict(zip(kernel.arg_names, args), **kwargs)
    signature, constexprs = {}, {}
    for param in kernel.params:
        value = values.pop(param.name)
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[param.name] = value
        elif isinstance(value, torch.Tensor):
            signature[param.name] = POINTER_TYPES[value.dtype]
        elif isinstance(value, int):
            signature[param.name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        else:
            raise TypeError(f"unexpected argument {param.name}={value!r}")
    return signature, constexprs, values  # what is left are launch options (num_warps, ...)


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers per thread and spill memory of a cubin, from ``cuobjdump -res-usage``."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        report = subprocess.run(
            [str(tool), "-res-usage", file.name], capture_output=True, text=True, check=True
        ).stdout
    fields = dict(re.findall(r"(REG|STACK|LOCAL):(\d+)", report))
    return {
        "registers": int(fields["REG"]),
        "stack": int(fields["STACK"]),
        "local": int(fields["LOCAL"]),
    }


def compile_recorded(recorders, targets=TARGETS) -> list[dict]:
    """Compile every distinct recorded launch for each target."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    results, seen = [], set()
    for recorder in recorders:
        kernel = recorder.kernel
        for args, kwargs in recorder.launches:
            signature, constexprs, options = launch_signature(kernel, args, kwargs)
            key = (
                kernel.__name__,
                repr(sorted(signature.items())),
                repr(constexprs),
                repr(options),
            )
            if key in seen:
                continue
            seen.add(key)
            for arch in targets:
                source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
                target = GPUTarget("cuda", arch, 32)
                compiled = triton.compile(source, target=target, options=options)
                results.append(
                    dict(
                        kernel=kernel.__name__,
                        signature={k: v for k, v in signature.items() if v != "constexpr"},
                        constexprs={k: str(v) for k, v in constexprs.items()},
                        num_warps=compiled.metadata.num_warps,
                        target=f"sm_{arch}",
                        cubin_bytes=len(compiled.asm["cubin"]),
                        **resource_usage(compiled.asm["cubin"]),
                    )
                )
    return results


def _gru_pair_launches():
    from gnnagg.monoids import gru_triton
    from gnnagg.monoids.gru_kernel import gru_cell_parameters
    from gnnagg.monoids.gru_triton import TritonGRUPairKernel

    names = ("_pair_forward_kernel", "_pair_backward_kernel")
    with recording(gru_triton, *names) as recorders:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            cell = torch.nn.GRUCell(8, 8).to(dtype)
            kernel = TritonGRUPairKernel()
            packed = kernel.pack(*(p.detach() for p in gru_cell_parameters(cell)))
            # Operands as the tree lays them out: two strided views of one level buffer.
            pair = torch.randn(2, 5, 8, dtype=dtype).transpose(0, 1)
            saved = pair.new_empty((5, kernel.saved_width(8)))
            kernel.forward(pair, packed, saved)
            grad_pair = torch.empty_like(pair)
            grads = kernel.packed_grad_buffers(packed)
            kernel.backward(torch.randn(5, 8, dtype=dtype), pair, saved, packed, grads, grad_pair)
    return recorders


def _segment_csr_launches():
    from gnnagg.segment import SegmentPlan
    from gnnagg.segment.backends import triton_kernels

    index = torch.tensor([0, 2, 2, 1, 2, 0])
    plan = SegmentPlan.from_index(index, 4)
    # 600 rows in 3 groups of 128+ features: the largest tiles segment_csr picks.
    wide_plan = SegmentPlan.from_index(torch.arange(600) % 3, 3)
    with recording(triton_kernels, "_segment_csr_kernel") as recorders:
        for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            src = torch.randn(6, 5, dtype=dtype)
            for reduce in triton_kernels.REDUCE_CODES:
                triton_kernels.segment_csr(src, plan.ptr, plan.perm, reduce)
                triton_kernels.segment_csr(src, plan.ptr, None, reduce)
            wide = torch.randn(600, 130, dtype=dtype)
            triton_kernels.segment_csr(wide, wide_plan.ptr, wide_plan.perm, "max")
    return recorders


KERNELS = {"gru_pair": _gru_pair_launches, "segment_csr": _segment_csr_launches}


def compile_in_subprocess(*kernels: str, cache_dir: Path) -> list[dict]:
    """Run this script on ``kernels`` in a fresh process and return what it compiled.

    ``cache_dir`` becomes Triton's cache, so every run really compiles (an earlier run's
    cache would otherwise answer)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run(
        [sys.executable, __file__, *kernels], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        output = proc.stdout[-2000:] + proc.stderr[-6000:]
        raise AssertionError(f"compiling {kernels} failed:\n{output}")
    return json.loads(proc.stdout.splitlines()[-1])


def main(argv: list[str]) -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("run without TRITON_INTERPRET=1: interpreted kernels cannot be compiled")
        return 2
    # Triton warns about a default that changes in its next release; not ours to decide here.
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
    recorders = [r for name in argv or list(KERNELS) for r in KERNELS[name]()]
    print(json.dumps(compile_recorded(recorders)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
