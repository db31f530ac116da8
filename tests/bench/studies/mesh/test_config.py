"""The mesh study's config: each field checked once, naming itself; the model names."""

import pytest

from gnnagg.bench.studies.mesh.config import (
    ABLATION_MODELS,
    AGGREGATOR_MODELS,
    CPU_MODELS,
    GPU_MODELS,
    MeshConfig,
    parse_model_name,
)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("nodes", 10, "nodes"),
        ("dim", 4, "dim"),
        ("trajectories", 2, "trajectories"),
        ("trajectories", 10, "trajectories"),  # nothing left to train after 2 + 8
        ("ells", [], "ells"),
        ("ells", [1.0, float("inf")], "ells"),
        ("ells", [2.0, 2.0], "ells"),
        ("geometry", "random", "geometry"),
        ("positions", "both", "positions"),
        ("models", ["transformer"], "models"),
        ("models", ["gt-2x30-adjacency"], "models"),  # 30 not divisible by 4 heads
        ("models", ["gt-2x32-khop3"], "models"),
        ("models", ["mgn-0x32"], "models"),
        ("models", ["mgn-6x32-pna"], "models"),  # needs a degree histogram
        ("models", ["mgn-6x32:sideways"], "models"),
        ("models", "mgn-2x8", "models"),
        ("seeds", [0, 0], "seeds"),
        ("train_steps", 0, "train_steps"),
        ("warmup_steps", 4_000, "warmup_steps"),
        ("val_points", 1, "val_points"),
        ("max_seconds", float("nan"), "max_seconds"),
        ("budget_clock", "process", "budget_clock"),
        ("lr", -1.0, "lr"),
        ("noise", -0.1, "noise"),
        ("partitions", 0, "partitions"),
        ("partitions", 1_001, "partitions"),  # more parts than the 1,000 nodes
        ("one_step_stride", 0, "one_step_stride"),
        ("one_step_stride", 10**4, "one_step_stride"),
        ("baselines", ["oracle"], "baselines"),
        ("cache", "yes", "cache"),
        ("jobs", 0, "jobs"),
        ("checkpoints", 1, "checkpoints"),
        ("half_budget_check", 1, "half_budget_check"),
    ],
)
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        MeshConfig(**{field: value})


def test_half_budget_runs_need_room_for_their_warm_up_and_validation():
    with pytest.raises(ValueError, match="half_budget_check: the half-budget run of 150"):
        MeshConfig(train_steps=300, warmup_steps=200)
    with pytest.raises(ValueError, match="half_budget_check"):
        MeshConfig(train_steps=30, warmup_steps=2, val_points=20)
    MeshConfig(train_steps=300, warmup_steps=200, half_budget_check=False)
    half = MeshConfig(train_steps=8001).half_budget()
    assert half.train_steps == 4000 and not half.half_budget_check
    assert half.warmup_steps == MeshConfig().warmup_steps


def test_config_refuses_huge_fields_and_gives_the_generator_its_splits():
    with pytest.raises(ValueError, match="nodes, trajectories, steps"):
        MeshConfig(nodes=2_000_000, trajectories=1000, steps=1000)
    config = MeshConfig(trajectories=20, val_trajectories=3, test_trajectories=8)
    assert config.splits() == pytest.approx((9 / 20, 3 / 20, 8 / 20))


def test_model_names_parse():
    assert parse_model_name("mgn-15x128") == {
        "family": "mgn", "depth": 15, "hidden": 128, "aggr": "sum", "mask": None,
        "positions": None,
    }  # fmt: skip
    gt = parse_model_name("gt-2x32-khop2+dilated+global:absolute")
    assert (gt["mask"], gt["positions"], gt["aggr"]) == ("khop2+dilated+global", "absolute", None)
    assert parse_model_name("mgn-6x32-lcm_softmax")["aggr"] == "lcm_softmax"
    assert parse_model_name("mgn-6x32-gru:relative")["positions"] == "relative"
    for name in CPU_MODELS + ABLATION_MODELS + GPU_MODELS + AGGREGATOR_MODELS:
        parse_model_name(name)
    with pytest.raises(ValueError, match="models"):
        parse_model_name(3)
    # A model's own positions, else the study's.
    config = MeshConfig()
    assert config.model_positions(parse_model_name("mgn-6x32")) == "relative"
    assert config.model_positions(parse_model_name("mgn-6x32:absolute")) == "absolute"
