"""The documentation builds without warnings, and the code on its pages runs as written."""

import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.rst"))
PAGES = sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.relative_to(DOCS).parts)

_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: python\s*$")


def python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` bodies of an RST text, dedented, in page order."""
    lines = text.splitlines()
    blocks = []
    k = 0
    while k < len(lines):
        match = _DIRECTIVE.match(lines[k])
        k += 1
        if match is None:
            continue
        outer = len(match.group(1))
        # Directive options (":caption: ...") and the blank line before the body.
        while k < len(lines) and (not lines[k].strip() or lines[k].strip().startswith(":")):
            k += 1
        body = []
        while k < len(lines):
            line = lines[k]
            if line.strip() and len(line) - len(line.lstrip()) <= outer:
                break
            body.append(line)
            k += 1
        blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_block_extraction():
    text = (
        "Intro\n\n.. code-block:: python\n\n   a = 1\n\n   b = a + 1\n\nAfter.\n\n"
        "* item\n\n  .. code-block:: python\n     :caption: nested\n\n     c = 3\n"
    )
    assert python_blocks(text) == ["a = 1\n\nb = a + 1\n", "c = 3\n"]


def test_every_tutorial_has_code():
    assert TUTORIALS, "docs/tutorials/ has no pages"
    for page in TUTORIALS:
        assert python_blocks(page.read_text()), f"{page.name} has no python code block"


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p.read_text())],
    ids=lambda p: str(p.relative_to(DOCS).with_suffix("")),
)
def test_page_code_runs(page, monkeypatch):
    # One namespace per page: later blocks use what earlier ones defined, as a reader would.
    import torch

    from gnnagg.segment.backends import base as backends

    # The backend how-to registers an example backend: keep it out of the other tests.
    if hasattr(backends, "_REGISTRY"):
        monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))

    torch.manual_seed(0)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(python_blocks(page.read_text()), start=1):
        exec(compile(block, f"{page.name} (block {number})", "exec"), namespace)


# Sphinx's own deprecation notices about its extensions' internals are not ours to fix.
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_docs_build_without_warnings(tmp_path):
    sphinx_cmd = pytest.importorskip("sphinx.cmd.build", reason="sphinx not installed")
    out = tmp_path / "html"
    status = sphinx_cmd.build_main(
        [
            "-b",
            "html",
            "-W",
            "--keep-going",
            "-q",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ]
    )
    assert status == 0, "sphinx reported warnings or errors (see the captured output above)"
    assert (out / "index.html").exists()
