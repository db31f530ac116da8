"""The aggregators the benchmark compares: name -> how to build one, and its regulariser.

Every entry builds a PyG ``Aggregation`` called as ``aggr(messages, index, dim_size=N)`` with
messages of ``channels`` features, and says how wide its output is (multi-aggregations
concatenate). PyG's LCM, GRU and LSTM aggregations pad each node to the largest degree and need
a sorted ``index``; the studies' models always pass one sorted.

=======================  ==============================================================
``sum``, ``mean``,        PyG's fixed aggregations
``max``
``multi``                 PyG ``MultiAggregation(["mean", "min", "max", "std"])``
``pna``                   PyG ``DegreeScalerAggregation``: the four above times the
                          scalers identity, amplification and attenuation (PNA)
``pyg_lcm``               PyG ``LCMAggregation`` (padded binary tree, GRU cell)
``pyg_gru``, ``pyg_lstm`` PyG ``GRUAggregation`` / ``LSTMAggregation`` (padded)
``lcm_gru``,              gnnagg ``LCMAggregation`` with the ``gru``, ``conjugated_sum``
``lcm_conjugated_sum``,   or ``softmax`` monoid
``lcm_softmax``
``gru``, ``lstm``         gnnagg ``GRUAggregation`` / ``LSTMAggregation`` (no padding)
=======================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_positive
from ..aggr import GRUAggregation, LCMAggregation, LSTMAggregation, RecurrentAggregation

__all__ = [
    "AGGREGATORS",
    "MESH_MASKS",
    "AggregatorSpec",
    "RegularisedModel",
    "aggregator_label",
    "build_aggregator",
    "check_aggregators",
    "degree_histogram",
    "mesh_mask",
    "regulariser_loss",
]

_MOMENTS = ["mean", "min", "max", "std"]
_SCALERS = ["identity", "amplification", "attenuation"]


@dataclass(frozen=True)
class AggregatorSpec:
    """How to build one aggregator.

    ``build(channels, deg)`` returns the module; ``deg`` is the in-degree histogram of the
    training graphs (``deg[d]`` = number of nodes of in-degree ``d``), used only when
    ``needs_degree``. ``width(channels)`` is the size of the module's output.
    ``order_sensitive``: the output depends on the order of the messages (recurrent
    aggregators and LCM trees of a monoid that is only approximately associative), so
    training reorders each neighbourhood every epoch when asked to. ``options``: the keyword
    options ``build`` takes (``build(channels, deg, **options)``).
    """

    name: str
    library: str
    description: str
    build: Callable[..., nn.Module]
    width: Callable[[int], int]
    needs_degree: bool = False
    order_sensitive: bool = False
    options: tuple[str, ...] = ()


def _pyg(name: str) -> Callable[[int, Tensor | None], nn.Module]:
    def build(channels: int, deg: Tensor | None) -> nn.Module:
        from torch_geometric.nn import aggr

        return {
            "sum": aggr.SumAggregation,
            "mean": aggr.MeanAggregation,
            "max": aggr.MaxAggregation,
        }[name]()

    return build


def _multi(channels: int, deg: Tensor | None) -> nn.Module:
    from torch_geometric.nn.aggr import MultiAggregation

    return MultiAggregation(list(_MOMENTS))


def _pna(channels: int, deg: Tensor | None) -> nn.Module:
    from torch_geometric.nn.aggr import DegreeScalerAggregation

    if deg is None:
        raise ValueError("deg: the 'pna' aggregator needs the training in-degree histogram")
    return DegreeScalerAggregation(list(_MOMENTS), list(_SCALERS), deg)


def _pyg_learnable(kind: str) -> Callable[[int, Tensor | None], nn.Module]:
    def build(channels: int, deg: Tensor | None) -> nn.Module:
        from torch_geometric.nn import aggr

        cls = {
            "lcm": aggr.LCMAggregation,
            "gru": aggr.GRUAggregation,
            "lstm": aggr.LSTMAggregation,
        }[kind]
        return cls(channels, channels)

    return build


def _lcm(monoid: str) -> Callable[..., nn.Module]:
    def build(channels: int, deg: Tensor | None, **options) -> nn.Module:
        return LCMAggregation(channels, channels, monoid=monoid, **options)

    return build


# The LCM's training options a study may set (LCMAggregation's leaf, the GRU monoid's init and
# layer_norm); the exact monoids take the leaf only.
_LCM_OPTIONS = ("leaf",)
_LCM_GRU_OPTIONS = ("leaf", "init", "layer_norm")


def _same(channels: int) -> int:
    return channels


AGGREGATORS: dict[str, AggregatorSpec] = {
    spec.name: spec
    for spec in (
        AggregatorSpec("sum", "pyg", "PyG SumAggregation", _pyg("sum"), _same),
        AggregatorSpec("mean", "pyg", "PyG MeanAggregation", _pyg("mean"), _same),
        AggregatorSpec("max", "pyg", "PyG MaxAggregation", _pyg("max"), _same),
        AggregatorSpec(
            "multi",
            "pyg",
            "PyG MultiAggregation(mean, min, max, std), concatenated",
            _multi,
            lambda c: len(_MOMENTS) * c,
        ),
        AggregatorSpec(
            "pna",
            "pyg",
            "PyG DegreeScalerAggregation(mean, min, max, std) x (identity, amplification, "
            "attenuation): PNA",
            _pna,
            lambda c: len(_MOMENTS) * len(_SCALERS) * c,
            needs_degree=True,
        ),
        AggregatorSpec(
            "pyg_lcm",
            "pyg",
            "PyG LCMAggregation (padded)",
            _pyg_learnable("lcm"),
            _same,
            order_sensitive=True,
        ),
        AggregatorSpec(
            "pyg_gru",
            "pyg",
            "PyG GRUAggregation (padded)",
            _pyg_learnable("gru"),
            _same,
            order_sensitive=True,
        ),
        AggregatorSpec(
            "pyg_lstm",
            "pyg",
            "PyG LSTMAggregation (padded)",
            _pyg_learnable("lstm"),
            _same,
            order_sensitive=True,
        ),
        AggregatorSpec(
            "lcm_gru",
            "gnnagg",
            "gnnagg LCMAggregation, GRU monoid",
            _lcm("gru"),
            _same,
            order_sensitive=True,
            options=_LCM_GRU_OPTIONS,
        ),
        AggregatorSpec(
            "lcm_conjugated_sum",
            "gnnagg",
            "gnnagg LCMAggregation, conjugated-sum monoid",
            _lcm("conjugated_sum"),
            _same,
            options=_LCM_OPTIONS,
        ),
        AggregatorSpec(
            "lcm_softmax",
            "gnnagg",
            "gnnagg LCMAggregation, softmax monoid",
            _lcm("softmax"),
            _same,
            options=_LCM_OPTIONS,
        ),
        AggregatorSpec(
            "gru",
            "gnnagg",
            "gnnagg GRUAggregation (no padding)",
            lambda c, d: GRUAggregation(c, c),
            _same,
            order_sensitive=True,
        ),
        AggregatorSpec(
            "lstm",
            "gnnagg",
            "gnnagg LSTMAggregation (no padding)",
            lambda c, d: LSTMAggregation(c, c),
            _same,
            order_sensitive=True,
        ),
    )
}


def check_aggregators(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a ``ValueError`` listing the valid names."""
    if isinstance(names, str):
        raise TypeError("aggregators: expected a sequence of names, got a single str")
    names = tuple(names)
    if not names:
        raise ValueError(f"aggregators: needs at least one; valid names are {list(AGGREGATORS)}")
    unknown = [n for n in names if n not in AGGREGATORS]
    if unknown:
        raise ValueError(f"aggregators: unknown {unknown}; valid names are {list(AGGREGATORS)}")
    return names


def build_aggregator(
    name: str, channels: int, deg: Tensor | None = None, **options: Any
) -> nn.Module:
    """Build aggregator ``name`` for messages of ``channels`` features, with the keyword
    ``options`` its entry takes (:attr:`AggregatorSpec.options`).

    Raises ``ValueError`` for an unknown name (listing the valid ones), a non-positive
    ``channels``, ``pna`` without ``deg``, or an option the aggregator does not take.
    """
    if name not in AGGREGATORS:
        raise ValueError(f"name: unknown aggregator {name!r}; valid names are {list(AGGREGATORS)}")
    channels = check_positive(channels, "channels")
    spec = AGGREGATORS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(
            f"options: {name!r} takes {list(spec.options) or 'no options'}, got {unknown}"
        )
    return spec.build(channels, deg, **options)


def regulariser_loss(module: nn.Module, num_samples: int = 256) -> Tensor | None:
    """The invariance regulariser of ``module`` after its last forward, or ``None``.

    gnnagg's LCM with an approximately associative monoid (``exact = False``, the GRU monoid):
    :meth:`~gnnagg.aggr.LCMAggregation.associativity_loss`; gnnagg's GRU/LSTM:
    :meth:`~gnnagg.aggr.RecurrentAggregation.permutation_loss`. Exact monoids and PyG's
    modules have none. Sampling uses torch's global generator, which the harness seeds.
    """
    if isinstance(module, LCMAggregation):
        if module.monoid.exact:
            return None
        return module.associativity_loss(num_triples=num_samples)
    if isinstance(module, RecurrentAggregation):
        return module.permutation_loss(num_samples)
    return None


def degree_histogram(index: Tensor, num_nodes: int) -> Tensor:
    """In-degree histogram (``hist[d]`` = nodes of in-degree ``d``) of the messages with target
    ``index`` into ``num_nodes`` nodes: the ``deg`` that ``pna`` needs (the one histogram of the
    harness: multisets and real graphs alike)."""
    degrees = torch.bincount(index, minlength=num_nodes)
    return torch.bincount(degrees)


def aggregator_label(name: str) -> str:
    """``"name (library)"`` for a registry aggregator, else ``name``."""
    spec = AGGREGATORS.get(name)
    return f"{name} ({spec.library})" if spec else name


class RegularisedModel(nn.Module):
    """Base of the studies' models: adds ``reg_weight`` times the regulariser of every registry
    aggregator inside (:func:`regulariser_loss`), in training mode only. Computing it inside
    ``forward`` keeps every parameter it touches in the forward's graph under
    DistributedDataParallel."""

    regularise: bool
    reg_weight: float
    reg_samples: int

    def _regulariser(self, like: Tensor) -> Tensor:
        total = like.new_zeros(())
        if not (self.training and self.regularise and self.reg_weight > 0):
            return total
        for module in self.modules():
            loss = regulariser_loss(module, self.reg_samples) if module is not self else None
            if loss is not None:
                total = total + self.reg_weight * loss
        return total


#: The masks the mesh studies (``attention``, ``mesh``) compare, by name: the adjacency, two
#: hops, two hops with a Morton-ordered dilated window, and that with four global tokens.
MESH_MASKS: tuple[str, ...] = ("adjacency", "khop2", "khop2+dilated", "khop2+dilated+global")


def mesh_mask(name: str):
    """The :class:`~gnnagg.attention.Mask` recipe called ``name`` (one of :data:`MESH_MASKS`)."""
    from ..attention import adjacency, dilated_window, global_tokens, khop

    if name not in MESH_MASKS:
        raise ValueError(f"mask: unknown {name!r}; masks are {list(MESH_MASKS)}")
    if name == "adjacency":
        return adjacency()
    if name == "khop2":
        return khop(2)
    wide = khop(2) | dilated_window(4, 8, "morton")
    return wide if name == "khop2+dilated" else wide | global_tokens(4)
