"""Config fields declared once: the check, the option, the override all come from the field."""

import argparse
from dataclasses import dataclass

import pytest

from gnnagg.bench.fields import (
    StudyConfig,
    add_options,
    add_override_options,
    apply_overrides,
    config_from_args,
    epochs_setting,
    integer,
    names,
    optional,
    positive_int,
    seeds_setting,
    setting,
)


@dataclass
class Toy(StudyConfig):
    colours: tuple[str, ...] = setting(("red",), names(("red", "blue")), "colours",
                                       choices=lambda: ("red", "blue"))  # fmt: skip
    seeds: tuple[int, ...] = seeds_setting((0,))
    epochs: int = epochs_setting(3)
    width: int | None = setting(None, optional(integer(maximum=64)), "width",
                                cli_type=positive_int)  # fmt: skip
    sizes: tuple[int, ...] = setting((2, 4), lambda v, n: tuple(v), "sizes",
                                     cli_type=positive_int)  # fmt: skip
    fast: bool = setting(False, lambda v, n: v, "go fast")
    hidden: str = setting("x", None, "not an option", flag=None)

    def validate(self):
        if self.width is not None and self.width < len(self.colours):
            raise ValueError("width: narrower than the colours")


def _parse(argv, base=None):
    parser = argparse.ArgumentParser()
    add_options(parser, Toy)
    return config_from_args(parser.parse_args(argv), base or Toy())


def test_options_come_from_the_fields_and_keep_the_defaults_not_given():
    assert _parse([]) == Toy()
    config = _parse(["--colours", "blue", "red", "--seeds", "3", "--width", "8", "--sizes",
                     "5", "6", "--fast", "--epochs", "2"])  # fmt: skip
    assert config.colours == ("blue", "red") and config.seeds == (0, 1, 2)
    assert (config.width, config.sizes, config.fast, config.epochs) == (8, (5, 6), True, 2)
    assert _parse(["--no-fast"], Toy(fast=True)).fast is False
    # The base's values survive the options that were not given.
    assert _parse(["--epochs", "9"], Toy(colours=("blue",))).colours == ("blue",)
    parser = argparse.ArgumentParser()
    add_options(parser, Toy)
    assert "--hidden" not in parser.format_help()


@pytest.mark.parametrize(
    ("argv", "match"),
    [(["--colours", "green"], "invalid choice"), (["--seeds", "0"], "positive integer"),
     (["--width", "x"], "positive integer")],
)  # fmt: skip
def test_bad_option_values_are_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert match in capsys.readouterr().err


def test_checks_run_on_construction_and_name_the_option_from_the_command_line():
    with pytest.raises(ValueError, match="width must be at most"):
        Toy(width=65)
    with pytest.raises(ValueError, match="width: narrower"):
        Toy(colours=("red", "blue"), width=1)
    with pytest.raises(ValueError, match="--width: width"):
        _parse(["--width", "100"])


def test_overrides_set_the_field_in_every_config_that_has_it():
    @dataclass
    class Other(StudyConfig):
        epochs: int = epochs_setting(7)

    parser = argparse.ArgumentParser()
    add_override_options(parser, [Toy, Other])
    args = parser.parse_args(["--epochs", "5"])
    out = apply_overrides({"toy": Toy(), "other": Other()}, args, [Toy, Other])
    assert out["toy"].epochs == 5 and out["other"].epochs == 5
    with pytest.raises(ValueError, match="--epochs: no study"):
        apply_overrides({}, args, [Toy, Other])
