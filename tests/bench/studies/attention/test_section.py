"""The mesh-attention study: a tiny run through the harness, its report, its config errors."""

import json

import pytest

from gnnagg.bench.config import SuiteConfig
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies import SECTIONS
from gnnagg.bench.studies.attention.config import AttentionConfig

TINY = AttentionConfig(
    parts=("layer", "masks", "big"),
    nodes=200,
    big_nodes=400,
    masks=("adjacency",),
    backends=("sparse", "dense", "TransformerConv"),
    heads=2,
    channels=8,
    in_channels=8,
    repeats=1,
    timeout_s=300.0,
)


def test_tiny_run_is_measured_and_reported(tmp_path):
    results, out = run_suite(SuiteConfig("tiny", attention=TINY), tmp_path / "out", progress=False)
    result = results["attention"]
    layer = {(r["mask"], r["backend"]): r for r in result["layer"]}
    assert set(layer) == {
        ("adjacency", "sparse"), ("adjacency", "dense"), ("adjacency", "TransformerConv")
    }  # fmt: skip
    for row in layer.values():
        assert row["status"] == "ok", row
        assert row["fwd_bwd_ms"] > 0 and row["nnz"] > 0
    # The same mask has the same attended pairs on every backend.
    assert layer[("adjacency", "sparse")]["nnz"] == layer[("adjacency", "dense")]["nnz"]
    (masks,) = result["masks"]
    assert masks["nnz"] == layer[("adjacency", "sparse")]["nnz"]
    assert 0 < masks["density_morton"] <= 1 and 0 < masks["density_index"] <= 1
    assert [row["mesh"] for row in result["big"]] == ["delaunay2d", "delaunay"]
    for big in result["big"]:
        assert big["status"] == "ok" and big["nodes"] == 400 and big["threads"] >= 1
        assert big["build_cpu_s"] >= 0 and big["extra_mb"] >= 0
        # The widest mask attends more pairs than the adjacency (plus self-loops) of the mesh.
        assert big["nnz"] > big["edges"] + big["nodes"]
    report = (out / "report.md").read_text()
    assert "Mesh graph attention" in report and "faster forward + backward" in report
    # What was written reads back and reports again.
    SECTIONS["attention"].check_result(json.loads((out / "results.json").read_text())["attention"])


@pytest.mark.parametrize(
    "field, value",
    [("nodes", 0), ("nodes", 10**9), ("heads", 2.5), ("masks", ["everything"]),
     ("backends", ["sparse", "nope"]), ("repeats", 0), ("timeout_s", float("nan")),
     ("mesh", "sphere"), ("parts", "layer"), ("big_meshes", ["sphere"])],
)  # fmt: skip
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AttentionConfig(**{field: value})


def test_malformed_result_is_refused_naming_the_place():
    section = SECTIONS["attention"]
    with pytest.raises(ValueError, match=r"attention\.layer\[0\]"):
        section.check_result({"layer": [{"mask": "adjacency", "backend": "sparse"}]})
    with pytest.raises(ValueError, match=r"attention\.big"):
        section.check_result({"big": [{"status": "ok", "build_s": "fast"}]})


def test_every_suite_config_is_valid():
    section = SECTIONS["attention"]
    for suite in ("quick", "full", "smoke"):
        assert isinstance(section.suite_config(suite, (0,)), AttentionConfig)


@pytest.mark.parametrize(
    "content",
    [
        lambda torch: {"pos": torch.rand(10, 3), "edge_index": torch.zeros(2, 0, dtype=torch.long)},
        lambda torch: {"pos": torch.rand(300, 3)},
        lambda torch: [1, 2],
        lambda torch: {"pos": torch.rand(300, 3), "edge_index": torch.full((2, 5), 999)},
        lambda torch: b"not a torch file",
    ],
)
def test_a_kept_mesh_that_is_not_the_mesh_asked_for_is_made_again(tmp_path, content):
    import torch

    from gnnagg.bench.studies.attention.run import load_mesh

    path = tmp_path / "mesh-delaunay-300.pt"
    made = content(torch)
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        torch.save(made, path)
    pos, edge_index = load_mesh("delaunay", 300, tmp_path)
    assert pos.shape == (300, 3) and int(edge_index.max()) < 300
    again = torch.load(path, weights_only=True)
    assert torch.equal(again["pos"], pos) and torch.equal(again["edge_index"], edge_index)
