"""``gnnagg-bench train-mesh``: its options, and two gloo ranks under torchrun training the
model one process trains on the same global batches, with the same normaliser statistics on
both ranks and rank 0's results.json read by the report."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from gnnagg.bench.checkpoints import load_checkpoint
from gnnagg.bench.cli import build_parser
from gnnagg.bench.results import check_results
from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.entry import MESH_MODEL_FORMAT, mesh_model_path, training_config
from gnnagg.bench.studies.mesh.run import _simulation, build_model
from gnnagg.bench.studies.mesh.train import fit_mesh_model
from gnnagg.models import MeshSimulator

OPTIONS = [
    "--nodes", "200", "--trajectories", "4", "--val-trajectories", "1",
    "--test-trajectories", "1", "--steps", "4", "--ells", "2", "--models", "gt-1x8-adjacency",
    "--heads", "2", "--train-steps", "10", "--warmup-steps", "2", "--val-points", "2",
    "--normalizer-batches", "2", "--batch-size", "2", "--no-cache",
    "--baselines", "persistence",
]  # fmt: skip


def _args(tmp_path, *extra):
    return build_parser().parse_args(["train-mesh", *OPTIONS, *extra, "--out", str(tmp_path)])


def test_the_defaults_and_the_refused_options(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    default = training_config(build_parser().parse_args(["train-mesh", "--out", str(tmp_path)]))
    assert (default.models, default.ells, default.seeds) == (("gt-2x32-adjacency",), (1.0,), (0,))
    assert default.train_steps == MeshConfig().train_steps
    with pytest.raises(ValueError, match="--jobs"):
        training_config(_args(tmp_path, "--jobs", "2"))
    with pytest.raises(ValueError, match="--checkpoints"):
        training_config(_args(tmp_path, "--checkpoints"))
    assert not default.half_budget_check
    with pytest.raises(ValueError, match="--half-budget-check: train-mesh trains one budget"):
        training_config(_args(tmp_path, "--half-budget-check"))
    # Under torchrun the global batch must be shared equally by the ranks.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="--batch-size: 3 meshes .* world_size=2"):
        training_config(_args(tmp_path, "--batch-size", "3"))
    assert training_config(_args(tmp_path)).batch_size == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_train_the_one_process_model(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        "-m", "gnnagg.bench.cli", "train-mesh", *OPTIONS,
        "--device", "cpu", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    key = "ell2/gt-1x8-adjacency/seed0"
    assert set(ranks[0]["runs"]) == {key}
    # Identical weights and normaliser statistics on both ranks, to the bit.
    assert ranks[0]["runs"] == ranks[1]["runs"]

    config = training_config(_args(tmp_path))
    sim = _simulation(config, 2.0)
    torch.manual_seed(0)
    spec = parse_model_name("gt-1x8-adjacency", config.heads)
    alone = MeshSimulator(build_model(spec, config), config.dim)
    fit_mesh_model(alone, sim, config, seed=0)
    kept = load_checkpoint(mesh_model_path(out, 2.0, "gt-1x8-adjacency", 0), MESH_MODEL_FORMAT)
    for name, value in alone.state_dict().items():
        if name.endswith("attention.key.bias"):
            # The softmax does not depend on the key bias (it shifts every score of a query
            # alike): its gradient is 0 but for rounding, which Adam's step scales up.
            continue
        torch.testing.assert_close(kept["weights"][name], value, rtol=1e-5, atol=1e-6)
    trained = MeshSimulator(build_model(spec, config), config.dim)
    trained.load_state_dict(kept["weights"])
    test, u = sim.split("test"), sim.u[sim.split("test"), 1]
    torch.testing.assert_close(
        trained.predict_next(u, test, sim), alone.predict_next(u, test, sim), rtol=1e-5, atol=1e-6
    )
    normalizers = ranks[0]["runs"][key]["normalizers"]
    for name in ("node_normalizer", "edge_normalizer", "output_normalizer"):
        mine = getattr(alone, name)
        assert normalizers[name]["accumulations"] == int(mine.accumulations)
        assert normalizers[name]["count"] == float(mine.count)
        torch.testing.assert_close(
            torch.tensor(normalizers[name]["total"], dtype=torch.float64), mine.total
        )

    results = json.loads((out / "results.json").read_text())
    check_results(results)
    assert results["suite"] == "train-mesh" and (out / "report.md").exists()
    assert results["notes"] == [
        "trained on 2 gloo ranks, each taking 1 of the 2 meshes of a step; training times per "
        "step are rank 0's"
    ]
    mesh = results["mesh"]
    assert mesh["distributed"] == {
        "device": "cpu", "world_size": 2, "backend": "gloo", "batch_per_rank": 1,
    }  # fmt: skip
    (run,) = mesh["runs"]
    assert run["steps"] == 10 and len(run["cpu_time_s_per_rank"]) == 2
    assert run == {**kept["record"], "cpu_time_s": run["cpu_time_s"],
                   "cpu_time_s_per_rank": run["cpu_time_s_per_rank"]}  # fmt: skip


def test_bad_options_are_usage_errors(tmp_path, capsys):
    from gnnagg.bench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train-mesh", *OPTIONS, "--jobs", "2", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--jobs: train-mesh trains one job at a time" in capsys.readouterr().err
