"""Atomic writes that never follow a link (gnnagg._files)."""

import os

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
