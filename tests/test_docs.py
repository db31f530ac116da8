"""The documentation builds without warnings, the code on its pages runs as written, and every
gnnagg name it spells resolves."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .doc_examples import resolve, rst_python_blocks, rst_spelled_names

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.rst"))
PAGES = sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.relative_to(DOCS).parts)


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS).with_suffix(""))


def test_block_extraction():
    text = (
        "Intro\n\n.. code-block:: python\n\n   a = 1\n\n   b = a + 1\n\nAfter.\n\n"
        "* item\n\n  .. code-block:: python\n     :caption: nested\n\n     c = 3\n"
    )
    assert rst_python_blocks(text) == ["a = 1\n\nb = a + 1\n", "c = 3\n"]


def test_spelled_names_skip_cross_reference_targets():
    text = "See :func:`~gnnagg.segment.segment` and ``gnnagg.poly.evaluate(...)``."
    assert rst_spelled_names(text) == ["gnnagg.poly.evaluate"]


def test_every_tutorial_has_code():
    assert TUTORIALS, "docs/tutorials/ has no pages"
    for page in TUTORIALS:
        assert rst_python_blocks(page.read_text()), f"{page.name} has no python code block"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if rst_python_blocks(p.read_text())], ids=_page_id
)
def test_page_code_runs(page, monkeypatch):
    import torch

    from gnnagg.segment.backends import base as backends

    # The backend how-to registers an example backend: keep it out of the other tests.
    if hasattr(backends, "_REGISTRY"):
        monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    torch.manual_seed(0)
    # One namespace per page: later blocks use what earlier ones defined, as a reader would.
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(rst_python_blocks(page.read_text()), start=1):
        exec(compile(block, f"{page.name} (block {number})", "exec"), namespace)


@pytest.mark.parametrize(
    "name", sorted({n for page in PAGES for n in rst_spelled_names(page.read_text())})
)
def test_documented_names_resolve(name):
    resolve(name)


def test_docs_build_without_warnings(tmp_path):
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("sphinx not installed (the docs extra; make test installs it)")
    out = tmp_path / "html"
    # A separate process: Sphinx configures logging, warnings and sys.path for itself.
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    assert (out / "index.html").exists()
