"""Suite configs: the predefined suites are valid, round-trip through JSON, and reject bad
values with errors that name the argument."""

import json

import pytest

from gnnagg.bench.config import SuiteConfig, suite_config, suite_from_dict
from gnnagg.bench.registry import AGGREGATORS
from gnnagg.bench.studies.real.config import RealConfig
from gnnagg.bench.studies.sizegen.config import QUICK_AGGREGATORS, SizeGenConfig
from gnnagg.bench.studies.speed.config import SpeedConfig
from gnnagg.data import TASKS


def test_quick_suite_is_the_core_line_up_on_one_thread():
    quick = suite_config("quick")
    assert quick.sizegen.tasks == ("second_minimum",)
    assert quick.sizegen.aggregators == QUICK_AGGREGATORS and len(QUICK_AGGREGATORS) == 11
    assert quick.sizegen.train_sizes == tuple(range(2, 17))
    assert quick.sizegen.test_sizes == (16, 32, 64, 128)
    assert quick.sizegen.seeds == (0, 1)
    assert not quick.real.download and quick.speed.quick
    assert quick.threads == 1


def test_full_suite_covers_every_task_aggregator_and_size_256():
    full = suite_config("full", seeds=4, device="cpu")
    assert set(full.sizegen.tasks) == set(TASKS)
    assert full.sizegen.aggregators == tuple(AGGREGATORS)
    assert full.sizegen.test_sizes[-1] == 256
    assert full.sizegen.seeds == (0, 1, 2, 3)
    assert full.real.datasets == ("zinc-plogp", "freesolv", "mutag") and full.real.download
    assert full.speed.aggr_methods is None and full.threads is None


@pytest.mark.parametrize("name", ["quick", "full"])
def test_configs_round_trip_through_json(name):
    config = suite_config(name)
    again = suite_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: suite_config("medium"), "suite: unknown suite 'medium'; valid suites"),
        (lambda: suite_config("quick", seeds=0), "seeds"),
        (lambda: SizeGenConfig(tasks=("sorting",)), "tasks has unknown entries \\['sorting'\\]"),
        (lambda: SizeGenConfig(aggregators=("sum", "median")), "valid names are"),
        (lambda: SizeGenConfig(epochs=0), "epochs"),
        (lambda: SizeGenConfig(lr=0.0), "lr"),
        (lambda: SizeGenConfig(seeds=()), "seeds"),
        (lambda: SizeGenConfig(seeds=(-1,)), "seeds"),
        (lambda: SizeGenConfig(reg_weight=-1.0), "reg_weight"),
        (lambda: SpeedConfig(parts=("gpu",)), "parts has unknown entries \\['gpu'\\]"),
        (lambda: SpeedConfig(aggr_methods=()), "aggr_methods"),
        (lambda: RealConfig(datasets=("cora",)), "datasets has unknown entries \\['cora'\\]"),
        (lambda: RealConfig(num_layers=0), "num_layers"),
        (lambda: SuiteConfig(device="tpu"), "device"),
        (lambda: SuiteConfig(threads=0), "threads"),
    ],
)
def test_bad_values_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_suite_from_dict_rejects_non_dicts():
    with pytest.raises(TypeError, match="data"):
        suite_from_dict(["quick"])
