"""The mesh study's report: the paragraph on the paper's claims follows the numbers."""

from gnnagg.bench.studies.mesh.report import claims_lines


def _summary(name, family, params, rmse, std=0.0, epoch=1.0, infer=0.01, mask=None, size="1x8"):
    depth, hidden = (int(v) for v in size.split("x"))
    return {
        "name": name, "ell": 1.0, "family": family, "mask": mask, "depth": depth,
        "hidden": hidden, "num_params": params,
        "rollout_rmse": {"mean": rmse, "std": std}, "one_step_rmse": {"mean": rmse, "std": std},
        "time_per_epoch_s": {"mean": epoch, "std": 0.0},
        "inference_s_per_step": {"mean": infer, "std": 0.0},
        "steps": {"mean": 13.0, "std": 0.0},
    }  # fmt: skip


def _claims(summary, persistence=1.0, mean_delta=None):
    baselines = [{"name": "persistence", "ell": 1.0, "rollout_rmse": persistence}]
    if mean_delta is not None:
        baselines.append({"name": "mean-delta", "ell": 1.0, "rollout_rmse": mean_delta})
    result = {
        "data": [{"ell": 1.0}],
        "summary": summary,
        "baselines": baselines,
        "cpu_time_s": 60.0,
        "wall_time_s": 60.0,
    }
    config = {"dim": 2, "nodes": 1000, "trajectories": 8, "steps": 20, "epochs": None,
              "max_seconds": 8.0, "seeds": [0, 1]}  # fmt: skip
    return "\n".join(claims_lines(result, config))


def test_claims_paragraph_follows_the_numbers():
    mgn = _summary("mgn-15x128", "mgn", 2_000_000, 0.10, epoch=10.0, infer=0.1)
    small = _summary("gt-1x8-adjacency", "gt", 100_000, 0.105, 0.001, 1.0, 0.01, "adjacency")
    wide = _summary("gt-1x8-khop2", "gt", 100_001, 0.05, 0.001, 1.5, 0.02, "khop2")
    text = _claims([mgn, small, wide])
    assert "claim 1 (the smallest masked transformer" in text
    assert "is **supported**: `gt-1x8-adjacency`" in text
    assert "claim 2 (K-hop, dilated windows and global attention lower the rollout error) is " \
        "**supported**" in text  # fmt: skip
    assert "3 of 3 models beat the persistence (u' = u) baseline (1)" in text
    # The stronger trivial baseline is the bar.
    assert "1 of 3 models beat the mean Δu per node baseline (0.1)" in _claims(
        [mgn, small, wide], mean_delta=0.1
    )
    # A transformer twice as bad as MeshGraphNet does not match it; a wider mask that is worse
    # beyond the spread over seeds does not support claim 2.
    worse = _summary("gt-1x8-khop2", "gt", 100_001, 0.3, 0.001, mask="khop2")
    text = _claims([mgn, dict(small, rollout_rmse={"mean": 0.2, "std": 0.0}), worse])
    assert "is **not supported**: `gt-1x8-adjacency`" in text
    assert "lower the rollout error) is **not supported**" in text
    # Within the noise: not resolved; nothing beats persistence: said plainly.
    noisy = _summary("gt-1x8-khop2", "gt", 100_001, 0.104, 0.01, mask="khop2")
    text = _claims([mgn, small, noisy], persistence=0.01)
    assert "**not resolved**" in text and "no model beats the persistence" in text
    # A MeshGraphNet no better than a trivial predictor is no reference for accuracy.
    text = _claims([mgn, small, wide], mean_delta=0.09)
    assert "is **not resolved**: `gt-1x8-adjacency`" in text
    assert "`mgn-15x128` does not beat the mean Δu per node baseline (0.09) in this budget " \
        "(13 training steps)" in text  # fmt: skip
    # The budget names its clock.
    assert "8 s of training" in text
    cpu_timed = [dict(row, clock="cpu") for row in (mgn, small, wide)]
    assert "8 CPU-s of training" in _claims(cpu_timed)
