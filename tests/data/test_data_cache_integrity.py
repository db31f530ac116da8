"""The built-data cache: no pickled code runs, built files are hash-checked, names stay inside
their folders, and concurrent fetches of one stale build both succeed."""

import ast
import json
import multiprocessing
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from gnnagg.data import FetchError, catalog, fetch, load_manifest, sha256_file
from gnnagg.data.download import (
    FixtureFile,
    ManifestEntry,
    RawFile,
    check_relative_path,
    datasets_dir,
    ensure_raw_files,
    fixture_files,
)
from gnnagg.data.safe_load import UnsafeFileError, load_collated, load_weights_only

STAMP = "BUILD.json"


def make_marker(path: str) -> None:
    os.mkdir(path)


class _Payload:
    """Unpickling this creates the folder ``marker``: proof that pickled code ran. It calls a
    function of an ordinary module (torch blocks a few modules such as ``os`` by name; an
    attacker picks any other importable function)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (make_marker, (self.marker,))


def _write_malicious(path: Path, marker: Path) -> None:
    torch.save((_Payload(marker), {}, dict), path)


def _restamp(folder: Path) -> None:
    # An attacker who can write the cache can rewrite the stamp's hashes as well.
    stamp = json.loads((folder / STAMP).read_text())
    stamp["outputs"] = {
        rel: sha256_file(folder / rel) for rel in stamp["outputs"] if (folder / rel).is_file()
    }
    (folder / STAMP).write_text(json.dumps(stamp))


def test_load_weights_only_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    _write_malicious(path, marker)
    with pytest.raises(UnsafeFileError, match="refused to load .*evil.pt.*never unpickles"):
        load_weights_only(path)
    with pytest.raises(UnsafeFileError):
        load_collated(path)
    assert not marker.exists()


def test_pyg_fs_torch_load_would_have_run_it(tmp_path):
    # Why gnnagg does not use PyG's loader: it retries with weights_only=False.
    from torch_geometric.io import fs

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    _write_malicious(path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fs.torch_load(str(path))
        except Exception:  # noqa: BLE001 (only the marker matters here)
            pass
    assert marker.exists()


BUILT_FILES = {
    "mutag": "MUTAG/processed/data.pt",
    "qm9": "qm9.pt",
    "airfoil": "airfoil.pt",
    "freesolv": "ogbg_molfreesolv/processed/geometric_data_processed.pt",
}


def _needs(name):
    if name == "qm9":
        pytest.importorskip("pandas")
    if name == "airfoil":
        pytest.importorskip("scipy")
    if name == "freesolv":
        for module in ("pandas", "rdkit", "ogb"):
            pytest.importorskip(module)


@pytest.mark.parametrize("name", sorted(BUILT_FILES))
def test_tampered_built_file_with_rewritten_stamp_is_refused_not_run(tmp_path, name):
    _needs(name)
    fetch(name, root=tmp_path, fixture=True)
    folder = tmp_path / "built" / f"{name}-fixture"
    marker = tmp_path / "pwned"
    _write_malicious(folder / BUILT_FILES[name], marker)
    _restamp(folder)
    with pytest.raises(UnsafeFileError):
        fetch(name, root=tmp_path, fixture=True)
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(BUILT_FILES))
def test_tampered_built_file_is_rebuilt(tmp_path, name):
    _needs(name)
    first = fetch(name, root=tmp_path, fixture=True)
    folder = tmp_path / "built" / f"{name}-fixture"
    marker = tmp_path / "pwned"
    _write_malicious(folder / BUILT_FILES[name], marker)
    with pytest.warns(catalog.CacheRebuildWarning, match="do not match their sha256"):
        again = fetch(name, root=tmp_path, fixture=True)
    assert not marker.exists() and len(again) == len(first)


def test_ogb_pre_transform_pickle_is_never_loaded(tmp_path):
    _needs("freesolv")
    fetch("freesolv", root=tmp_path, fixture=True)
    folder = tmp_path / "built" / "freesolv-fixture"
    marker = tmp_path / "pwned"
    # PyG's Dataset unpickles these with weights_only=False when they exist.
    for name in ("pre_transform.pt", "pre_filter.pt"):
        _write_malicious(folder / "ogbg_molfreesolv" / "processed" / name, marker)
    with pytest.warns(catalog.CacheRebuildWarning, match="extra"):
        fetch("freesolv", root=tmp_path, fixture=True)
    for name in ("pre_transform.pt", "pre_filter.pt"):
        _write_malicious(folder / "ogbg_molfreesolv" / "processed" / name, marker)
    _write_malicious(folder / "ogbg_molfreesolv" / "split" / "scaffold" / "split_dict.pt", marker)
    _restamp(folder)
    stamp = json.loads((folder / STAMP).read_text())
    for rel in (
        "ogbg_molfreesolv/processed/pre_transform.pt",
        "ogbg_molfreesolv/processed/pre_filter.pt",
        "ogbg_molfreesolv/split/scaffold/split_dict.pt",
    ):
        stamp["outputs"][rel] = sha256_file(folder / rel)
    (folder / STAMP).write_text(json.dumps(stamp))
    dataset = fetch("freesolv", root=tmp_path, fixture=True)
    with pytest.raises(UnsafeFileError):
        dataset.get_idx_split()
    assert not marker.exists()


# Item: built files are hash-checked (flip, truncate, delete, extra, link).


@pytest.fixture
def airfoil_cache(tmp_path):
    pytest.importorskip("scipy")
    reference = fetch("airfoil", root=tmp_path, fixture=True)
    return tmp_path, tmp_path / "built" / "airfoil-fixture", reference


def _assert_rebuilt(root, reference, match):
    with pytest.warns(catalog.CacheRebuildWarning, match=match):
        data = fetch("airfoil", root=root, fixture=True)
    assert torch.equal(data.pos, reference.pos)
    assert torch.equal(data.edge_index, reference.edge_index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and the rebuilt cache is trusted again
        fetch("airfoil", root=root, fixture=True)


def test_one_flipped_byte_in_a_built_file_is_rebuilt(airfoil_cache):
    root, folder, reference = airfoil_cache
    path = folder / "airfoil.pt"
    blob = bytearray(path.read_bytes())
    # A byte inside the tensor storage: the file still loads, with different positions.
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    _assert_rebuilt(root, reference, "airfoil.pt.*sha256")


def test_truncated_built_file_is_rebuilt(airfoil_cache):
    root, folder, reference = airfoil_cache
    path = folder / "airfoil.pt"
    path.write_bytes(path.read_bytes()[:100])
    _assert_rebuilt(root, reference, "sha256")


def test_deleted_built_file_is_rebuilt(airfoil_cache):
    root, folder, reference = airfoil_cache
    (folder / "airfoil.pt").unlink()
    _assert_rebuilt(root, reference, "missing")


def test_deleted_or_garbled_stamp_is_rebuilt(airfoil_cache):
    root, folder, reference = airfoil_cache
    (folder / STAMP).write_text("[1, 2")
    _assert_rebuilt(root, reference, "unreadable")
    (folder / STAMP).unlink()
    _assert_rebuilt(root, reference, "missing")


def test_link_in_a_built_folder_is_rebuilt(airfoil_cache, tmp_path_factory):
    root, folder, reference = airfoil_cache
    outside = tmp_path_factory.mktemp("outside") / "airfoil.pt"
    shutil.copy(folder / "airfoil.pt", outside)
    (folder / "airfoil.pt").unlink()
    (folder / "airfoil.pt").symlink_to(outside)
    _assert_rebuilt(root, reference, "link")
    assert outside.is_file()  # the link was dropped, not what it pointed at


# Item: names stay inside their folders.


@pytest.mark.parametrize(
    "bad", ["../outside.csv", "/etc/passwd", "a/b.csv", "..", ".", "", "a\\b", ".hidden", "x\0y"]
)
def test_manifest_file_names_must_be_plain(bad):
    with pytest.raises(ValueError, match="files\\[\\].name"):
        RawFile(bad, "pkg/data/x.csv", "0" * 64)
    with pytest.raises(ValueError, match="fixture.files\\[\\].name"):
        FixtureFile(bad, "fixtures/x.csv", "0" * 64)


@pytest.mark.parametrize("bad", ["../x.csv", "fixtures/../../x.csv", "/abs/x.csv", "a//b", "a/"])
def test_fixture_paths_must_be_relative_and_inside(bad):
    with pytest.raises(ValueError, match="relative path"):
        check_relative_path(bad, "fixture.files[].path")
    with pytest.raises(ValueError, match="fixture.files\\[\\].path"):
        FixtureFile("x.csv", bad, "0" * 64)
    assert check_relative_path("fixtures/zinc-plogp/train.csv.gz", "p")


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "../raw"),
        ("package", "--index-url=http://example.invalid"),
        ("package", "../pkg"),
        ("version", "1.0 --pre"),
        ("card", "../../README.md"),
    ],
)
def test_manifest_entry_fields_are_validated(field, value):
    fields = dict(
        name="toy", package="toy-pkg", version="1.0", files=(), licence="", source="", card="a.md"
    )
    fields[field] = value
    with pytest.raises(ValueError, match=field if field != "name" else "data set name"):
        ManifestEntry(**fields)


def test_manifest_with_an_escaping_name_is_refused_on_load(tmp_path):
    manifest = json.loads((datasets_dir() / "manifest.json").read_text())
    manifest["datasets"]["airfoil"]["files"][0]["name"] = "../../victim.txt"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="'airfoil'.*victim"):
        load_manifest(path)


def test_cache_check_never_touches_a_file_outside_the_cache(tmp_path):
    # A link planted in the raw cache pointing outside is removed, its target neither read
    # (hashed) nor deleted.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    root = tmp_path / "cache"
    raw_dir = root / "raw" / "toy"
    raw_dir.mkdir(parents=True)
    (raw_dir / "toy.csv").symlink_to(victim)
    entry = ManifestEntry(
        "toy", "toy-pkg", "1.0", (RawFile("toy.csv", "toy/toy.csv", "0" * 64),), "", "", "t.md"
    )

    def dead(requirement, dest, pip_args, timeout):
        raise FetchError("offline (simulated)")

    with pytest.raises(FetchError, match="symbolic link"):
        ensure_raw_files(entry, root, downloader=dead)
    assert victim.read_text() == "keep me" and not (raw_dir / "toy.csv").exists()


def test_raw_folder_linked_outside_the_cache_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "cache"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "toy").symlink_to(outside, target_is_directory=True)
    entry = ManifestEntry(
        "toy", "toy-pkg", "1.0", (RawFile("toy.csv", "toy/toy.csv", "0" * 64),), "", "", "t.md"
    )
    with pytest.raises(FetchError, match="outside"):
        ensure_raw_files(entry, root, downloader=lambda *a: None)


def test_fixture_link_out_of_the_datasets_folder_is_refused(tmp_path):
    entry = load_manifest()["airfoil"]
    base = tmp_path / "datasets"
    (base / "fixtures" / "airfoil").mkdir(parents=True)
    (base / "fixtures" / "airfoil" / "airfoil.mat").symlink_to(tmp_path / "elsewhere.mat")
    with pytest.raises(FetchError, match="outside"):
        fixture_files(entry, base=base)


@pytest.mark.parametrize("subset", ["../../../escape", "3", 2.5, True, 0, -1])
def test_option_values_that_would_name_a_path_are_refused(tmp_path, subset):
    with pytest.raises((TypeError, ValueError), match="subset"):
        fetch("qm9", root=tmp_path, fixture=True, subset=subset)
    assert not (tmp_path / "built").exists()


# Item: two processes that find the same stale build.


def _fetch_in_process(root, barrier, results, index):
    try:
        barrier.wait(timeout=60)
        data = fetch("mutag", root=root, fixture=True)
        results[index] = f"ok {len(data)}"
    except BaseException as err:  # noqa: BLE001 (report it to the parent)
        results[index] = f"{type(err).__name__}: {err}"


def test_two_processes_rebuilding_the_same_stale_build_both_succeed(tmp_path):
    fetch("mutag", root=tmp_path, fixture=True)
    folder = tmp_path / "built" / "mutag-fixture"
    stamp = json.loads((folder / STAMP).read_text())
    (folder / STAMP).write_text(json.dumps({**stamp, "recipe_version": -1}))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    with context.Manager() as manager:
        results = manager.dict()
        workers = [
            context.Process(target=_fetch_in_process, args=(str(tmp_path), barrier, results, i))
            for i in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        outcome = dict(results)
    assert outcome == {0: "ok 41", 1: "ok 41"}, outcome
    assert json.loads((folder / STAMP).read_text())["recipe_version"] == stamp["recipe_version"]
    leftovers = [p.name for p in (tmp_path / "built").iterdir() if p.name != "mutag-fixture"]
    assert leftovers == []


def test_discarding_a_build_that_another_process_removed_is_not_an_error(tmp_path):
    catalog._discard(tmp_path / "gone")  # raised FileNotFoundError when two raced
    folder = tmp_path / "present"
    folder.mkdir()
    (folder / "f").write_text("x")
    catalog._discard(folder)
    assert list(tmp_path.iterdir()) == []


def _unsafe_calls(tree):
    """Calls that can unpickle arbitrary objects: torch.load without weights_only=True, PyG's
    fs.torch_load / InMemoryDataset.load (retry with weights_only=False), pickle, np.load with
    allow_pickle."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name == "torch.load" and keywords.get("weights_only") != "True":
            yield node.lineno, name
        elif name.endswith("torch_load") or name in ("self.load", "InMemoryDataset.load"):
            yield node.lineno, name
        elif name.split(".")[0] in ("pickle", "dill", "joblib", "shelve", "marshal"):
            yield node.lineno, name
        elif name in ("np.load", "numpy.load") and keywords.get("allow_pickle") == "True":
            yield node.lineno, name


def test_no_module_of_gnnagg_unpickles_arbitrary_objects():
    package = Path(catalog.__file__).parents[1]
    offenders = [
        f"{path.relative_to(package)}:{line}: {name}"
        for path in sorted(package.rglob("*.py"))
        for line, name in _unsafe_calls(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []
    # The guard itself finds what it is meant to.
    bad = "torch.load(p)\nfs.torch_load(p)\npickle.loads(b)\nnp.load(p, allow_pickle=True)"
    assert len(list(_unsafe_calls(ast.parse(bad)))) == 4


def test_cache_subfolders_linked_outside_are_refused_before_anything_is_created(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "cache"
    root.mkdir()
    (root / "built").symlink_to(outside, target_is_directory=True)
    with pytest.raises(FetchError, match="outside"):
        fetch("mutag", root=root, fixture=True)
    (root / "built").unlink()
    (root / "raw").symlink_to(outside, target_is_directory=True)
    entry = ManifestEntry(
        "toy", "toy-pkg", "1.0", (RawFile("toy.csv", "toy/toy.csv", "0" * 64),), "", "", "t.md"
    )
    with pytest.raises(FetchError, match="outside"):
        ensure_raw_files(entry, root, downloader=lambda *a: None)
    assert list(outside.iterdir()) == []


def test_a_read_only_cache_that_holds_the_build_loads_without_a_lock(airfoil_cache, monkeypatch):
    root, folder, reference = airfoil_cache

    def read_only(*args, **kwargs):  # what a read-only folder does to the lock file
        raise PermissionError(13, "Permission denied", str(root / ".locks" / "airfoil.lock"))

    monkeypatch.setattr(catalog, "_build_lock", read_only)
    data = fetch("airfoil", root=root, fixture=True)
    assert torch.equal(data.pos, reference.pos)
    if os.geteuid() != 0:  # root writes anyway; elsewhere check the real thing too
        monkeypatch.undo()
        for path in (root, *root.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o555)
        try:
            assert torch.equal(fetch("airfoil", root=root, fixture=True).pos, reference.pos)
        finally:
            for path in (root, *root.rglob("*")):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)


def test_a_fifo_planted_as_the_build_stamp_is_never_read(airfoil_cache):
    root, folder, reference = airfoil_cache
    (folder / STAMP).unlink()
    os.mkfifo(folder / STAMP)  # a read would block for ever
    _assert_rebuilt(root, reference, "")
