r"""Masks: recipes of the (query, key) pairs attention may use, in the spirit of FlexAttention's
``mask_mod``\ s and attention-gym.

A mask is a small immutable expression; ``|`` is the union of the allowed pairs and ``&`` their
intersection. :meth:`Mask.build` turns it into a :class:`~gnnagg.attention.MaskIndex` for one
graph or a PyG batch. Whatever the mask, no pair ever joins two graphs of a batch.

A mask is a :class:`Mask` subclass that implements :meth:`Mask.pairs` (the allowed row pairs,
given a :class:`~gnnagg.attention.MaskContext`) and declares what it needs (``needs_pos``,
``tokens_per_graph``), or a function wrapped by :func:`pair_mask`. The built-in masks
(:mod:`gnnagg.attention.builtin_masks`) use the same protocol; how to write one:
``docs/howto/add_mask.rst``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_count
from .csr import csr_from_keys, csr_intersection, csr_rows, csr_union
from .mask_context import MaskContext, pair_keys
from .mask_index import MaskIndex

__all__ = [
    "Intersection",
    "Mask",
    "PairMask",
    "Union",
    "pair_mask",
]


class Mask:
    """Base class of masks: recipes of allowed (query, key) pairs, combined with ``|`` (union)
    and ``&`` (intersection); :meth:`build` gives the :class:`~gnnagg.attention.MaskIndex`.

    A subclass implements :meth:`pairs` and declares what it needs as class attributes (plain
    attributes, not dataclass fields; a property where the answer depends on the arguments):

    * ``needs_pos`` -- :meth:`build` refuses to run without node coordinates ``pos``;
    * ``tokens_per_graph`` -- global-token rows each graph must have (an expression gets the
      largest of its parts).

    Masks should be immutable, comparable and have a ``repr`` that reads as the call that
    made them (a frozen dataclass with a custom ``__repr__`` does all three).
    """

    needs_pos: bool = False
    tokens_per_graph: int = 0

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        """The allowed ``(query_rows, key_rows)``: two int64 tensors of one length on
        ``ctx.device``, rows in ``[0, ctx.num_rows)`` of one graph each; any order, duplicates
        allowed. Pairs of nodes ``(i, j)`` are the rows ``(ctx.node_rows[i],
        ctx.node_rows[j])``."""
        raise NotImplementedError(f"{type(self).__name__} must implement pairs(ctx)")

    def __or__(self, other: Mask) -> Mask:
        _check_mask(other, "|")
        return Union(_flatten(Union, self) + _flatten(Union, other))

    def __and__(self, other: Mask) -> Mask:
        _check_mask(other, "&")
        return Intersection(_flatten(Intersection, self) + _flatten(Intersection, other))

    # The built-in masks make valid pairs by construction; others' pairs are checked.
    _checked_pairs = True

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The pairs as a sorted CSR over rows (:mod:`gnnagg.attention.csr`), columns of
        ``dtype``. This default sorts the keys ``query_row * num_rows + key_row`` of
        :meth:`pairs` (O(P log P) for P pairs); the built-in masks make their rows sorted
        directly."""
        pairs = self.pairs(ctx)
        if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
            raise TypeError(
                f"{self!r}: pairs(ctx) must return (query_rows, key_rows), got "
                f"{type(pairs).__name__}"
            )
        queries, keys = pairs
        if self._checked_pairs:
            _check_pairs(self, ctx, queries, keys)
        rowptr, col = csr_from_keys(pair_keys(ctx, queries, keys), ctx.num_rows)
        return rowptr, col.to(dtype)

    def build(
        self,
        edge_index: Tensor,
        num_nodes: int | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskIndex:
        """Build the allowed pairs for one graph or a batch of graphs.

        Args:
            edge_index: ``[2, E]`` int64 edges ``source -> target`` (PyG convention).
            num_nodes: number of nodes ``N``; default ``edge_index.max() + 1`` (or the length of
                ``pos``/``batch`` when given).
            pos: ``[N, d]`` coordinates, needed by masks whose ``needs_pos`` is true (such as
                ``dilated_window(order="morton")``); kept in the result for a Morton block
                order of the FlexAttention backend.
            batch: ``[N]`` graph id of each node (PyG's ``batch``); default one graph.
            generator: draws the pairs of :func:`random_jumps` (overriding their ``seed``), so
                that a training loop can redraw them at every call.

        Returns:
            a :class:`~gnnagg.attention.MaskIndex` whose rows are the nodes plus
            ``tokens_per_graph`` global tokens per graph.

        Cost: each part makes its rows already sorted (:meth:`pairs` of a mask outside the
        built-in ones is sorted once, O(P log P)) and ``|`` / ``&`` merge sorted rows
        (:func:`~gnnagg.attention.csr.csr_union`), so a build takes O(n log d) time for n
        entries over all parts and rows of at most d, plus what each part costs to make (see
        its constructor); its peak memory is the result's ``col`` (8 bytes an entry), the
        parts' int32 columns (4 bytes an entry) and a merge's chunked temporaries.
        """
        if pos is None and self.needs_pos:
            needing = ", ".join(repr(leaf) for leaf in _leaves(self) if leaf.needs_pos)
            raise ValueError(
                f"pos is required: {needing} uses node coordinates; pass pos=[num_nodes, d] "
                f"(dilated_window can order nodes without them: order='rcm')"
            )
        ctx = MaskContext(edge_index, num_nodes, pos, batch, generator,
                          tokens_per_graph=self.tokens_per_graph)
        rowptr, col = self._csr(ctx, torch.int64)
        return MaskIndex(
            rowptr,
            col,
            num_nodes=ctx.num_nodes,
            num_graphs=ctx.num_graphs,
            tokens_per_graph=ctx.tokens_per_graph,
            node_rows=ctx.node_rows,
            token_rows=ctx.token_rows,
            row_graph=ctx.row_graph,
            pos=ctx.pos,
            expression=repr(self),
        )


def _check_mask(other: object, op: str) -> None:
    if not isinstance(other, Mask):
        raise TypeError(f"cannot combine a mask with {type(other).__name__} using {op!r}")


def _check_pairs(mask: Mask, ctx: MaskContext, queries: object, keys: object) -> None:
    where = f"{mask!r}: pairs(ctx)"
    for name, rows in (("query rows", queries), ("key rows", keys)):
        if not isinstance(rows, Tensor) or rows.dim() != 1:
            raise TypeError(f"{where} must return two 1-D integer tensors; its {name} are not")
        if rows.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{where} returned {name} of dtype {rows.dtype}, not int64")
        if rows.device != ctx.device:
            raise ValueError(f"{where} returned {name} on {rows.device}, not {ctx.device}")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= ctx.num_rows):
            raise ValueError(f"{where} returned {name} outside [0, num_rows={ctx.num_rows})")
    if queries.shape != keys.shape:
        raise ValueError(f"{where} returned {queries.numel()} query rows but {keys.numel()} keys")
    if bool((ctx.row_graph[queries] != ctx.row_graph[keys]).any()):
        raise ValueError(f"{where} returned a pair joining two graphs of the batch")


def _no_pairs(ctx: MaskContext) -> tuple[Tensor, Tensor]:
    empty = torch.zeros(0, dtype=torch.int64, device=ctx.device)
    return empty, empty


def _flatten(kind: type, mask: Mask) -> tuple[Mask, ...]:
    return mask.parts if isinstance(mask, kind) else (mask,)


def _leaves(mask: Mask) -> list[Mask]:
    if isinstance(mask, (Union, Intersection)):
        return [leaf for part in mask.parts for leaf in _leaves(part)]
    return [mask]


class _Composite(Mask):
    """What a union and an intersection share: parts, and the needs of all of them."""

    parts: tuple[Mask, ...]
    _checked_pairs = False

    @property
    def needs_pos(self) -> bool:
        return any(part.needs_pos for part in self.parts)

    @property
    def tokens_per_graph(self) -> int:
        return max(part.tokens_per_graph for part in self.parts)

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        rowptr, col = self._csr(ctx, torch.int64)
        return csr_rows(rowptr), col


@dataclass(frozen=True, repr=False)
class Union(_Composite):
    """Pairs allowed by any part: the parts' sorted rows merged, smallest part first,
    O(n log d) for n entries in all and rows of at most d (one linear pass with scipy on the
    CPU; :func:`~gnnagg.attention.csr.csr_union`)."""

    parts: tuple[Mask, ...]

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        # Smallest first, so that every merge looks the smaller pattern up in the larger and
        # only the last one writes columns of ``dtype``.
        patterns = sorted((part._csr(ctx, ctx.index_dtype) for part in self.parts),
                          key=lambda pattern: pattern[1].numel())
        result = patterns.pop(0)
        while patterns:
            result = csr_union(result, patterns.pop(0), None if patterns else dtype)
        return result[0], result[1].to(dtype)

    def __repr__(self) -> str:
        # ``&`` binds tighter than ``|`` in Python, so parts never need brackets here.
        return " | ".join(repr(part) for part in self.parts)


@dataclass(frozen=True, repr=False)
class Intersection(_Composite):
    """Pairs allowed by every part: each entry of the smaller sorted rows looked up in the
    larger (:func:`~gnnagg.attention.csr.csr_intersection`)."""

    parts: tuple[Mask, ...]

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        result = self.parts[0]._csr(ctx, ctx.index_dtype)
        for part in self.parts[1:]:
            result = csr_intersection(result, part._csr(ctx, ctx.index_dtype))
        return result[0], result[1].to(dtype)

    def __repr__(self) -> str:
        return " & ".join(_wrap(part, Union) for part in self.parts)


def _wrap(part: Mask, needs_brackets: type) -> str:
    text = repr(part)
    return f"({text})" if isinstance(part, needs_brackets) else text


@dataclass(frozen=True, repr=False, eq=False)
class PairMask(Mask):
    """See :func:`pair_mask`. Equal to another when it wraps the same function with the same
    declarations."""

    function: Callable[[MaskContext], tuple[Tensor, Tensor]]
    needs_pos: bool = False
    tokens_per_graph: int = 0
    name: str = ""

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        return self.function(ctx)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairMask):
            return NotImplemented
        mine = (self.function, self.needs_pos, self.tokens_per_graph, self.name)
        return mine == (other.function, other.needs_pos, other.tokens_per_graph, other.name)

    def __hash__(self) -> int:
        return hash((PairMask, self.function, self.needs_pos, self.tokens_per_graph, self.name))

    def __repr__(self) -> str:
        return self.name or f"pair_mask({getattr(self.function, '__name__', 'function')})"


def pair_mask(
    function: Callable[[MaskContext], tuple[Tensor, Tensor]],
    *,
    needs_pos: bool = False,
    tokens_per_graph: int = 0,
    name: str | None = None,
) -> PairMask:
    """A mask from a function: ``function(ctx)`` returns the allowed ``(query_rows,
    key_rows)`` as :meth:`Mask.pairs` does, from a :class:`~gnnagg.attention.MaskContext`.

    Args:
        function: the pairs of one build.
        needs_pos: whether it reads ``ctx.pos`` (building without ``pos`` is then refused).
        tokens_per_graph: global-token rows each graph must have (``ctx.token_rows``).
        name: the ``repr`` of the mask; default ``pair_mask(<function name>)``.

    The pairs are checked at every build (integer rows in range, one graph per pair). For a
    mask with arguments, a :class:`Mask` subclass reads better (``docs/howto/add_mask.rst``).
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    if not isinstance(needs_pos, bool):
        raise TypeError(f"needs_pos must be a bool, got {needs_pos!r}")
    tokens_per_graph = check_count(tokens_per_graph, "tokens_per_graph")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return PairMask(function, needs_pos, tokens_per_graph, name or "")
