"""The GRU kernel benchmark checks every variant against the float64 reference and reports
the gate kernels' bandwidth (run here on Triton's interpreter at a tiny size; the timed run is
not a test)."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("triton")

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "bench_gru_kernel.py"
_SPEC = importlib.util.spec_from_file_location("bench_gru_kernel", _PATH)
bench_gru_kernel = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_gru_kernel)


def test_every_variant_matches_the_reference(tmp_path, capsys):
    out = tmp_path / "gru_kernel.json"
    argv = ["--device", "cpu", "--sizes", "7x5", "--repeats", "1", "--launches", "1"]
    assert bench_gru_kernel.main([*argv, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    variants = [r["variant"] for r in rows]
    assert variants[0] == "torch" and len(variants) == 1 + len(bench_gru_kernel.LAUNCH_SHAPES)
    assert all(r["ok"] and r["err"] < 1e-5 for r in rows)
    assert all("gates_fwd_gb_per_s" in r for r in rows[1:])
    assert "triton 256/4" in capsys.readouterr().out


def test_a_wrong_kernel_fails_the_run(tmp_path, monkeypatch):
    """The check is real: a kernel that is off makes the script exit non-zero."""
    from gnnagg.monoids.gru_kernel import GRUPairKernel

    finish = GRUPairKernel.finish
    monkeypatch.setattr(GRUPairKernel, "finish", lambda *a: 1.01 * finish(*a))
    monkeypatch.setattr(bench_gru_kernel, "LAUNCH_SHAPES", [])
    argv = ["--device", "cpu", "--sizes", "7x5", "--repeats", "1", "--out", str(tmp_path / "x")]
    assert bench_gru_kernel.main(argv) == 1
