"""The Triton CSR kernel compiles, without spilling, for the CUDA targets we benchmark on
(sm_80, sm_90).

CI runs the kernel's arithmetic on Triton's interpreter (tests/segment/test_ops.py); the
interpreter never compiles it, so this checks the other half without a GPU."""

import pytest

pytest.importorskip("triton")

from ..cuda_compile import compile_in_subprocess  # noqa: E402


def test_segment_kernel_compiles_for_every_reduction_and_dtype(tmp_path):
    compiled = compile_in_subprocess("segment_csr", cache_dir=tmp_path)
    seen = {(r["signature"]["src_ptr"], r["constexprs"]["REDUCE"], r["target"]) for r in compiled}
    for dtype in ("*fp64", "*fp32", "*fp16", "*bf16"):
        for reduce in "0123":
            assert {(dtype, reduce, "sm_80"), (dtype, reduce, "sm_90")} <= seen
    assert {r["constexprs"]["HAS_PERM"] for r in compiled} == {"True", "False"}
    assert all(r["cubin_bytes"] > 0 for r in compiled)
    assert all(r["stack"] == 0 and r["local"] == 0 for r in compiled), "a kernel spills"
