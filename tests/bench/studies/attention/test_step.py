"""The attention study's step part: a tiny run through the harness (fresh processes), rows
measured in this process for every memory option, the refusal of sizes beyond the cap, its
config and result checks."""

import dataclasses
import json

import pytest

from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies import SECTIONS
from gnnagg.bench.studies.attention.config import STEP_OPTIONS, AttentionConfig
from gnnagg.bench.studies.attention.step import estimated_bytes, measure_step, step_jobs

TINY = AttentionConfig(
    parts=("step",),
    step_nodes=(150,),
    step_hidden_channels=16,
    step_heads=2,
    step_options=("none", "checkpoint"),
    repeats=1,
    # A bound for a loaded machine: each worker imports torch and PyG before its few steps.
    timeout_s=1800.0,
)


def spec(tmp_path, **changes):
    config = dataclasses.replace(TINY, **changes)
    return {**dataclasses.asdict(config), "device": "cpu", "folder": tmp_path}


def test_tiny_step_run_is_measured_and_reported(tmp_path):
    results, out = run_suite(SuiteConfig("tiny", attention=TINY), tmp_path / "out", progress=False)
    rows = results["attention"]["step"]
    assert [(r["model"], r["option"]) for r in rows] == [
        ("GraphTransformer", "none"), ("GraphTransformer", "checkpoint"),
        ("TransformerConv", "none"),
    ]  # fmt: skip
    for row in rows:
        assert row["status"] == "ok", row
        assert row["cpu_s"] > 0 and row["extra_mb"] >= 0 and row["process_peak_mb"] > 0
        assert len(row["load_average"]) == 3
    # Both GraphTransformer rows train the same model on the same mask.
    assert rows[0]["nnz"] == rows[1]["nnz"] and rows[0]["parameters"] == rows[1]["parameters"]
    report = (out / "report.md").read_text()
    assert "One training step" in report and "without checkpointing" in report
    SECTIONS["attention"].check_result(json.loads((out / "results.json").read_text())["attention"])


@pytest.mark.parametrize("option", STEP_OPTIONS)
def test_every_memory_option_trains_with_a_wide_mask(tmp_path, option):
    row = measure_step(spec(tmp_path), "GraphTransformer", option, "khop2+dilated+global", 120)
    assert row["status"] == "ok", row
    # The mask's global tokens are rows of their own.
    assert row["nnz"] > row["edges"] and row["loss"] > 0 and row["cpu_s"] > 0


def test_sizes_beyond_the_cap_are_refused_before_allocation(tmp_path):
    row = measure_step(spec(tmp_path, cap_gb=1e-4), "TransformerConv", "none", "adjacency", 120)
    assert row["status"].startswith("refused: needs about") and "cpu_s" not in row
    # The paper's size: TransformerConv's edge tensors at 300k nodes are beyond 16 GB; the
    # GraphTransformer's estimate shrinks with checkpointing.
    edges, nodes = 4_600_000, 300_000
    assert estimated_bytes("TransformerConv", "none", nodes, edges, 128, 8, 2) > 16 * 2**30
    plain = estimated_bytes("GraphTransformer", "none", nodes, edges + nodes, 128, 8, 2)
    recomputed = estimated_bytes("GraphTransformer", "checkpoint", nodes, edges + nodes, 128, 8, 2)
    assert recomputed < plain < 16 * 2**30


def test_jobs_run_smallest_mesh_first_with_transformer_conv_once_per_size():
    config = dataclasses.replace(TINY, step_nodes=(300, 100), step_masks=("adjacency", "khop2"))
    jobs = step_jobs(config)
    assert [j[3] for j in jobs] == [100] * 5 + [300] * 5
    assert sum(j[0] == "TransformerConv" for j in jobs) == 2


@pytest.mark.parametrize(
    "field, value",
    [("step_nodes", ()), ("step_nodes", (4,)), ("step_nodes", "100000"),
     ("step_nodes", (10**9,)), ("step_options", ["fast"]), ("step_masks", ["all"]),
     ("step_heads", 0), ("step_layers", 0), ("step_hidden_channels", 10**6)],
)  # fmt: skip
def test_bad_step_config_names_the_field(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        AttentionConfig(**{field: value})


def test_width_not_divisible_by_heads_is_refused():
    with pytest.raises(ValueError, match="step_hidden_channels=100 must be divisible"):
        AttentionConfig(step_hidden_channels=100, step_heads=8)


def test_malformed_step_row_is_refused_naming_the_place():
    row = {"model": "GraphTransformer", "option": "none", "mask": "adjacency", "nodes": 10,
           "status": "ok", "cpu_s": "slow"}  # fmt: skip
    with pytest.raises(ValueError, match=r"attention\.step\[0\]"):
        SECTIONS["attention"].check_result({"step": [row]})
