"""The registry of benchmark sections and predefined suites of ``gnnagg-bench``.

:data:`SECTIONS` is the one place a section is registered (its order is the order in which a
suite runs sections and ``report.md`` shows them); :data:`SUITES` are the predefined suites.
How to write a section: :mod:`gnnagg.bench.sections.base`.
"""

from __future__ import annotations

from .attention import AttentionSection
from .base import ReportBlock, RunContext, Section, Suite
from .mesh import MeshSection
from .polynomial_features import PolynomialFeaturesSection
from .real import RealSection
from .sizegen import SizeGenSection
from .speed import SpeedSection

__all__ = ["SECTIONS", "SUITES", "ReportBlock", "RunContext", "Section", "Suite"]

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
        Suite("poly-zinc", "polynomial features on the full zinc-plogp set (CPU hours)", 3, 1),
        Suite("poly-freesolv", "polynomial features on ogbg-molfreesolv (minutes)", 3, 1),
    )
}
