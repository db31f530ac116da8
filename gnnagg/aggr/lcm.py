"""Learnable commutative monoid (LCM) aggregation (Ong & Veličković, 2022), without padding.

Each node's messages -- exactly its own d(v) messages -- are reduced with a learnable
commutative monoid as a balanced binary tree of depth ceil(log2 d(v)). All nodes advance one
tree level per step, so there are ceil(log2 max degree) sequential steps and O(E) work, with no
``[N, D_max, F]`` buffer: a node's output depends on its own messages only. A node with no
messages receives the monoid's identity element (lowered to features).

Exactly associative monoids (``exact = True``) may reduce each group without a tree
(``allow_direct_reduce=True``, the default), which gives the same result up to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import (
    check_allocation,
    check_bool,
    check_choice,
    check_count,
    check_positive,
    check_seed,
    check_tensor,
)
from ..monoids import (
    MONOIDS,
    GRUMonoid,
    Monoid,
    associativity_by_level,
    associativity_gap,
    fused_tree_reduce,
    identity_gap,
    tree_reduce,
)
from ..monoids.laws import sample_rows
from ..segment import SegmentPlan, resolve_plan
from .base import (
    LAZY,
    NeighbourhoodAggregation,
    Neighbourhoods,
    check_in_channels,
    check_messages,
    group_neighbourhoods,
    linear,
)

__all__ = ["LCMAggregation"]

#: The values of :class:`LCMAggregation`'s ``leaf=``.
LEAVES = ("relu", "tanh", "layer_norm", "none")

# What the last forward remembers when it ran without gradients: nothing to regularise.
_NO_GRAD = "no_grad"


def _grouped_plan(groups: Neighbourhoods) -> SegmentPlan:
    # The regrouped rows are sorted: a CSR plan over them, kept with the caller's plan so that
    # layers sharing one plan also share the tree schedule.
    return groups.plan.derived(
        "gnnagg.aggr.lcm.grouped_plan", lambda plan: SegmentPlan.from_ptr(plan.ptr, validate=False)
    )


class LCMAggregation(NeighbourhoodAggregation):
    """Aggregate each neighbourhood with a learnable commutative monoid, reduced as a tree.

    Args:
        in_channels: size of each message, or ``-1`` to learn it from the first forward (as
            PyG's lazy modules: run one batch before building the optimiser).
        out_channels: size of each output (and of the monoid's elements).
        project: apply ``Linear(in_channels, out_channels)`` to messages before reducing (as
            PyG's ``LCMAggregation``). Without it, ``in_channels`` must equal
            ``out_channels``.
        leaf: what each (projected) message passes through to become a leaf of the tree:
            ``"layer_norm"`` (``nn.LayerNorm(out_channels)``), ``"relu"`` (PyG's, after its
            projection), ``"tanh"`` or ``"none"``. Default ``None``: ``"layer_norm"`` with
            ``project``, ``"none"`` without. Layer-normalised leaves have one scale whatever
            the messages' (ReLU leaves of small messages are small, and the GRU monoid then
            works near its linear regime): on the LCM paper's second-minimum task the GRU
            monoid reaches a given validation accuracy several times sooner with them than
            with ReLU leaves (measurements in the benchmark pages). ``leaf="relu"`` computes
            PyG's operator (its checkpoints load into that configuration).
        monoid: ``"gru"`` (the paper's operator), ``"conjugated_sum"``, ``"softmax"``, or a
            :class:`~gnnagg.monoids.Monoid` instance with ``channels == out_channels``.
        shuffle: randomly reorder each neighbourhood at every forward in training mode (it
            changes the tree's leaves; off in eval mode).
        allow_direct_reduce: let exactly associative monoids reduce each group in one step
            (:meth:`~gnnagg.monoids.Monoid.direct_reduce`) instead of a tree (same result up to
            rounding).
        **monoid_kwargs: passed to the monoid's constructor when ``monoid`` is a name.

    Messages may carry extra dimensions (GATConv's ``[E, heads, C]``): each is reduced
    separately. float16/bfloat16 messages into a float32 module are reduced in float32 and the
    output is cast back to their dtype.

    The GRU monoid's tree runs as one autograd node with a hand-derived backward (see
    :func:`~gnnagg.monoids.fused_tree_reduce`); ``backend="triton"`` (passed on to
    :class:`~gnnagg.monoids.GRUMonoid`) runs its gate arithmetic in Triton kernels on CUDA.
    Second derivatives are supported.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        project: bool = True,
        monoid: str | Monoid = "gru",
        shuffle: bool = False,
        allow_direct_reduce: bool = True,
        leaf: str | None = None,
        **monoid_kwargs,
    ) -> None:
        super().__init__(shuffle=shuffle)
        in_channels = check_in_channels(in_channels)
        out_channels = check_positive(out_channels, "out_channels")
        project = check_bool(project, "project")
        if not project and in_channels == LAZY:
            in_channels = out_channels  # nothing to learn: the messages are the states
        if not project and in_channels != out_channels:
            raise ValueError(
                f"in_channels ({in_channels}) must equal out_channels ({out_channels}) "
                "when project=False"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.project = project
        check_allocation((in_channels + 1) * out_channels * 4 if project else 0,
                         f"in_channels={in_channels}, out_channels={out_channels}: the projection",
                         "cpu")
        self.lin = linear(in_channels, out_channels) if project else None
        if leaf is None:
            leaf = "layer_norm" if project else "none"
        self.leaf = check_choice(leaf, "leaf", LEAVES)
        self.leaf_norm = nn.LayerNorm(out_channels) if leaf == "layer_norm" else None
        if isinstance(monoid, str):
            if monoid not in MONOIDS:
                raise ValueError(f"monoid must be one of {sorted(MONOIDS)}, got {monoid!r}")
            monoid = MONOIDS[monoid](out_channels, **monoid_kwargs)
        elif not isinstance(monoid, Monoid):
            raise TypeError(f"monoid must be a name or a Monoid, got {type(monoid).__name__}")
        elif monoid_kwargs:
            raise TypeError(
                f"{sorted(monoid_kwargs)} configure a monoid built by name; pass them to the "
                f"{type(monoid).__name__} given as monoid instead"
            )
        elif monoid.channels != out_channels:
            raise ValueError(
                f"monoid has {monoid.channels} channels but out_channels is {out_channels}"
            )
        self.monoid = monoid
        self.allow_direct_reduce = check_bool(allow_direct_reduce, "allow_direct_reduce")

    @property
    def gru_cell(self) -> nn.GRUCell:
        """The GRU monoid's cell under the name PyG's ``LCMAggregation`` gives it."""
        if not isinstance(self.monoid, GRUMonoid):
            raise AttributeError(
                f"gru_cell exists for the GRU monoid only; this aggregation's monoid is "
                f"{type(self.monoid).__name__}"
            )
        return self.monoid.cell

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # PyG's LCMAggregation holds the same GRUCell under ``gru_cell.``: its checkpoints load
        # into the GRU monoid (the operator is the same; only PyG's padding differs). PyG has no
        # learned identity element, so ours keeps its value (zeros after construction).
        theirs = f"{prefix}gru_cell."
        keys = [key for key in state_dict if key.startswith(theirs)]
        if keys and isinstance(self.monoid, GRUMonoid):
            for key in keys:
                state_dict[f"{prefix}monoid.cell.{key[len(theirs) :]}"] = state_dict.pop(key)
            state_dict.setdefault(
                f"{prefix}monoid.identity_element", self.monoid.identity_element.detach().clone()
            )
        # A lazy aggregation learns its width from the checkpoint's projection.
        weight = state_dict.get(f"{prefix}lin.weight")
        if self.in_channels == LAZY and isinstance(weight, Tensor) and weight.dim() == 2:
            self.in_channels = int(weight.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_parameters(self) -> None:
        if self.lin is not None:
            self.lin.reset_parameters()
        if self.leaf_norm is not None:
            self.leaf_norm.reset_parameters()
        self.monoid.reset_parameters()

    # -- the reduction --------------------------------------------------------------------------
    def _lift(self, x: Tensor) -> Tensor:
        """Messages (rows first, in any order) to monoid states, row by row."""
        x = x.to(self.work_dtype(x.dtype))
        if self.lin is not None:
            x = self.lin(x)
        if self.leaf == "relu":
            x = F.relu(x)
        elif self.leaf == "tanh":
            x = torch.tanh(x)
        elif self.leaf_norm is not None:
            x = self.leaf_norm(x)
        states = self.monoid.lift(x)
        self._remember(states)
        return states

    def _remember(self, states: Tensor) -> None:
        # Kept (with its graph) for the regularisers; replaced at the next forward. A forward
        # without gradients keeps nothing, as the recurrent aggregators (see _remembered_states).
        self._last_forward.set(states if torch.is_grad_enabled() else _NO_GRAD)

    def _reduce(self, states: Tensor, groups: Neighbourhoods) -> Tensor:
        plan = _grouped_plan(groups)
        if self._reduces_directly():
            reduced = self.monoid.direct_reduce(states, plan)
            if reduced is not None:
                return reduced
        identity = self.monoid.identity(states, plan.dim_size)
        fused = self.monoid.pair_kernel()
        if fused is not None:
            return fused_tree_reduce(states, plan, *fused, identity)
        return tree_reduce(states, plan, self.monoid.combine, identity)

    def _reduces_directly(self) -> bool:
        return self.allow_direct_reduce and self.monoid.exact

    def aggregate_groups(self, groups: Neighbourhoods) -> Tensor:
        out = self.monoid.lower(self._reduce(self._lift(groups.messages), groups))
        return out.to(groups.messages.dtype)

    def traced_forward(self, x, index, ptr, dim_size, dim, plan) -> Tensor:
        """The forward under ``torch.compile``. An exactly associative monoid's one-step
        reduction traces into the graph with the projection, the lift and the lowering (no
        graph break). A tree (the GRU monoid, or ``allow_direct_reduce=False``) runs eagerly
        as a whole behind one break, on the plan and tree schedule cached for the index:
        its levels depend on the degrees, and compiling only the projection around it was
        measured slower than eager (docs/benchmarks: Inductor's CPU code saves ReLU's
        backward mask as bytes, slowly). ``shuffle`` changes nothing in a one-step reduction
        (beyond rounding), so it is not drawn there."""
        if not self._reduces_directly():
            return super().traced_forward(x, index, ptr, dim_size, dim, plan)
        self._check_channels(x, dim)
        x0 = check_messages(x, dim).movedim(dim, 0)
        states = self._lift(x0)
        reduced = self.monoid.direct_reduce(
            states, resolve_plan(x0.shape[0], index, ptr, dim_size, plan)
        )
        if reduced is None:  # a monoid without a one-step reduction for these states
            reduced = self._reduce_eagerly(states, index, ptr, dim_size, plan)
        return self.monoid.lower(reduced).to(x.dtype).movedim(0, dim)

    @torch.compiler.disable
    def _reduce_eagerly(self, states, index, ptr, dim_size, plan) -> Tensor:
        shuffle = self.shuffle and self.training
        groups = group_neighbourhoods(states, index, ptr, dim_size, 0, plan=plan, shuffle=shuffle)
        # The regularisers sample the grouped states, as after an eager forward.
        self._remember(groups.messages)
        return self._reduce(groups.messages, groups)

    # -- partial results (exact monoids) ---------------------------------------------------------
    def reduce_partial(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        plan: SegmentPlan | None = None,
        allow_inexact: bool = False,
    ) -> Tensor:
        """Monoid states of each node's messages in ``x``, before lowering.

        For an exact monoid, states of disjoint chunks of one neighbourhood merged with
        :meth:`combine_partial` and lowered with :meth:`finalize` equal the aggregation of the
        whole neighbourhood, so huge neighbourhoods can be reduced in chunks, across
        mini-batches or across devices. ``dim_size`` should be the same for every chunk.

        A monoid that is only approximately associative (the GRU monoid) gives a merged result
        that differs from one pass, so it is refused unless ``allow_inexact=True``.
        """
        if not self.monoid.exact and not check_bool(allow_inexact, "allow_inexact"):
            raise ValueError(
                f"{type(self.monoid).__name__} is not exactly associative, so merged partial "
                "results differ from one pass; use an exact monoid (conjugated_sum, softmax) "
                "or pass allow_inexact=True to accept the difference"
            )
        groups = self.group(x, index, ptr, dim_size, dim, plan)
        return self._reduce(self._lift(groups.messages), groups).movedim(0, dim)

    def combine_partial(self, a: Tensor, b: Tensor) -> Tensor:
        """Merge two results of :meth:`reduce_partial` (element-wise ⊕)."""
        check_tensor(a, "a")
        check_tensor(b, "b")
        if a.shape != b.shape:
            raise ValueError(
                f"partial states differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
            )
        self._check_states(a)
        weight = next(self.monoid.parameters(), None)
        dtype = a.dtype if weight is None else weight.dtype
        if a.dtype != dtype or b.dtype != dtype or a.device != b.device:
            raise TypeError(
                f"a and b must be partial states of one dtype and device (those of "
                f"reduce_partial's output, {dtype} here), got {a.dtype} on {a.device} and "
                f"{b.dtype} on {b.device}"
            )
        return self.monoid.combine(a, b)

    def _check_states(self, states: Tensor) -> None:
        check_tensor(states, "states")
        width = self.monoid.state_channels
        if states.dim() == 0 or states.shape[-1] != width:
            raise ValueError(
                f"partial states must end in the monoid's {width} state channels (what "
                f"reduce_partial returns), got shape {tuple(states.shape)}"
            )

    def finalize(self, states: Tensor) -> Tensor:
        """Lower merged states to the aggregation's output."""
        self._check_states(states)
        return self.monoid.lower(states)

    # -- diagnostics ----------------------------------------------------------------------------
    @torch.no_grad()
    def associativity_by_level(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        plan: SegmentPlan | None = None,
        num_samples: int = 1024,
        seed: int = 0,
    ) -> list[dict[str, float]]:
        """How far the monoid is from associative on the states each level of this input's
        reduction trees holds (:func:`~gnnagg.monoids.associativity_by_level`; level 0: the
        leaves, the last level: the roots). Messages are read in edge order; nothing is
        remembered for the regularisers."""
        groups = self.group(x, index, ptr, dim_size, dim, plan)
        remembered = self._last_forward.get()
        try:
            states = self._lift(groups.messages)
        finally:
            self._last_forward.set(remembered)
        return associativity_by_level(
            self.monoid, states, _grouped_plan(groups), num_samples, seed
        )

    # -- regularisers ---------------------------------------------------------------------------
    def _remembered_states(self) -> Tensor:
        states = self._last_forward.get()
        if states is _NO_GRAD:
            raise RuntimeError(
                f"{type(self).__name__}: the last forward ran without gradients (torch.no_grad "
                "or inference_mode), which records no states; run it with gradients enabled"
            )
        if states is None or states.shape[0] == 0:
            raise RuntimeError(
                "associativity_loss needs a forward pass with at least one message (in this "
                "thread: each thread's regulariser samples its own last forward)"
            )
        return states.reshape(-1, states.shape[-1])

    def associativity_loss(
        self,
        num_triples: int = 1024,
        seed: int | None = None,
        every: int = 1,
        step: int | None = None,
    ) -> Tensor:
        """The LCM paper's regulariser: mean ‖(a⊕b)⊕c − a⊕(b⊕c)‖² over ``num_triples`` triples
        sampled (with replacement) from the messages of the last forward pass.

        Differentiable with respect to the monoid's parameters and the messages. Near zero for
        exact monoids. It reuses the last forward's autograd graph, so add it to the loss
        before calling ``backward()`` on that loss. Raises ``RuntimeError`` before any forward
        or when the last forward ran without gradients (``torch.no_grad``/``inference_mode``:
        nothing is recorded then, so evaluation holds no extra memory), as the recurrent
        aggregators' ``permutation_loss`` does.

        Its cost grows with ``num_triples`` faster than linearly once the operands leave the
        cache (a thousand triples can cost more than the tree's own forward and backward;
        measurements in the benchmark pages). Two ways to pay less: fewer triples, or
        ``every=k`` with the training ``step``: the loss is evaluated on every ``k``-th step
        only, scaled by ``k`` so that its average over steps is unchanged, and is an exact zero
        (no work) on the others.
        """
        num_triples, seed = check_positive(num_triples, "num_triples"), check_seed(seed)
        every = check_positive(every, "every")
        if every > 1:
            if step is None:
                raise TypeError("every > 1 needs step (the training step's number)")
            if check_count(step, "step") % every:
                return self._remembered_states().new_zeros(())
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        a, b, c = sample_rows(self._remembered_states(), num_triples, 3, generator)
        return every * associativity_gap(self.monoid, a, b, c)

    def identity_loss(self, num_samples: int = 1024, seed: int | None = None) -> Tensor:
        """Mean ‖e⊕a − a‖² over messages of the last forward (keeps a learned identity honest);
        needs a forward with gradients, as :meth:`associativity_loss`."""
        num_samples, seed = check_positive(num_samples, "num_samples"), check_seed(seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        (a,) = sample_rows(self._remembered_states(), num_samples, 1, generator)
        return identity_gap(self.monoid, a)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"monoid={self.monoid.__class__.__name__}, project={self.project}, "
            f"leaf={self.leaf!r})"
        )
