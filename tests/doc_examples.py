"""Reading code out of the README and the documentation pages, for tests/test_readme.py and
tests/test_docs.py: code blocks to run, and the ``gnnagg.…`` names they spell."""

import importlib
import re
import textwrap

_DOTTED = re.compile(r"\bgnnagg(?:\.[A-Za-z_]\w*)+")
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: python\s*$")


def markdown_python_blocks(text: str) -> list[str]:
    """The bodies of a Markdown text's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def rst_python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` bodies of an RST text, dedented, in page order."""
    lines = text.splitlines()
    blocks = []
    k = 0
    while k < len(lines):
        match = _RST_DIRECTIVE.match(lines[k])
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


def markdown_spelled_names(text: str) -> list[str]:
    """Dotted ``gnnagg.…`` names in a Markdown text's code: inline literals and code blocks."""
    code = re.findall(r"```\w*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return sorted({name for chunk in code + inline for name in _DOTTED.findall(chunk)})


def rst_spelled_names(text: str) -> list[str]:
    """Dotted ``gnnagg.…`` names in an RST text's literals and python code blocks (not in
    cross-reference targets such as :func:`~gnnagg.x.f`, which Sphinx resolves itself)."""
    literals = re.findall(r"``(.+?)``", text)
    chunks = literals + rst_python_blocks(text)
    return sorted({name for chunk in chunks for name in _DOTTED.findall(chunk)})


def resolve(dotted: str) -> object:
    """Look ``dotted`` up as a user's code would: ``import`` its module, then attribute access
    from the top-level package (so a package attribute that shadows a subpackage is caught)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:end]))
            break
        except ModuleNotFoundError:
            continue
    obj = importlib.import_module(parts[0])
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj
