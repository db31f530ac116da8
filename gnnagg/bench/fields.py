"""Study configs whose fields are declared once: the dataclass field carries its check, its
command-line option and whether ``gnnagg-bench run`` may override it.

A study's config is a dataclass deriving from :class:`StudyConfig` whose fields are made with
:func:`setting`::

    @dataclass
    class MyConfig(StudyConfig):
        epochs: int = setting(30, check_positive, "epochs per model", override=True)
        aggregators: tuple[str, ...] = setting(("sum",), names(AGGREGATORS), "aggregators")

From that one declaration the harness derives:

* validation: ``__post_init__`` runs every field's check (which may normalise the value, e.g.
  a list into a tuple) and then :meth:`StudyConfig.validate` for checks across fields;
* the subcommand's options (:func:`add_options`): ``--epochs N``, ``--aggregators A [A ...]``,
  ``--flag/--no-flag`` for booleans, typed from the field's annotation;
* the config a subcommand runs (:func:`config_from_args`): the options given, over the
  study's command defaults;
* the overrides of ``gnnagg-bench run`` (``override=True``): one option that sets the field
  in every study of the suite that has it.

Configs round-trip through ``results.json`` as ``dataclasses.asdict``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .validation import check_bool, check_finite, check_int, check_names, check_seeds

__all__ = [
    "Setting",
    "StudyConfig",
    "add_options",
    "add_override_options",
    "apply_overrides",
    "batch_size_setting",
    "bool_check",
    "config_from_args",
    "download_setting",
    "epochs_setting",
    "finite",
    "hidden_channels_setting",
    "integer",
    "job_budget_setting",
    "jobs_setting",
    "lr_setting",
    "names",
    "num_layers_setting",
    "optional",
    "override_settings",
    "positive_int",
    "seeds_check",
    "seeds_setting",
    "setting",
]

Check = Callable[[Any, str], Any]


def positive_int(text: str) -> int:
    """An ``argparse`` type: a positive integer, or a usage error that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """What the harness knows about one config field (see :func:`setting`)."""

    check: Check | None
    help: str
    flag: str | None
    metavar: str | None
    choices: Callable[[], Sequence[str]] | None
    from_cli: Callable[[Any], Any] | None
    cli_type: Callable[[str], Any] | None
    override: bool


def setting(
    default: Any,
    check: Check | None = None,
    help: str = "",
    *,
    flag: str | None = "",
    metavar: str | None = None,
    choices: Callable[[], Sequence[str]] | None = None,
    from_cli: Callable[[Any], Any] | None = None,
    cli_type: Callable[[str], Any] | None = None,
    override: bool = False,
) -> Any:
    """A dataclass field declared once.

    Args:
        default: the default value (tuples, not lists: configs are compared and hashed).
        check: ``check(value, name) -> value``, raising a ``ValueError`` that starts with the
            field's name; it may normalise (``list`` -> ``tuple``).
        help: one line for ``--help``.
        flag: the option (``""``: ``--field-name``; ``None``: not on the command line).
        metavar: the option's placeholder in ``--help``.
        choices: the valid names, listed in ``--help`` (a callable, evaluated when the parser
            is built, so registries may grow).
        from_cli: turns the option's value into the field's (e.g. a count of seeds into
            ``(0, ..., n-1)``, minutes into seconds). A tuple field's option takes a list of
            values, unless ``from_cli`` is given: then it takes one.
        cli_type: the ``argparse`` type of one value, when the annotation's is not the
            option's (e.g. :func:`positive_int`).
        override: ``gnnagg-bench run --<flag>`` sets the field in every study of the suite.
    """
    meta = Setting(check, help, flag, metavar, choices, from_cli, cli_type, override)
    return dataclasses.field(default=default, metadata={"setting": meta})


class StudyConfig:
    """Base of the studies' config dataclasses: validates every :func:`setting` field, then
    :meth:`validate` for what spans fields."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            meta = field.metadata.get("setting")
            if meta is not None and meta.check is not None:
                setattr(self, field.name, meta.check(getattr(self, field.name), field.name))
        self.validate()

    def validate(self) -> None:
        """Checks across fields (each field's own check has run); ``ValueError`` naming them."""


# -- checks ----------------------------------------------------------------------------------


def integer(minimum: int = 1, maximum: int | None = None) -> Check:
    """An int in ``[minimum, maximum]``."""

    def check(value: Any, name: str) -> int:
        return check_int(value, name, minimum=minimum, maximum=maximum)

    return check


def finite(positive: bool = False, maximum: float | None = None) -> Check:
    """A finite float (``positive``: > 0, else >= 0), at most ``maximum``."""

    def check(value: Any, name: str) -> float:
        return check_finite(value, name, positive=positive, maximum=maximum)

    return check


def names(valid: Callable[[], Sequence[str]] | Sequence[str]) -> Check:
    """A non-empty tuple of names from ``valid`` (a sequence, or a callable giving one)."""

    def check(value: Any, name: str) -> tuple[str, ...]:
        return check_names(value, tuple(valid() if callable(valid) else valid), name)

    return check


def optional(inner: Check) -> Check:
    """``None``, or what ``inner`` accepts."""

    def check(value: Any, name: str) -> Any:
        return None if value is None else inner(value, name)

    return check


def bool_check(value: Any, name: str) -> bool:
    """A bool (not an int standing in for one)."""
    return check_bool(value, name)


def seeds_check(value: Any, name: str) -> tuple[int, ...]:
    """Distinct non-negative seeds."""
    return check_seeds(value, name)


# -- settings several studies share (declared here once) -------------------------------------


def seeds_setting(default: tuple[int, ...]) -> Any:
    """``seeds``: the seeds a study trains (``--seeds N``: seeds ``0 .. N-1``)."""
    return setting(
        default, seeds_check, "number of seeds (seeds 0 .. N-1)", cli_type=positive_int,
        metavar="N", from_cli=lambda n: tuple(range(n)),
    )  # fmt: skip


def epochs_setting(default: int, maximum: int = 1_000_000) -> Any:
    """``epochs``: training epochs per model (a ``gnnagg-bench run`` override)."""
    return setting(
        default, integer(maximum=maximum), "epochs per model", cli_type=positive_int,
        override=True,
    )  # fmt: skip


def jobs_setting() -> Any:
    """``jobs``: training jobs at once, each a worker process (a ``run`` override)."""
    from .jobs import MAX_JOBS

    return setting(
        1, integer(maximum=MAX_JOBS),
        "training jobs at once, each a worker process with threads // jobs torch threads",
        cli_type=positive_int, override=True,
    )  # fmt: skip


def lr_setting(default: float) -> Any:
    """``lr``: the optimiser's learning rate (a ``run`` override)."""
    return setting(default, finite(positive=True), "learning rate", override=True)


def hidden_channels_setting(default: int) -> Any:
    """``hidden_channels``: the models' width."""
    return setting(default, integer(maximum=1 << 14), "width of the model", cli_type=positive_int)


def num_layers_setting(default: int) -> Any:
    """``num_layers``: message-passing layers of the model."""
    return setting(default, integer(maximum=64), "message-passing layers", cli_type=positive_int)


def download_setting() -> Any:
    """``download``: fetch the full data sets (else the committed fixtures, no network)."""
    return setting(
        False, bool_check,
        "fetch the full data sets (they fall back to their fixtures without network)",
    )  # fmt: skip


def batch_size_setting(default: int) -> Any:
    """``batch_size``: examples per optimiser step (a ``run`` override)."""
    return setting(
        default, integer(maximum=1 << 20), "examples per step", cli_type=positive_int,
        override=True,
    )  # fmt: skip


def job_budget_setting() -> Any:
    """``time_budget_s``: seconds of training per job in this run (``--job-minutes M``)."""
    return setting(
        None, optional(finite(positive=True)),
        "training budget per job in this run, in minutes (a rerun with the same --out "
        "continues from the checkpoints)",
        flag="--job-minutes", cli_type=_positive_float, metavar="M",
        from_cli=lambda minutes: 60.0 * minutes, override=True,
    )  # fmt: skip


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# -- command line ----------------------------------------------------------------------------

_TUPLE = re.compile(r"tuple\[(\w+), \.\.\.\]")
_SCALARS: dict[str, Callable[[str], Any]] = {"int": int, "float": _finite_float, "str": str}


def _annotation(field: dataclasses.Field) -> tuple[str, bool, bool]:
    """``(element type, is a tuple, may be None)`` from the field's annotation (its text under
    ``from __future__ import annotations``, else the type itself)."""
    kind = field.type
    if not isinstance(kind, str):
        kind = _annotation_text(kind)
    parts = [p.strip() for p in kind.split("|")]
    nullable = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) != 1:
        raise TypeError(f"{field.name}: unsupported annotation {kind!r} for a command option")
    match = _TUPLE.fullmatch(parts[0])
    if match:
        return match.group(1), True, nullable
    return parts[0], False, nullable


def _annotation_text(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation_text(a) for a in args)
    if origin is tuple:
        return f"tuple[{_annotation_text(args[0])}, ...]"
    return "None" if kind is type(None) else getattr(kind, "__name__", str(kind))


def _flag(field: dataclasses.Field, meta: Setting) -> str:
    return meta.flag or "--" + field.name.replace("_", "-")


def _option_kwargs(field: dataclasses.Field, meta: Setting) -> dict[str, Any]:
    kind, many, _ = _annotation(field)
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": field.name}
    help_text = meta.help
    if meta.choices is not None:
        valid = list(meta.choices())
        kwargs["choices"] = valid
        help_text = f"{help_text} (choices: {', '.join(valid)})" if help_text else (
            f"choices: {', '.join(valid)}"
        )
    # A tuple field takes a list of values, unless from_cli builds it from one value.
    many = many and meta.from_cli is None
    if kind == "bool" and not many and meta.cli_type is None:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = meta.cli_type or _SCALARS.get(kind, str)
        if many:
            kwargs["nargs"] = "+"
    if meta.metavar:
        kwargs["metavar"] = meta.metavar
    elif meta.choices is not None:
        kwargs["metavar"] = field.name.rstrip("s").upper() or "NAME"
    kwargs["help"] = help_text or None
    return kwargs


def _cli_fields(config_type: type) -> list[tuple[dataclasses.Field, Setting]]:
    out = []
    for field in dataclasses.fields(config_type):
        meta = field.metadata.get("setting")
        if meta is not None and meta.flag is not None:
            out.append((field, meta))
    return out


def add_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    """One option per :func:`setting` field of ``config_type`` that has a flag (options not
    given keep the study's command defaults: see :func:`config_from_args`)."""
    for field, meta in _cli_fields(config_type):
        parser.add_argument(_flag(field, meta), **_option_kwargs(field, meta))


def _cli_value(field: dataclasses.Field, meta: Setting, value: Any) -> Any:
    if isinstance(value, list):
        value = tuple(value)
    return meta.from_cli(value) if meta.from_cli is not None else value


def config_from_args(args: argparse.Namespace, base: Any) -> Any:
    """``base`` (a config) with the options of :func:`add_options` that were given;
    ``ValueError`` (naming the option) when a value is invalid."""
    changes: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for field, meta in _cli_fields(type(base)):
        if hasattr(args, field.name):
            changes[field.name] = _cli_value(field, meta, getattr(args, field.name))
            flags[field.name] = _flag(field, meta)
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as error:
        raise ValueError(_name_flag(str(error), flags)) from None


def _name_flag(message: str, flags: dict[str, str]) -> str:
    field = message.split(":", 1)[0].split(" ", 1)[0]
    return f"{flags[field]}: {message}" if field in flags else message


def override_settings(config_types: Sequence[type]) -> dict[str, tuple[dataclasses.Field, Setting]]:
    """The ``override=True`` fields of ``config_types`` by field name; ``TypeError`` when two
    studies declare the same overridable field with different flags or types (one option
    sets both)."""
    found: dict[str, tuple[dataclasses.Field, Setting]] = {}
    for config_type in config_types:
        for field, meta in _cli_fields(config_type):
            if not meta.override:
                continue
            if field.name in found:
                other, other_meta = found[field.name]
                if (
                    _flag(other, other_meta) != _flag(field, meta)
                    or _annotation(other) != _annotation(field)
                    or other_meta.from_cli is not meta.from_cli
                    and (other_meta.from_cli is None or meta.from_cli is None)
                ):
                    raise TypeError(
                        f"{field.name}: declared as an override with different options in "
                        f"{config_type.__name__} and another study"
                    )
                continue
            found[field.name] = (field, meta)
    return found


def add_override_options(group: Any, config_types: Sequence[type]) -> None:
    """The override options of ``gnnagg-bench run`` (one per overridable field)."""
    for _name, (field, meta) in override_settings(config_types).items():
        group.add_argument(_flag(field, meta), **_option_kwargs(field, meta))


def apply_overrides(
    configs: dict[str, Any], args: argparse.Namespace, config_types: Sequence[type]
) -> dict[str, Any]:
    """``configs`` (by study) with the override options given in ``args`` applied to every
    config that has the field; ``ValueError`` when no config has it or a value is invalid."""
    out = dict(configs)
    for name, (field, meta) in override_settings(config_types).items():
        if not hasattr(args, name):
            continue
        value = _cli_value(field, meta, getattr(args, name))
        flag = _flag(field, meta)
        targets = [
            key
            for key, config in out.items()
            if any(f.name == name for f in dataclasses.fields(config))
        ]
        if not targets:
            raise ValueError(f"{flag}: no study of this suite takes it")
        for key in targets:
            try:
                out[key] = dataclasses.replace(out[key], **{name: value})
            except ValueError as error:
                raise ValueError(f"{flag}: {error}") from None
    return out
