"""Bad input to the segment layer gets an error that names the argument."""

import pytest
import torch

from gnnagg.segment import SegmentPlan, available_backends, segment, segment_softmax, use_backend

SRC = torch.randn(4, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(index=torch.tensor([0.0, 1.0, 1.0, 0.0])), TypeError, "index must be an int64"),
        (dict(index=torch.tensor([0, -1, 1, 0])), ValueError, "index contains a negative"),
        (dict(index=torch.tensor([0, 5, 1, 0]), dim_size=3), ValueError, "index contains 5"),
        (dict(index=torch.tensor([0, 1, 1])), ValueError, "index has 3 entries"),
        (dict(index=torch.zeros(2, 2, dtype=torch.long)), ValueError, "one-dimensional"),
        (dict(ptr=torch.tensor([0, 3, 2, 4])), ValueError, "ptr must be non-decreasing"),
        (dict(ptr=torch.tensor([0, 2, 3])), ValueError, "ptr must end at"),
        (dict(ptr=torch.tensor([1, 2, 4])), ValueError, "ptr must start at 0"),
        (dict(ptr=torch.tensor([0.0, 4.0])), TypeError, "ptr must be an int64"),
        (dict(ptr=torch.tensor([0, 2, 4]), dim_size=1), ValueError, "dim_size=1 is smaller"),
        (dict(index=torch.tensor([0, 1, 1, 0]), reduce="median"), ValueError, "reduce must be"),
        (dict(index=torch.tensor([0, 1, 1, 0]), dim=2), ValueError, "dim=2 is out of range"),
        (dict(index=torch.tensor([0, 1, 1, 0]), backend="cuda"), ValueError, "backend must be"),
        (dict(index=torch.tensor([0, 1, 1, 0]), dim_size=-2), ValueError, "dim_size must be"),
        (dict(), ValueError, "exactly one of index, ptr or plan"),
        (
            dict(index=torch.tensor([0, 1, 1, 0]), ptr=torch.tensor([0, 4])),
            ValueError,
            "exactly one",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        segment(SRC, **kwargs)


def test_src_must_be_floating_tensor():
    with pytest.raises(TypeError, match="src must be a floating-point"):
        segment(torch.ones(4, 3, dtype=torch.long), torch.tensor([0, 1, 1, 0]))
    with pytest.raises(TypeError, match="src must be a torch.Tensor"):
        segment([1.0, 2.0], torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="src must be a floating-point"):
        segment_softmax(torch.ones(4, dtype=torch.long), torch.tensor([0, 1, 1, 0]))


def test_plan_argument_type_is_checked():
    with pytest.raises(TypeError, match="plan must be a SegmentPlan"):
        segment(SRC, plan=torch.tensor([0, 1, 1, 0]))


def test_validate_false_skips_the_range_check_but_keeps_shape_checks():
    # Without validation a bad length is still caught: it costs no sync.
    with pytest.raises(ValueError, match="index must be 1-D with 4 entries"):
        segment(SRC, torch.tensor([0, 1]), dim_size=2, validate=False)
    out = segment(SRC, torch.tensor([0, 1, 1, 0]), dim_size=2, validate=False)
    assert out.shape == (2, 3)


def test_use_backend_rejects_unknown_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        with use_backend("nope"):
            pass


def test_plan_from_index_rejects_bad_index():
    with pytest.raises(ValueError, match="index contains a negative"):
        SegmentPlan.from_index(torch.tensor([0, -3]))


@pytest.mark.parametrize("backend", available_backends())
def test_reduce_aliases_of_pyg_and_torch_scatter(backend):
    src, index = torch.randn(5, 2), torch.tensor([0, 2, 0, 2, 2])
    for alias, name in (("add", "sum"), ("prod", "mul")):
        torch.testing.assert_close(
            segment(src, index, reduce=alias, backend=backend),
            segment(src, index, reduce=name, backend=backend),
        )
    # Group 1 is empty: 1 for the product (its identity, as in PyG and torch_scatter), 0 else.
    assert segment(src, index, reduce="mul", backend=backend)[1].tolist() == [1.0, 1.0]
    assert segment(src, index, reduce="add", backend=backend)[1].tolist() == [0.0, 0.0]


def test_empty_product_matches_pyg_scatter():
    from torch_geometric.utils import scatter

    src, index = torch.randn(4, 3), torch.tensor([0, 3, 3, 0])
    expected = scatter(src, index, dim=0, dim_size=5, reduce="mul")
    torch.testing.assert_close(segment(src, index, dim_size=5, reduce="mul"), expected)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")
def test_sparse_src_is_refused_with_its_layout():
    sparse = torch.randn(4, 3).to_sparse()
    with pytest.raises(TypeError, match="src must be a dense .*sparse_coo"):
        segment(sparse, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(TypeError, match="src must be a dense"):
        segment_softmax(torch.randn(4, 3).to_sparse_csr(), torch.tensor([0, 1, 1, 0]))


def test_sparse_index_is_refused_with_its_layout():
    with pytest.raises(TypeError, match="index must be a dense .*sparse_coo"):
        segment(SRC, torch.tensor([0, 1, 1, 0]).to_sparse())


FLOAT8 = [getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)]


@pytest.mark.parametrize("dtype", FLOAT8, ids=str)
def test_float8_src_is_refused_naming_the_supported_dtypes(dtype):
    with pytest.raises(TypeError, match="src must be float16, bfloat16, float32 or float64"):
        segment(SRC.to(dtype), torch.tensor([0, 1, 1, 0]))


def test_meta_index_is_refused_unless_only_shapes_are_asked_for():
    meta_index = torch.tensor([0, 1, 1, 0], device="meta")
    with pytest.raises(ValueError, match="index is on the meta device"):
        segment(SRC.to("meta"), meta_index)
    with pytest.raises(ValueError, match="ptr is on the meta device"):
        segment(SRC.to("meta"), ptr=torch.tensor([0, 2, 4], device="meta"))
    with pytest.raises(ValueError, match="index/ptr/plan is on meta but src is on cpu"):
        segment(SRC, meta_index, dim_size=2, validate=False)
    # Shape inference: no values are read.
    out = segment(SRC.to("meta"), meta_index, dim_size=2, validate=False)
    assert out.device.type == "meta" and out.shape == (2, 3)


def test_huge_sizes_are_refused_before_allocating():
    src, index = torch.randn(3, 2), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"dim_size=35184372088832 .*would need .*TiB"):
        segment(src, index, dim_size=2**45)
    with pytest.raises(ValueError, match=r"index contains 1099511627776.*would need 16.0 TiB"):
        segment(src, torch.tensor([0, 1, 2**40]))
    with pytest.raises(ValueError, match=r"dim_size=35184372088832"):
        SegmentPlan.from_ptr(torch.tensor([0, 3]), dim_size=2**45)
    with pytest.raises(ValueError, match=r"index contains 1099511627776"):
        SegmentPlan.from_index(torch.tensor([0, 1, 2**40]))
    with pytest.raises(ValueError, match=r"ptr ends at 1099511627776 rows.*would need 8.00 TiB"):
        SegmentPlan.from_ptr(torch.tensor([0, 2**40]))


def test_size_rule_is_bytes_against_available_memory(monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    src, index = torch.randn(3, 2), torch.tensor([0, 1, 2])
    # 2**31 + 1 groups: 32 GiB of offsets and degrees alone, more than the 4 GiB left.
    with pytest.raises(
        ValueError, match=r"dim_size=2147483649 groups.* 32.0 GiB on cpu, more than the 4.00 GiB"
    ):
        segment(src, index, dim_size=2**31 + 1)
    # 2**27 groups fit as a plan (2 GiB), but not with 16 float32 values each (8 GiB of output).
    with pytest.raises(ValueError, match=r"output of dim_size=134217728 groups of 16 "):
        segment(torch.randn(3, 16), index, dim_size=2**27)
    # Legitimate sizes are not refused: many empty groups are fine while they fit.
    assert segment(src, index, dim_size=100_000).shape == (100_000, 2)


def test_validate_must_be_a_bool():
    with pytest.raises(TypeError, match="validate must be a bool"):
        segment(torch.randn(3, 2), torch.tensor([0, 1, 1]), validate="no")


def test_plan_and_backend_arguments_are_named():
    from gnnagg.segment import register_backend

    with pytest.raises(TypeError, match="eager must be a bool"):
        SegmentPlan.from_index(torch.tensor([0, 1]), eager="no")
    with pytest.raises(ValueError, match="device"):
        SegmentPlan.from_index(torch.tensor([0, 1])).to("nowhere")
    with pytest.raises(TypeError, match="backend must be a SegmentBackend"):
        register_backend("fast")
