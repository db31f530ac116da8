"""Multiset training: determinism, the fair protocol (early stopping, models matched at
validation thresholds, exact resumption), the regulariser's schedule, and DDP with gloo on two
CPU processes."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest

from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.sizegen.data import build_splits
from gnnagg.bench.studies.sizegen.train import fit_multiset
from gnnagg.bench.training import DistContext, init_distributed, param_digest

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


# -- the fair protocol -----------------------------------------------------------------------
PROTOCOL = SizeGenConfig(
    tasks=("second_minimum",),
    aggregators=("lcm_gru",),
    seeds=(0,),
    hidden_channels=8,
    num_train=64,
    num_val=32,
    num_test=8,
    test_sizes=(16, 32),
    epochs=6,
    batch_size=16,
    lr=3e-2,
    eval_every=3,
    thresholds=(0.01, 0.02, 0.9),
    val_at_size=24,
)
# 64 multisets in batches of 16: 4 steps per epoch, validated every 3 steps (mid-epoch).


def test_matched_models_are_tested_at_their_crossing():
    splits = build_splits("second_minimum", 0, PROTOCOL)
    record, _ = fit_multiset("second_minimum", "lcm_gru", 0, PROTOCOL, splits=splits)
    assert [row[0] for row in record["curve"]] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert all(len(row) == 4 for row in record["curve"])  # step, CPU-s, val, val at 24
    assert record["stopped"] == "cap" and record["steps"] == 24
    assert set(record["matched"]) <= {"0.01", "0.02", "0.9"} and record["matched"]
    for key, entry in record["matched"].items():
        first = next(row for row in record["curve"] if row[2] >= float(key))
        assert (entry["step"], entry["val"]) == (first[0], first[2])
        assert set(entry["test_acc"]) == {"16", "32"}
    assert record["train_cpu_s"] > 0
    assert record["best_step"] in [row[0] for row in record["curve"]]
    gaps = record["level_gaps"]
    # The test size closest to 64 from below: 32 elements, levels 0 (leaves) to 5 (roots).
    assert gaps["kept"]["size"] == 32 and len(gaps["kept"]["levels"]) == 6
    assert set(gaps["matched"]) == set(record["matched"])
    plain, _ = fit_multiset("second_minimum", "sum", 0, PROTOCOL, splits=splits)
    assert plain["level_gaps"] is None


def test_patience_stops_at_a_plateau_and_a_resumed_run_continues_exactly(tmp_path):
    splits = build_splits("second_minimum", 0, PROTOCOL)
    patient = dataclasses.replace(PROTOCOL, patience=1, lr=1e-5, thresholds=())
    path = tmp_path / "job.pt"
    stopped, _ = fit_multiset("second_minimum", "gru", 0, patient, splits=splits, checkpoint=path)
    assert stopped["stopped"] == "plateau" and stopped["steps"] < 24
    assert stopped["steps"] % 3 == 0 and stopped["steps"] % 4  # it stopped mid-epoch
    # The same job without patience, resumed from the plateau's checkpoint, ends where one
    # uninterrupted run does: the checkpoint records the step inside the epoch.
    capped = dataclasses.replace(patient, patience=None)
    resumed, _ = fit_multiset("second_minimum", "gru", 0, capped, splits=splits, checkpoint=path)
    whole, _ = fit_multiset("second_minimum", "gru", 0, capped, splits=splits)
    assert resumed["param_digest"] == whole["param_digest"]
    assert resumed["curve"][-1][:1] == whole["curve"][-1][:1] == [24]
    assert resumed["stopped"] == "cap"


def test_regulariser_schedule_reaches_the_model():
    splits = build_splits("second_minimum", 0, PROTOCOL)
    config = dataclasses.replace(PROTOCOL, epochs=2, thresholds=(), val_at_size=None)

    def digest(**changes):
        changed = dataclasses.replace(config, **changes)
        return fit_multiset("second_minimum", "lcm_gru", 0, changed, splits=splits)[0][
            "param_digest"
        ]

    off = digest(regularise=False)
    assert digest(reg_until=0) == off  # switched off from the first step
    every_step, every_third = digest(), digest(reg_every=3)
    assert len({off, every_step, every_third}) == 3


def test_lcm_options_reach_the_lcm_only():
    config = dataclasses.replace(
        PROTOCOL, epochs=1, lcm_leaf="tanh", lcm_init="average", lcm_layer_norm=True
    )
    splits = build_splits("second_minimum", 0, config)
    _, lcm = fit_multiset("second_minimum", "lcm_gru", 0, config, splits=splits)
    assert lcm.aggr.leaf == "tanh" and lcm.aggr.monoid.init == "average"
    assert lcm.aggr.monoid.layer_norm
    _, softmax = fit_multiset("second_minimum", "lcm_softmax", 0, config, splits=splits)
    assert softmax.aggr.leaf == "tanh"
    fit_multiset("second_minimum", "gru", 0, config, splits=splits)  # takes none of them
