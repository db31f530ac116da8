"""Bad input to the segment layer gets an error that names the argument."""

import pytest
import torch

from gnnagg.segment import SegmentPlan, segment, segment_softmax, use_backend

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
