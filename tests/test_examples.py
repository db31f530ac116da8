"""The example scripts (``docs/examples/*.py``: seven PyG example settings with gnnagg swapped
in) run to the end and their checks pass: generated data, one thread, seconds each.

Each runs in a fresh process, as a user would run it. ``torch.compile`` is given the
``aot_eager`` backend there: Dynamo's tracing and AOT autograd (where graph breaks and
unsupported code show) run as with Inductor, whose C++ compilation of whole models would take
minutes on CI's two cores (``tests/aggr/test_compile.py`` compiles with Inductor).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# sampling.py is the examples' neighbour loader, imported by them, not an example.
EXAMPLES = sorted(
    path for path in (ROOT / "docs" / "examples").glob("*.py") if path.stem != "sampling"
)
_RUN = (
    "import functools, runpy, sys, torch; "
    "torch.compile = functools.partial(torch.compile, backend='aot_eager'); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_the_seven_examples_are_here():
    names = {path.stem for path in EXAMPLES}
    assert names == {
        "compile_gin", "graph_gps", "hetero_mag", "lcm_second_minimum", "reddit_layerwise",
        "torchscript_refusal", "unimp",
    }  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_and_its_checks_pass(path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(path)],
        cwd=path.parent, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
