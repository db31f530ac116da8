"""The mesh study's report: accuracy and cost in separate tables, a time cap flagged in both,
and verdicts only from converged models."""

from gnnagg.bench.studies.mesh.report import accuracy_table, claims_lines, cost_table


def _row(name, family, params, rmse, std=0.0, step=0.01, infer=0.01, mask=None, size="1x8",
         aggr=None, positions="relative", converged=True, capped=False):  # fmt: skip
    depth, hidden = (int(v) for v in size.split("x"))
    stats = {"mean": rmse, "std": std}
    return {
        "name": name, "ell": 1.0, "family": family, "mask": mask, "depth": depth,
        "hidden": hidden, "aggr": aggr if family == "mgn" else None, "positions": positions,
        "num_params": params, "rollout_rmse": stats, "one_step_rmse": stats,
        "time_per_step_s": {"mean": step, "std": 0.0},
        "inference_s_per_step": {"mean": infer, "std": 0.0},
        "steps": {"mean": 100.0 if not capped else 40.0, "std": 0.0},
        "converged": converged, "plateau_moved": [0.01], "capped": capped,
        "train_peak_extra_bytes": 2**20, "clock": "cpu",
    }  # fmt: skip


def _result(summary, persistence=1.0, mean_delta=None):
    baselines = [{"name": "persistence", "ell": 1.0, "rollout_rmse": persistence,
                  "one_step_rmse": 0.1, "inference_s_per_step": 1e-5}]  # fmt: skip
    if mean_delta is not None:
        baselines.append(dict(baselines[0], name="mean-delta", rollout_rmse=mean_delta))
    return {"data": [{"ell": 1.0}], "summary": summary, "baselines": baselines,
            "cpu_time_s": 60.0, "wall_time_s": 60.0}  # fmt: skip


def _claims(summary, **kwargs):
    config = {"train_steps": 100, "positions": "relative", "seeds": [0, 1]}
    return "\n".join(claims_lines(_result(summary, **kwargs), config))


MGN = _row("mgn-6x32", "mgn", 60_000, 0.10, step=0.1, infer=0.1, aggr="sum")
SMALL = _row("gt-1x8-adjacency", "gt", 10_000, 0.105, 0.001, 0.01, 0.01, "adjacency")
WIDE = _row("gt-1x8-khop2", "gt", 10_001, 0.05, 0.001, 0.015, 0.02, "khop2")


def test_claims_follow_the_numbers_of_converged_models():
    text = _claims([MGN, SMALL, WIDE], mean_delta=0.5)
    assert "`mgn-6x32` (0.1 ± 0) beats the best reference predictor, mean Δu" in text
    assert "claim 1 (the smallest masked transformer" in text
    # The smallest size's best mask is the transformer compared.
    assert "is **supported**: `gt-1x8-khop2`" in text and "6x fewer parameters" in text
    assert "lower the all-rollout error) is **supported**" in text
    # A transformer twice as bad does not match; a wider mask worse beyond the spread does
    # not support claim 2; an MGN above a reference does not beat it.
    worse = _row("gt-1x8-khop2", "gt", 10_001, 0.3, 0.001, mask="khop2")
    text = _claims([MGN, dict(SMALL, rollout_rmse={"mean": 0.2, "std": 0.0}), worse],
                   persistence=0.08)  # fmt: skip
    assert "is **not supported**: `gt-1x8-adjacency`" in text
    assert "lower the all-rollout error) is **not supported**" in text
    assert "does **not** beat the best reference predictor, persistence" in text


def test_no_verdict_rests_on_a_model_that_did_not_converge_or_was_capped():
    stuck = dict(MGN, converged=False)
    text = _claims([stuck, SMALL, WIDE], mean_delta=0.5)
    assert "but it did not converge, so this is no verdict" in text
    assert "is **not resolved**: `gt-1x8-khop2`" in text and "not converged: `mgn-6x32`" in text
    capped = dict(WIDE, capped=True)
    assert "lower the all-rollout error) is **not resolved**" in _claims([MGN, SMALL, capped])


def test_claim_one_takes_the_best_converged_mask_of_the_smallest_size():
    unconverged = dict(WIDE, converged=False)
    text = _claims([MGN, SMALL, unconverged], mean_delta=0.5)
    assert "is **supported**: `gt-1x8-adjacency` (the smallest transformer, its best" in text
    # With no converged mask at that size, the best of them is named and nothing is resolved.
    text = _claims([MGN, dict(SMALL, converged=False), unconverged], mean_delta=0.5)
    assert "is **not resolved**: `gt-1x8-khop2`" in text
    assert "(the smallest transformer, its best mask; none converged)" in text


def test_extra_rows_are_compared_with_their_counterparts():
    gru = _row("mgn-6x32-gru", "mgn", 90_000, 0.08, aggr="gru")
    absolute = _row("mgn-6x32:absolute", "mgn", 60_100, 0.07, aggr="sum", positions="absolute")
    text = _claims([MGN, gru, absolute, SMALL])
    assert "MeshGraphNet with `gru` 0.08 ± 0 against the sum's 0.1 ± 0" in text
    assert "`mgn-6x32` with absolute coordinates 0.07 ± 0 against 0.1 ± 0 (relative)" in text


def test_accuracy_and_cost_are_separate_tables_and_a_cap_is_flagged_in_both():
    result = _result([MGN, dict(SMALL, capped=True, steps={"mean": 40.0, "std": 0.0})])
    accuracy, cost = accuracy_table(result, 1.0, 100), cost_table(result, 1.0, 100)
    assert "all-rollout RMSE" in accuracy and "parameters" not in accuracy
    assert "parameters" in cost and "RMSE" not in cost
    for table in (accuracy, cost):
        assert "| gt-1x8-adjacency† |" in table and "| mgn-6x32 |" in table
        assert "† stopped by `--max-seconds` before its 100 steps (`gt-1x8-adjacency` 40" in table
    assert "| 60,000 | 100 | 100 ± 0 | 100 | 1.00 MiB |" in cost
    assert "| *persistence (u' = u)* | - | 0.1 | 1 | - |" in accuracy


def test_the_accuracy_table_shows_both_convergence_checks_where_both_ran():
    checked = dict(SMALL, half_budget_moved=[0.02, 0.125], converged=False)
    table = accuracy_table(_result([MGN, checked]), 1.0)
    assert "converged (val. moved: last 20 % / half budget)" in table
    assert "| **no** (1.0 % / 12.5 %) |" in table
    assert "| yes (1.0 %) |" in accuracy_table(_result([MGN]), 1.0)
    config = {"train_steps": 100, "seeds": [0], "half_budget_check": True}
    text = "\n".join(claims_lines(_result([MGN, checked]), config))
    assert "trained with half the steps ends within 5 %" in text
    assert "100 optimiser steps for every model (and 50 in its half-budget run)" in text
