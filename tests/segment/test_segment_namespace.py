"""Every documented spelling of the segment layer resolves: ``gnnagg.segment`` is the
subpackage, never a function re-exported over it."""

import importlib
import pkgutil
import types

import torch

import gnnagg


def test_gnnagg_segment_is_the_subpackage():
    assert isinstance(gnnagg.segment, types.ModuleType)
    assert gnnagg.segment is importlib.import_module("gnnagg.segment")
    from gnnagg import segment as from_the_package

    assert from_the_package is gnnagg.segment


def test_documented_spellings_run():
    src, index = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([0, 1, 1])
    expected = torch.tensor([[1.0], [6.0]])
    torch.testing.assert_close(gnnagg.segment.segment(src, index), expected)
    with gnnagg.segment.use_backend("torch"):
        torch.testing.assert_close(gnnagg.segment.segment(src, index), expected)
    with gnnagg.use_backend("torch"):
        torch.testing.assert_close(gnnagg.segment.segment(src, index), expected)
    from gnnagg.segment import segment

    torch.testing.assert_close(segment(src, index), expected)
    plan = gnnagg.SegmentPlan.from_index(index)
    assert gnnagg.segment.SegmentPlan is gnnagg.SegmentPlan
    torch.testing.assert_close(gnnagg.segment.segment(src, plan=plan), expected)
    soft = gnnagg.segment_softmax(src, index)
    torch.testing.assert_close(soft, gnnagg.segment.segment_softmax(src, index))
    assert gnnagg.segment.resolve_plan(3, index) is not None
    gnnagg.segment.clear_plan_cache()
    assert isinstance(gnnagg.segment.plan.PLAN_CACHE_SIZE, int)
    assert "torch" in gnnagg.segment.available_backends()


def test_no_top_level_name_shadows_a_subpackage():
    for info in pkgutil.iter_modules(gnnagg.__path__):
        attribute = getattr(gnnagg, info.name, None)
        if attribute is not None:
            assert isinstance(attribute, types.ModuleType), info.name
    for name in gnnagg.__all__:
        assert hasattr(gnnagg, name), name
