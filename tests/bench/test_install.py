"""The harness works after a regular install, outside the checkout: build the wheel, install it
into a fresh virtualenv and run the smoke suite (every section) from a temporary folder.

The new virtualenv sees this environment's packages (torch, PyG, ...) through a ``.pth`` file,
so nothing is downloaded; that file is written after the wheel is installed, and a ``.pth``
line adds a folder without running the ``.pth`` files inside it, so the editable gnnagg of this
environment stays invisible. Select it alone with ``pytest -m install``.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from (setuptools writes build/ and *.egg-info next to its sources,
# so it builds from a copy rather than in the checkout).
SOURCES = ("pyproject.toml", "README.md", "gnnagg", "datasets")


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(home: Path) -> dict[str, str]:
    """This process's environment without anything that points at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GNNAGG_"))}
    env.update(
        OMP_NUM_THREADS="1",
        PYTHONNOUSERSITE="1",
        GNNAGG_DATA=str(home / "cache"),
        MPLCONFIGDIR=str(home / "matplotlib"),
        HOME=str(home),
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def test_wheel_runs_the_smoke_suite_outside_the_checkout(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)

    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        tmp_path, env, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("gnnagg-*.whl")

    target = tmp_path / "venv"
    venv.create(target, with_pip=False, symlinks=True)
    python = target / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        tmp_path, env, timeout=300,
    )  # fmt: skip
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path, env, timeout=60,
        ).strip()
    )  # fmt: skip
    shared = {site.getsitepackages()[0], sysconfig.get_paths()["purelib"]}
    (purelib / "shared_environment.pth").write_text("\n".join(sorted(shared)) + "\n")

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = _run(
        [str(python), "-c", "import gnnagg, gnnagg.bench; print(gnnagg.__file__)"],
        workdir, env, timeout=120,
    ).strip()  # fmt: skip
    assert Path(where).is_relative_to(target), where

    _run([str(target / "bin" / "gnnagg-bench"), "run", "--suite", "smoke", "--quiet"],
         workdir, env, timeout=600)  # fmt: skip
    (out,) = (workdir / "gnnagg-bench-results").glob("smoke-*")
    results = json.loads((out / "results.json").read_text())
    from gnnagg.bench.studies import SECTIONS

    assert set(results["config"]) >= set(SECTIONS)
    for key in SECTIONS:
        section = results[key]
        assert isinstance(section, dict) and section.get("status") != "error", (key, section)
    assert all(part["status"] == "ok" for part in results["speed"].values()), results["speed"]
    assert results["machine"]["git_commit"] is None  # not run from a checkout
    assert (out / "report.md").is_file()
