"""Atomic writes that never follow a link (gnnagg._files)."""

import ast
import os
from pathlib import Path

import pytest

from gnnagg._files import atomic_write, write_bytes, write_text


def test_a_write_replaces_a_planted_link_instead_of_following_it(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.json").symlink_to(outside)
    write_text(folder / "results.json", "new")
    assert outside.read_text() == "keep"
    assert not (folder / "results.json").is_symlink()
    assert (folder / "results.json").read_text() == "new"
    assert oct(os.stat(folder / "results.json").st_mode & 0o777) == "0o644"


def test_planted_temporary_names_are_never_opened(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    folder = tmp_path / "out"
    folder.mkdir()
    for name in (".x.pt.tmp", ".x.pt.sha256.tmp", ".results.json.tmp"):
        (folder / name).symlink_to(outside)
    write_bytes(folder / "x.pt", b"data")
    assert outside.read_bytes() == b"keep" and (folder / "x.pt").read_bytes() == b"data"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


# -- every writer of the package goes through gnnagg._files -------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "gnnagg"
# Calls that write, rename or create files by name (they follow a link planted at the name).
WRITERS = {"os.replace", "os.rename", "shutil.copyfile", "shutil.copy", "shutil.copy2",
           "shutil.copytree", "shutil.move", "tempfile.mkstemp", "tempfile.mkdtemp",
           "tempfile.NamedTemporaryFile"}
# Methods that write by name: path.write_text(...), figure.savefig(...) (the helpers of
# gnnagg._files are plain functions: write_text(path, ...)).
METHODS = {"write_text", "write_bytes", "savefig"}
# Serialisers: fine into a handle that atomic_write passes in, not into a name.
SAVERS = {"save", "savez", "savez_compressed", "savetxt", "dump"}
# (file, call) -> why it may write on its own.
ALLOWED = {
    ("gnnagg/_files.py", "tempfile.mkstemp"): "the helper itself",
    ("gnnagg/_files.py", "os.replace"): "the helper itself",
    ("gnnagg/_files.py", "savefig"): "into a BytesIO",
    ("gnnagg/data/catalog.py", "tempfile.mkdtemp"): "the private folder a build is made in",
    ("gnnagg/data/catalog.py", "os.rename"): "a finished build folder moves into place",
    ("gnnagg/data/catalog.py", "os.replace"): "a stale build folder is renamed aside",
    ("gnnagg/data/catalog.py", "open a+b"): "the lock file, checked to resolve inside the cache",
    ("gnnagg/data/qm9.py", "save"): "PyG's collated format, inside the private build folder",
    ("gnnagg/bench/measure.py", "open w"): "/proc/self/clear_refs",
}


def _writes(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = ast.unparse(func)
        name = func.attr if isinstance(func, ast.Attribute) else dotted
        if dotted in WRITERS or (isinstance(func, ast.Attribute) and name in METHODS):
            found.append((dotted if dotted in WRITERS else name, node.lineno))
        elif name == "open":
            mode = node.args[1] if len(node.args) > 1 else None
            if isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+"):
                found.append((f"open {mode.value}", node.lineno))
        elif isinstance(func, ast.Attribute) and name in SAVERS:
            target = node.args[0] if name.startswith(("savez", "savetxt")) else (
                node.args[1] if len(node.args) > 1 else None)
            handle = False
            scope = parents.get(node)
            while scope is not None and isinstance(target, ast.Name):
                if isinstance(scope, (ast.Lambda, ast.FunctionDef)) and target.id in {
                        a.arg for a in scope.args.args}:
                    handle = True
                    break
                scope = parents.get(scope)
            if not handle and not (isinstance(target, ast.Name) and target.id == "buffer"):
                found.append((name, node.lineno))
    return found


def test_every_file_the_package_writes_goes_through_the_atomic_helper():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        for call, line in _writes(path):
            if (relative, call) not in ALLOWED:
                offenders.append(f"{relative}:{line}: {call}")
    assert not offenders, "write these with gnnagg._files:\n" + "\n".join(offenders)
