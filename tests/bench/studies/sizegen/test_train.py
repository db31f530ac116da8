"""Multiset training: batching, determinism, and DDP with gloo on two CPU processes."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.sizegen.data import MultisetTensors, build_splits
from gnnagg.bench.studies.sizegen.train import fit_multiset
from gnnagg.bench.training import DistContext, init_distributed, param_digest
from gnnagg.data import make_task

TINY = SizeGenConfig(
    tasks=("maximum",),
    aggregators=("sum",),
    seeds=(0,),
    hidden_channels=8,
    num_train=48,
    num_val=16,
    num_test=8,
    test_sizes=(20,),
    epochs=2,
    batch_size=16,
)

_DATA = MultisetTensors(make_task("second_minimum", sizes=range(2, 9), num_graphs=40, seed=3))
_SOURCE = make_task("second_minimum", sizes=range(2, 9), num_graphs=40, seed=3)


@given(st.lists(st.integers(0, 39), min_size=1, max_size=12))
def test_batch_gathers_each_multiset_in_order(ids):
    x, index, y, n = _DATA.batch(torch.tensor(ids))
    assert n == len(ids)
    assert torch.equal(index, index.sort().values)
    for slot, g in enumerate(ids):
        graph = _SOURCE[g]
        elements = graph.x[graph.edge_index[0]]
        assert torch.equal(x[index == slot], elements)
        assert int(y[slot]) == int(graph.y)


def test_multiset_tensors_rejects_node_form():
    with pytest.raises(TypeError, match="graph-form"):
        MultisetTensors(make_task("maximum", form="node", sizes=3, num_graphs=2))


def test_fit_is_reproducible_from_config_and_seed():
    splits = build_splits("maximum", 0, TINY)
    first, model = fit_multiset("maximum", "lcm_gru", 0, TINY, splits=splits)
    second, _ = fit_multiset("maximum", "lcm_gru", 0, TINY, splits=build_splits("maximum", 0, TINY))
    assert first["param_digest"] == second["param_digest"] == param_digest(model)
    assert first["test_acc"] == second["test_acc"]
    assert set(first["test_acc"]) == {"20"}
    assert 1 <= first["best_epoch"] <= TINY.epochs


def test_fit_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid tasks"):
        fit_multiset("nope", "sum", 0, TINY)
    with pytest.raises(ValueError, match="valid names"):
        fit_multiset("maximum", "nope", 0, TINY)


def test_single_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert ctx == DistContext() and not ctx.distributed
    assert ctx.all_sum([1.0, 2.0]) == [1.0, 2.0]
    with pytest.raises(ValueError, match="device"):
        init_distributed("tpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_ranks_agree(tmp_path):
    """torchrun, 2 processes, gloo: the run completes and both ranks end with the same
    parameters, for an aggregator that remembers its last forward (LCM) and a recurrent one."""
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        "-m", "gnnagg.bench.studies.sizegen.entry",
        "--tasks", "maximum", "--aggregators", "lcm_gru", "gru",
        "--epochs", "2", "--num-train", "40", "--num-val", "10", "--num-test", "6",
        "--test-sizes", "20", "--hidden-channels", "8", "--batch-size", "8",
        "--device", "cpu", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["param_digest"] == ranks[1]["param_digest"]
    assert set(ranks[0]["param_digest"]) == {"maximum/lcm_gru/0", "maximum/gru/0"}
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2 and results["backend"] == "gloo"
    assert [r["aggregator"] for r in results["runs"]] == ["lcm_gru", "gru"]
