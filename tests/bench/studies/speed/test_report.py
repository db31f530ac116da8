"""The speed study's plot: a part where every method failed or was skipped still draws."""

from gnnagg.bench.studies.speed.report import plot_speed


def test_a_plot_without_a_successful_measurement_is_drawn(tmp_path):
    rows = [{"case": "uniform", "method": "pyg Sum", "status": "timeout"},
            {"case": "hub", "method": "gnnagg lcm", "status": "skipped"}]
    path = plot_speed({"rows": rows}, tmp_path / "speed_aggr.png")
    assert path.read_bytes().startswith(b"\x89PNG")
