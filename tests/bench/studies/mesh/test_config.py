"""The mesh study's config: each field checked once, naming itself; the model names."""

import pytest

from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("nodes", 10, "nodes"),
        ("dim", 4, "dim"),
        ("trajectories", 2, "trajectories"),
        ("ells", [], "ells"),
        ("ells", [1.0, float("inf")], "ells"),
        ("ells", [2.0, 2.0], "ells"),
        ("models", ["transformer"], "models"),
        ("models", ["gt-2x30-adjacency"], "models"),  # 30 not divisible by 4 heads
        ("models", ["gt-2x32-khop3"], "models"),
        ("models", ["mgn-0x32"], "models"),
        ("models", "mgn-2x8", "models"),
        ("seeds", [0, 0], "seeds"),
        ("max_seconds", float("nan"), "max_seconds"),
        ("budget_clock", "process", "budget_clock"),
        ("lr", -1.0, "lr"),
        ("lr_final", 1.0, "lr_final"),
        ("eval_trajectories", 0, "eval_trajectories"),
        ("one_step_stride", 0, "one_step_stride"),
        ("one_step_stride", 10**4, "one_step_stride"),
        ("baselines", ["oracle"], "baselines"),
        ("cache", "yes", "cache"),
        ("jobs", 0, "jobs"),
        ("jobs", 10**6, "jobs"),
        ("checkpoints", 1, "checkpoints"),
    ],
)
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        MeshConfig(**{field: value})


def test_config_needs_a_budget_and_refuses_huge_fields():
    with pytest.raises(ValueError, match="epochs, max_seconds"):
        MeshConfig(epochs=None, max_seconds=None)
    with pytest.raises(ValueError, match="nodes, trajectories, steps"):
        MeshConfig(nodes=2_000_000, trajectories=1000, steps=1000)


def test_model_names_parse():
    assert parse_model_name("mgn-15x128") == {"family": "mgn", "depth": 15, "hidden": 128}
    assert parse_model_name("gt-2x32-khop2+dilated+global")["mask"] == "khop2+dilated+global"
    with pytest.raises(ValueError, match="models"):
        parse_model_name(3)
