"""The studies of ``gnnagg-bench``, one folder each, and the predefined suites.

:data:`SECTIONS` is the one place a study is registered (its order is the order in which a
suite runs studies and ``report.md`` shows them); :data:`SUITES` are the predefined suites.
How to write a study: :mod:`gnnagg.bench.section` and ``docs/howto/add_section.rst``.
"""

from __future__ import annotations

from ..section import Section, Suite
from .attention import AttentionSection
from .mesh import MeshSection
from .poly import PolynomialFeaturesSection
from .real import RealSection
from .sizegen import SizeGenSection
from .speed import SpeedSection

__all__ = ["SECTIONS", "SUITES"]

SECTIONS: dict[str, Section] = {
    section.name: section
    for section in (
        SizeGenSection(),
        SpeedSection(),
        RealSection(),
        PolynomialFeaturesSection(),
        AttentionSection(),
        MeshSection(),
    )
}

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("quick", "< 15 min on a 2-core CPU, no network (`make bench`)", 2, 1),
        Suite("full", "every task and data set, downloads when possible", 3, None),
        Suite("smoke", "seconds: every section at toy sizes (CI, installed wheels)", 1, 1),
        Suite(
            "paper",
            "the LCM paper's size generalisation only (hours of CPU: see --jobs, --epochs, "
            "--job-minutes; resumes when rerun with the same --out)",
            3,
            None,
        ),
        Suite(
            "paper-cpu",
            "the paper suite cut to < 3 h on a 2-core CPU with --jobs 2 (step cap 8,192, "
            "patience 6, tests at sizes 16-128; resumes when rerun with the same --out)",
            3,
            None,
        ),
        Suite("poly-zinc", "polynomial features on the full zinc-plogp set (CPU hours)", 3, 1),
        Suite("poly-freesolv", "polynomial features on ogbg-molfreesolv (minutes)", 3, 1),
    )
}
