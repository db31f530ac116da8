"""The size-generalisation section: baselines, the paper suite, resumable and parallel jobs."""

import dataclasses
import json

import pytest
import torch

from gnnagg.bench.checkpoints import load_checkpoint, save_checkpoint
from gnnagg.bench.cli import _suite, build_parser
from gnnagg.bench.config import SuiteConfig, suite_config
from gnnagg.bench.runner import run_suite
from gnnagg.bench.studies.sizegen.baselines import constant_baselines, label_distribution
from gnnagg.bench.studies.sizegen.config import PAPER_AGGREGATORS, SizeGenConfig
from gnnagg.bench.studies.sizegen.data import MultisetTensors, build_splits
from gnnagg.bench.studies.sizegen.jobs import checkpoint_path
from gnnagg.bench.studies.sizegen.report import lcm_paper_comparison, run_notes, sizegen_table
from gnnagg.bench.studies.sizegen.run import run_sizegen
from gnnagg.bench.studies.sizegen.train import CHECKPOINT_FORMAT, fit_multiset
from gnnagg.data import TASKS, make_task

TINY = SizeGenConfig(
    tasks=("second_minimum",),
    aggregators=("sum", "lcm_gru"),
    seeds=(0,),
    hidden_channels=8,
    num_train=48,
    num_val=16,
    num_test=8,
    test_sizes=(20,),
    epochs=4,
    batch_size=16,
    shuffle_elements=True,
    val_at_size=24,
)


# -- baselines -------------------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("size", [2, 7, 40])
def test_label_distribution_matches_generated_labels(task, size):
    probs, exact = label_distribution(task, size)
    assert probs.dtype == torch.float64 and probs.shape == (TASKS[task].num_classes,)
    assert exact and abs(float(probs.sum()) - 1) < 1e-9 and float(probs.min()) >= 0
    data = make_task(task, sizes=size, num_graphs=4096, seed=size)
    counts = torch.bincount(data._data.y.view(-1), minlength=probs.numel()).double() / 4096
    # 4,096 samples: every frequency within 0.03 of its probability (about 4 sigma).
    assert float((counts - probs).abs().max()) < 0.03


def test_constant_predictor_uses_the_training_mode():
    base = constant_baselines("second_minimum", range(2, 17), [16, 32, 64, 128, 256])
    assert base["label"] == 24 and base["exact"]
    assert base["chance"] == 1 / 256
    # The training mode is a poor guess for large multisets; the per-size mode is better.
    assert base["constant"]["16"] > base["constant"]["32"] > base["constant"]["256"]
    assert base["best_label"]["256"] == 1
    assert base["best_constant"]["128"] == pytest.approx(0.1789, abs=1e-4)
    for size in ("16", "32", "64", "128", "256"):
        assert base["best_constant"][size] >= base["constant"][size]
    assert constant_baselines("count_parity", [3], [64])["constant"]["64"] == 0.5


def test_baselines_reject_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        label_distribution("nope", 3)
    with pytest.raises(ValueError, match="size"):
        label_distribution("second_minimum", 1)
    with pytest.raises(ValueError, match="size"):
        label_distribution("maximum", 10**9)
    with pytest.raises(TypeError, match="size"):
        label_distribution("maximum", 2.0)


def _row(aggregator, val, at_64):
    return {
        "task": "second_minimum",
        "aggregator": aggregator,
        "val": {"mean": val, "std": 0.0},
        "test": {"64": {"mean": at_64, "std": 0.0}},
        "train_time_s": 1.0,
    }


def test_table_shows_baselines_and_marks_what_does_not_beat_them():
    base = constant_baselines("second_minimum", range(2, 17), [64])
    summary = [_row("sum", 0.5, 0.001), _row("gru", 0.9, 0.05), _row("max", 0.9, 0.5)]
    table = sizegen_table(summary, "second_minimum", base)
    lines = table.splitlines()
    assert "0.1 ± 0.0†‡" in lines[2]  # sum: below the constant predictor (0.3 %)
    assert "5.0 ± 0.0‡" in lines[3] and "†" not in lines[3]  # gru: above it, below 9.2 %
    assert "†" not in lines[4] and "‡" not in lines[4]
    assert lines[5].startswith("| *constant predictor (label 24)* | 1.2 | 0.3 |")
    assert lines[6].startswith("| *best constant of each size* | 1.2 | 9.2 |")
    assert lines[7].startswith("| *uniform chance* | 0.4 | 0.4 |")
    bullets = lcm_paper_comparison(summary, "second_minimum", base)
    assert any("not above it: sum (pyg)." in b for b in bullets)
    assert "best constant" not in sizegen_table(summary, "second_minimum")


# -- the paper suite and its options ---------------------------------------------------------
def test_paper_suite_is_the_issue_setting():
    config = suite_config("paper")
    assert list(config.sections) == ["sizegen"] and config.threads is None
    c = config.sizegen
    assert c.aggregators == PAPER_AGGREGATORS and c.seeds == (0, 1, 2)
    assert (c.num_train, c.hidden_channels, c.batch_size, c.lr) == (65536, 128, 128, 1e-3)
    assert (c.num_test, c.test_sizes, c.val_at_size) == (1024, (16, 32, 64, 128, 256), 32)
    assert c.shuffle_elements and c.checkpoints and not c.regularise and c.reg_weight == 0.1
    # The fair protocol: a plateau or a cap, models matched at validation thresholds.
    assert (c.eval_every, c.patience, c.epochs) == (256, 8, 30)
    assert c.thresholds == (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    assert (c.reg_every, c.reg_samples) == (1, 256)


def test_paper_cpu_suite_is_the_paper_suite_cut_to_a_step_cap():
    paper, cpu = suite_config("paper").sizegen, suite_config("paper-cpu").sizegen
    assert list(suite_config("paper-cpu").sections) == ["sizegen"]
    # Only the length of the runs and the number of tests change.
    assert (cpu.epochs, cpu.patience, cpu.thresholds) == (16, 6, (0.5, 0.7, 0.8, 0.9))
    assert cpu.test_sizes == (16, 32, 64, 128)
    changed = {"epochs", "patience", "thresholds", "test_sizes"}
    for name in set(vars(paper)) - changed:
        assert getattr(cpu, name) == getattr(paper, name), name


def test_run_overrides_reach_the_section_and_are_validated():
    def parse(*argv):
        return _suite(build_parser().parse_args(["run", *argv]))

    c = parse("--suite", "paper", "--jobs", "2", "--epochs", "3", "--job-minutes", "1.5").sizegen
    assert (c.jobs, c.epochs, c.time_budget_s) == (2, 3, 90.0)
    c = parse("--suite", "paper", "--tasks", "range", "--batch-size", "1024", "--lr", "3e-3")
    assert c.sizegen.tasks == ("range",) and c.sizegen.batch_size == 1024
    with pytest.raises(ValueError, match="--jobs: no study of the quick suite"):
        parse("--suite", "quick", "--only", "speed", "--jobs", "2")
    with pytest.raises(ValueError, match="--lr: lr"):
        parse("--suite", "paper", "--lr", "-1")
    for argv in (["--tasks", "nope"], ["--lr", "nan"], ["--job-minutes", "0"]):
        with pytest.raises(SystemExit):
            parse("--suite", "paper", *argv)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("jobs", 0, "jobs"),
        ("jobs", 10**6, "jobs"),
        ("time_budget_s", -1.0, "time_budget_s"),
        ("time_budget_s", float("inf"), "time_budget_s"),
        ("val_at_size", 0, "val_at_size"),
        ("shuffle_elements", "yes", "shuffle_elements"),
        ("checkpoints", 1, "checkpoints"),
    ],
)
def test_config_rejects_bad_long_run_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **{field: value})


def test_checkpoints_need_an_output_folder():
    with pytest.raises(ValueError, match="out_dir"):
        run_sizegen(dataclasses.replace(TINY, checkpoints=True), progress=False)


# -- training jobs: shuffles, checkpoints, budgets, processes --------------------------------
def test_shuffled_keeps_every_multiset_and_label():
    data = MultisetTensors(make_task("second_minimum", sizes=range(2, 9), num_graphs=30, seed=1))
    mixed = data.shuffled(torch.Generator().manual_seed(0))
    assert not torch.equal(mixed.x, data.x)
    assert torch.equal(mixed.y, data.y) and torch.equal(mixed.ptr, data.ptr)
    for g in range(len(data)):
        a, b = data.x[data.ptr[g] : data.ptr[g + 1]], mixed.x[data.ptr[g] : data.ptr[g + 1]]
        assert torch.equal(a.sort(0).values, b.sort(0).values)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("aggregator", ["lcm_gru", "gru"])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, aggregator):
    splits = build_splits("second_minimum", 0, TINY)
    whole, _ = fit_multiset("second_minimum", aggregator, 0, TINY, splits=splits)

    path = tmp_path / "job.pt"

    def stop_after_two(epoch, val_acc):
        if epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        fit_multiset(
            "second_minimum", aggregator, 0, TINY, splits=splits, on_epoch=stop_after_two,
            checkpoint=path,
        )  # fmt: skip
    assert load_checkpoint(path, CHECKPOINT_FORMAT)["step"] == 2 * 3  # 48 multisets, batch 16
    resumed, _ = fit_multiset("second_minimum", aggregator, 0, TINY, splits=splits, checkpoint=path)
    for key in ("param_digest", "val_acc", "best_epoch", "test_acc", "epochs_done", "matched"):
        assert resumed[key] == whole[key], key
    assert [row[0] for row in resumed["curve"]] == [row[0] for row in whole["curve"]]
    assert resumed["val_at_size"] == whole["val_at_size"]


def test_resume_with_more_epochs_continues_training(tmp_path):
    splits = build_splits("second_minimum", 0, TINY)
    path = tmp_path / "job.pt"
    short = dataclasses.replace(TINY, epochs=2)
    fit_multiset("second_minimum", "lcm_gru", 0, short, splits=splits, checkpoint=path)
    longer, _ = fit_multiset("second_minimum", "lcm_gru", 0, TINY, splits=splits, checkpoint=path)
    whole, _ = fit_multiset("second_minimum", "lcm_gru", 0, TINY, splits=splits)
    assert longer["param_digest"] == whole["param_digest"] and longer["epochs_done"] == 4


def test_checkpoints_of_another_config_or_damaged_are_refused(tmp_path):
    splits = build_splits("second_minimum", 0, TINY)
    path = tmp_path / "job.pt"
    fit_multiset("second_minimum", "sum", 0, dataclasses.replace(TINY, epochs=1), splits=splits,
                 checkpoint=path)  # fmt: skip
    with pytest.raises(ValueError, match="another configuration"):
        fit_multiset("second_minimum", "sum", 0, dataclasses.replace(TINY, lr=1e-4),
                     splits=splits, checkpoint=path)  # fmt: skip
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_checkpoint(path, CHECKPOINT_FORMAT)
    save_checkpoint({"format": "something else"}, path)
    with pytest.raises(ValueError, match="not a gnnagg-sizegen-checkpoint"):
        load_checkpoint(path, CHECKPOINT_FORMAT)


def test_time_budget_stops_after_one_epoch_and_says_so():
    config = dataclasses.replace(TINY, aggregators=("sum",), time_budget_s=1e-9)
    result = run_sizegen(config, progress=False)
    run = result["runs"][0]
    assert run["epochs_done"] == 1 and run["stopped_by_budget"] and run["epochs"] == 4
    notes = run_notes(result["summary"], dataclasses.asdict(config))
    assert any("Stopped by the time budget" in line for line in notes)
    # A run that stopped at a plateau before the cap is not cut short by a budget.
    plateaued = [dict(row, stopped=["plateau"] * len(row["stopped"])) for row in result["summary"]]
    notes = run_notes(plateaued, dataclasses.asdict(config))
    assert not any("time budget" in line for line in notes)


def test_two_jobs_in_processes_resume_and_report(tmp_path):
    config = dataclasses.replace(TINY, epochs=2, checkpoints=True)
    # One torch thread, as each of the two jobs below gets: a reduction split over more threads
    # rounds differently, and the digests compare bits.
    one, _ = run_suite(
        SuiteConfig("one", sizegen=config, threads=1), tmp_path / "one", progress=False
    )
    two, out = run_suite(
        SuiteConfig("two", sizegen=dataclasses.replace(config, jobs=2), threads=2),
        tmp_path / "two",
        progress=False,
    )
    digests = [[r["param_digest"] for r in res["sizegen"]["runs"]] for res in (one, two)]
    assert digests[0] == digests[1]
    assert checkpoint_path(out, "second_minimum", "lcm_gru", 0).exists()
    # A rerun into the same folder resumes every finished job instead of training it again.
    again, _ = run_suite(SuiteConfig("two", sizegen=config), out, progress=False)
    assert [r["param_digest"] for r in again["sizegen"]["runs"]] == digests[0]
    report = (out / "report.md").read_text()
    assert "constant predictor (label 24)" in report and "Validation accuracy at size 24" in report
    stored = json.loads((out / "results.json").read_text())
    assert stored["sizegen"]["baselines"]["second_minimum"]["label"] == 24


def test_multiset_tensors_read_the_storage_as_collating_would():
    direct = MultisetTensors(make_task("range", sizes=range(1, 6), num_graphs=25, seed=4))
    collated = MultisetTensors(
        make_task("range", sizes=range(1, 6), num_graphs=25, seed=4, transform=lambda d: d)
    )
    for name in ("x", "ptr", "sizes", "y"):
        assert torch.equal(getattr(direct, name), getattr(collated, name)), name


def test_report_of_an_older_result_computes_its_baselines(tmp_path):
    from gnnagg.bench.studies import SECTIONS

    config = dataclasses.asdict(dataclasses.replace(TINY, test_sizes=(64,)))
    result = {"runs": [], "summary": [_row("sum", 0.5, 0.001)]}  # no "baselines" key
    block = SECTIONS["sizegen"].report(result, config, tmp_path)
    text = "\n".join(block.lines)
    assert "constant predictor (label 24)" in text and "0.1 ± 0.0†‡" in text


def test_report_compares_at_matched_accuracy_and_counts_the_cost(tmp_path):
    config = dataclasses.replace(
        TINY, aggregators=("sum", "lcm_gru"), seeds=(0, 1), epochs=3, eval_every=2,
        patience=2, thresholds=(0.01, 0.03), test_sizes=(20, 64), lr=3e-2,
    )  # fmt: skip
    result, out = run_suite(
        SuiteConfig("matched", sizegen=config, threads=1), tmp_path / "run", progress=False
    )
    summary = result["sizegen"]["summary"]
    lcm = next(r for r in summary if r["aggregator"] == "lcm_gru")
    assert lcm["ms_per_step"]["n"] == 2 and set(lcm["stopped"]) <= {"plateau", "cap"}
    assert lcm["level_gaps"]["size"] == 64 and len(lcm["level_gaps"]["kept"]) == 7
    for entry in lcm["matched"].values():
        assert entry["reached"] <= entry["seeds"] == 2 and set(entry["test"]) == {"20", "64"}
    report = (out / "report.md").read_text()
    for text in (
        "At matched validation accuracy",
        "Accuracy at size 64 (%) (the constant predictor scores",
        "Cost to fit",
        "Associativity per tree level",
        "matched_second_minimum.png",
        "validated every 2 steps",
    ):
        assert text in report, text
    assert (out / "matched_second_minimum.png").exists()


@pytest.mark.parametrize(
    "forge",
    [
        lambda state: state.pop("fingerprint"),
        lambda state: state.pop("model"),
        lambda state: state.update(model={"weight": torch.zeros(3)}),
        lambda state: state.update(step="2"),
        lambda state: state.update(rng=torch.zeros(3)),
        lambda state: state.update(optimiser={"state": 1}),
        lambda state: state.pop("tracker"),
        lambda state: state["tracker"].update(best_step=10**6),
        lambda state: state["tracker"].update(curve=None),
        lambda state: state["tracker"]["crossings"].update({"0.99": {"step": 1}}),
        lambda state: state.update(snapshots={"0.5": {"weight": torch.zeros(3)}}),
    ],
)
def test_a_restamped_checkpoint_is_refused_with_a_value_error_naming_it(tmp_path, forge):
    # An attacker who can write the folder recomputes the sha256 of what they changed.
    splits = build_splits("second_minimum", 0, TINY)
    path = tmp_path / "job.pt"
    one_epoch = dataclasses.replace(TINY, epochs=1)
    fit_multiset("second_minimum", "sum", 0, one_epoch, splits=splits, checkpoint=path)
    state = load_checkpoint(path, CHECKPOINT_FORMAT)
    forge(state)
    save_checkpoint(state, path)
    with pytest.raises(ValueError, match=f"checkpoint {path}"):
        fit_multiset("second_minimum", "sum", 0, TINY, splits=splits, checkpoint=path)


@pytest.mark.parametrize("plant", ["fifo", "device"])
@pytest.mark.parametrize("which", ["job.pt", "job.pt.sha256"])
def test_a_checkpoint_or_hash_that_is_not_a_regular_file_is_refused_without_reading(
    tmp_path, plant, which
):
    import os

    save_checkpoint({"format": CHECKPOINT_FORMAT}, tmp_path / "job.pt")
    (tmp_path / which).unlink()
    if plant == "fifo":
        os.mkfifo(tmp_path / which)
    else:
        (tmp_path / which).symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=f"{which} is not a regular file"):
        load_checkpoint(tmp_path / "job.pt", CHECKPOINT_FORMAT)


def test_malformed_stored_baselines_are_named_by_the_result_check():
    from gnnagg.bench.studies.sizegen.report import check_result

    baselines = {"label": 3, "exact": True, "chance": 0.5, "constant": {"val": 0.5},
                 "best_constant": {"val": {}}, "best_label": {"val": 3}}
    result = {"runs": [], "summary": [], "baselines": {"maximum": baselines}}
    with pytest.raises(ValueError, match=r"sizegen.baselines.maximum.best_constant.val"):
        check_result(result)
