"""The README's examples run as written, and every gnnagg name it spells resolves."""

from pathlib import Path

import pytest

from .doc_examples import markdown_python_blocks, markdown_spelled_names, resolve

README = Path(__file__).resolve().parents[1] / "README.md"


def test_usage_examples_run():
    blocks = markdown_python_blocks(README.read_text())
    assert blocks, "README.md has no python example"
    # One namespace: later examples build on earlier ones, as a reader's session would.
    namespace: dict = {"__name__": "readme"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"README.md (example {number})", "exec"), namespace)


def test_spelled_names_are_found():
    text = "`gnnagg.segment.segment` and ```python\nimport gnnagg.poly\n```"
    assert markdown_spelled_names(text) == ["gnnagg.poly", "gnnagg.segment.segment"]


def test_resolve_refuses_a_missing_name():
    with pytest.raises(AttributeError):
        resolve("gnnagg.data.no_such_name")


@pytest.mark.parametrize("name", markdown_spelled_names(README.read_text()))
def test_documented_names_resolve(name):
    resolve(name)
