"""Balanced-tree reduction of every group at once: ceil(log2 d) sequential levels, O(E) work.

At each level, every group with more than one element combines its elements in adjacent pairs
(0,1), (2,3), ...; an odd last element passes up unchanged. Groups that are down to one element
are finished and leave the working set, so a hub node does not make the other nodes pay for its
depth, and no ``[N, D_max, F]`` buffer is ever built.

The index arithmetic depends only on the degrees, so it is computed once per grouping
(:func:`tree_schedule`) and cached on the :class:`SegmentPlan` for reuse by every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .._checks import check_tensor
from ..segment import SegmentPlan

__all__ = [
    "PairKernel",
    "TreeSchedule",
    "cached_tree_schedule",
    "fused_tree_reduce",
    "tree_levels",
    "tree_reduce",
    "tree_schedule",
]


@dataclass(frozen=True)
class TreeLevel:
    """One level of the reduction, over a working set laid out as
    ``[num_pairs left rows | num_pairs right rows | num_carry rows | num_done rows]``.

    ``done_groups`` are the groups whose single remaining element is in the done block;
    ``order`` arranges ``[combined pairs | carried rows]`` into the next level's layout.
    """

    num_pairs: int
    num_carry: int
    num_done: int
    done_groups: Tensor
    order: Tensor
    inverse: Tensor


@dataclass(frozen=True)
class TreeSchedule:
    """``initial_order`` arranges the grouped rows into the first level's layout;
    ``root_groups`` lists the groups in the order their roots finish (level by level)."""

    initial_order: Tensor
    initial_inverse: Tensor
    levels: list[TreeLevel]
    root_groups: Tensor = field(init=False)

    def __post_init__(self) -> None:
        groups = [level.done_groups for level in self.levels]
        roots = torch.cat(groups) if groups else self.initial_order[:0]
        object.__setattr__(self, "root_groups", roots)


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x) - x


def _layout(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Slot of every element (groups in order, positions ascending) in a level's layout.

    Returns ``(slots, pairs, odd, pair_offset, num_pairs, num_carry)`` where ``odd`` marks the
    groups that carry their last element up.
    """
    group = np.repeat(np.arange(lengths.size), lengths)
    position = np.arange(group.size) - _exclusive_cumsum(lengths)[group]
    pairs = lengths // 2
    odd = (lengths % 2 == 1) & (lengths > 1)
    done = lengths == 1
    pair_offset = _exclusive_cumsum(pairs)
    num_pairs, num_carry = int(pairs.sum()), int(odd.sum())
    carry_rank = _exclusive_cumsum(odd.astype(np.int64))
    done_rank = _exclusive_cumsum(done.astype(np.int64))
    slots = np.where(
        done[group],
        2 * num_pairs + num_carry + done_rank[group],
        np.where(
            position < 2 * pairs[group],
            # Left operands first, right operands after them: four contiguous blocks that one
            # split separates (its backward is one concatenation, not a zero-fill per block).
            pair_offset[group] + position // 2 + num_pairs * (position % 2),
            2 * num_pairs + carry_rank[group],
        ),
    )
    return slots, pairs, odd, pair_offset, num_pairs, num_carry


def tree_schedule(degrees: Tensor) -> TreeSchedule:
    """The levels of the balanced reduction trees of groups with the given ``degrees``.

    Rows are assumed grouped: group ``g`` owns rows ``ptr[g]:ptr[g+1]``. All index arithmetic
    of the reduction happens here, once per grouping, in NumPy on the CPU: the schedule is many
    small data-dependent steps, which on a GPU would cost a launch and a sync each (and in
    torch's CPU ops, more dispatch overhead than work). The finished index arrays travel to
    ``degrees``' device in one copy.
    """
    check_tensor(degrees, "degrees")
    if degrees.dim() != 1 or degrees.is_floating_point() or degrees.is_complex():
        raise ValueError(
            f"degrees must be a 1-D integer tensor, got {degrees.dtype} of shape "
            f"{tuple(degrees.shape)}"
        )
    if degrees.numel() and int(degrees.min()) < 0:
        raise ValueError("degrees must be non-negative")
    all_degrees = degrees.detach().cpu().numpy().astype(np.int64)
    lengths = all_degrees[all_degrees > 0]
    groups = np.flatnonzero(all_degrees > 0)
    slots, pairs, odd, pair_offset, num_pairs, num_carry = _layout(lengths)
    initial_order = np.empty_like(slots)
    initial_order[slots] = np.arange(slots.size)
    levels: list[tuple[int, int, int, np.ndarray, np.ndarray]] = []
    while lengths.size > 0:
        done = lengths == 1
        keep = ~done
        next_lengths = (pairs + odd)[keep]
        # Where each element of the next level comes from in [combined pairs | carried rows].
        next_pairs, next_offset = pairs[keep], pair_offset[keep]
        carry_rank = _exclusive_cumsum(odd.astype(np.int64))[keep]
        group = np.repeat(np.arange(next_lengths.size), next_lengths)
        position = np.arange(group.size) - _exclusive_cumsum(next_lengths)[group]
        source = np.where(
            position < next_pairs[group],
            next_offset[group] + position,
            num_pairs + carry_rank[group],
        )
        next_slots, pairs_n, odd_n, offset_n, num_pairs_n, num_carry_n = _layout(next_lengths)
        order = np.empty_like(source)
        order[next_slots] = source
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        levels.append((num_pairs, num_carry, int(done.sum()), groups[done], order, inverse))
        lengths, groups = next_lengths, groups[keep]
        pairs, odd, pair_offset = pairs_n, odd_n, offset_n
        num_pairs, num_carry = num_pairs_n, num_carry_n
    parts = [initial_order, slots] + [array for level in levels for array in level[3:]]
    moved = torch.from_numpy(np.concatenate(parts)).to(degrees.device)
    moved = moved.split([part.size for part in parts])
    return TreeSchedule(
        moved[0],
        moved[1],
        [
            TreeLevel(*level[:3], *arrays)
            for level, arrays in zip(levels, zip(moved[2::3], moved[3::3], moved[4::3]))
        ],
    )


class _PermuteRows(torch.autograd.Function):
    """``x[order]`` for a permutation, whose backward is a gather by the inverse permutation
    instead of the scatter-add that ``index_select``'s backward needs."""

    @staticmethod
    def forward(ctx, x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(order, inverse)
        return x.index_select(0, order)

    @staticmethod
    def backward(ctx, grad: Tensor):
        order, inverse = ctx.saved_tensors
        return _PermuteRows.apply(grad, inverse, order), None, None


def permute_rows(x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
    """Rows of ``x`` in the order ``order`` (a permutation with inverse ``inverse``)."""
    return _PermuteRows.apply(x, order, inverse)


#: The key of a plan's tree schedule in :meth:`SegmentPlan.derived`.
TREE_SCHEDULE_KEY = "gnnagg.monoids.tree.schedule"


def cached_tree_schedule(plan: SegmentPlan) -> TreeSchedule:
    """:func:`tree_schedule` for ``plan``'s degrees, computed once per plan."""
    return plan.derived(TREE_SCHEDULE_KEY, lambda plan: tree_schedule(plan.degrees))


def _check_tree_inputs(states: object, plan: object, identity: object) -> None:
    check_tensor(states, "states")
    check_tensor(identity, "identity")
    if not isinstance(plan, SegmentPlan):
        raise TypeError(f"plan must be a SegmentPlan, got {type(plan).__name__}")
    if states.dim() == 0 or states.shape[0] != plan.num_rows:
        raise ValueError(
            f"states must have the plan's {plan.num_rows} rows first, got shape "
            f"{tuple(states.shape)}"
        )
    if identity.shape != (plan.dim_size, *states.shape[1:]):
        raise ValueError(
            f"identity must be [{plan.dim_size}, *states.shape[1:]] (one row per group), got "
            f"shape {tuple(identity.shape)}"
        )


def tree_reduce(
    states: Tensor,
    plan: SegmentPlan,
    combine: Callable[[Tensor, Tensor], Tensor],
    identity: Tensor,
) -> Tensor:
    """Reduce grouped ``states`` ``[rows, ...]`` with ``combine`` as balanced binary trees.

    ``plan`` describes the grouping (rows of group ``g`` are ``ptr[g]:ptr[g+1]``); groups with no
    rows get the matching row of ``identity`` (``[num_groups, ...]``). Returns
    ``[num_groups, ...]``. Each level costs one split, one ``combine`` on the left and right
    blocks, one concatenation and one gather; no device-to-host sync happens here.
    """
    _check_tree_inputs(states, plan, identity)
    if not callable(combine):
        raise TypeError(f"combine must be callable, got {type(combine).__name__}")
    schedule = cached_tree_schedule(plan)
    if schedule.root_groups.numel() == 0:
        # A fresh tensor: ``identity`` may be an expanded view of a parameter.
        return identity.clone(memory_format=torch.contiguous_format)
    roots = _tree_roots(states, schedule, combine)
    return identity.index_copy(0, schedule.root_groups, roots)


def tree_levels(
    states: Tensor, plan: SegmentPlan, combine: Callable[[Tensor, Tensor], Tensor]
) -> list[Tensor]:
    """The states at every level of the trees :func:`tree_reduce` builds, for diagnostics.

    Level 0 holds the leaves (``states``' rows of non-empty groups); level ``k`` every state
    present after ``k`` rounds of combination: the pairs' results, elements carried up from
    a lower level by groups of odd length, and the roots of groups that finished at that
    level. The last level holds only roots. Each level's rows are in the schedule's order
    (not grouped); a list of ``[rows_k, ...]`` tensors, through autograd when ``states`` and
    ``combine`` are.
    """
    check_tensor(states, "states")
    if not isinstance(plan, SegmentPlan):
        raise TypeError(f"plan must be a SegmentPlan, got {type(plan).__name__}")
    if states.dim() == 0 or states.shape[0] != plan.num_rows:
        raise ValueError(
            f"states must have the plan's {plan.num_rows} rows first, got shape "
            f"{tuple(states.shape)}"
        )
    if not callable(combine):
        raise TypeError(f"combine must be callable, got {type(combine).__name__}")
    schedule = cached_tree_schedule(plan)
    levels = []
    current = states.index_select(0, schedule.initial_order)
    for level in schedule.levels:
        levels.append(current)
        if level.num_pairs == 0:
            break
        left, right, carried = current[: 2 * level.num_pairs + level.num_carry].split(
            [level.num_pairs, level.num_pairs, level.num_carry]
        )
        following = torch.cat([combine(left, right), carried])
        current = following.index_select(0, level.order)
    return levels


def _tree_roots(
    states: Tensor, schedule: TreeSchedule, combine: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """The root of every non-empty group, in ``schedule.root_groups`` order, through autograd."""
    finished = []
    current = permute_rows(states, schedule.initial_order, schedule.initial_inverse)
    for level in schedule.levels:
        left, right, carried, done = current.split(
            [level.num_pairs, level.num_pairs, level.num_carry, level.num_done]
        )
        finished.append(done)
        if level.num_pairs == 0:
            break
        combined = combine(left, right)
        current = permute_rows(torch.cat([combined, carried]), level.order, level.inverse)
    return torch.cat(finished)


class PairKernel(Protocol):
    """A binary operator with a hand-derived backward, for :func:`fused_tree_reduce`.

    Operands come in pairs ``[m, 2, C]`` (``pair[:, 0] ⊕ pair[:, 1]``; the two operands may
    sit far apart in memory). ``pack`` turns the parameters into the tensors the kernel works
    with, once per reduction; ``reference`` is the same operator in differentiable torch ops on
    ``[..., C]`` operands; ``forward`` writes what its backward needs into a
    ``[m, saved_width(C)]`` buffer; ``backward`` writes the pair's gradient into ``grad_pair``
    and accumulates the parameters' gradients into the buffers made by
    ``packed_grad_buffers``, which ``unpack_grads`` maps back to the parameters.
    """

    def saved_width(self, channels: int) -> int: ...

    def reference(self, a: Tensor, b: Tensor, *params: Tensor) -> Tensor: ...

    def pack(self, *params: Tensor) -> tuple[Tensor, ...]: ...

    def packed_grad_buffers(self, packed: tuple[Tensor, ...]) -> tuple[Tensor, ...]: ...

    def forward(self, pair: Tensor, packed: tuple[Tensor, ...], saved: Tensor) -> Tensor: ...

    def backward(
        self,
        grad: Tensor,
        pair: Tensor,
        saved: Tensor,
        packed: tuple[Tensor, ...],
        packed_grads: tuple[Tensor, ...],
        grad_pair: Tensor,
    ) -> None: ...

    def unpack_grads(self, packed_grads: tuple[Tensor, ...]) -> tuple[Tensor | None, ...]: ...


#: With one CPU thread a level is processed in chunks whose operands take about this many bytes,
#: so the kernel's temporaries stay in the L2 cache and come from the allocator's free lists;
#: large fresh buffers cost a page fault per 4 KiB on first touch, which there costs more than
#: the arithmetic. With several threads every op large enough to be split opens an OpenMP
#: parallel region whose end waits for every thread; on a busy machine a descheduled thread
#: makes each such wait last a scheduler time slice (libgomp's default wait policy), so there a
#: level is one chunk: fewer, larger ops (2.6x fewer for an LCM layer with a 200-hub). On a GPU
#: a level is one chunk too: there, every extra launch costs more.
CPU_CHUNK_BYTES = 1 << 18


def _chunks(pairs: int, like: Tensor) -> range:
    """Starts of the chunks (in tree rows) a level of ``pairs`` pairs is processed in."""
    if like.device.type != "cpu" or torch.get_num_threads() > 1:
        return range(0, pairs, max(pairs, 1))
    return range(0, pairs, max(1, CPU_CHUNK_BYTES // (like[:1].numel() * like.element_size())))


def _pair_view(level: Tensor, pairs: int, start: int, stop: int) -> Tensor:
    """Left and right operands of pairs ``start:stop`` of a level as one ``[n, 2, C]`` view."""
    channels = level.shape[-1]
    both = level[: 2 * pairs].view(2, -1, channels)
    per_row = both.shape[1] // pairs
    return both[:, start * per_row : stop * per_row].transpose(0, 1)


class _FusedTree(torch.autograd.Function):
    """The whole tree as one autograd node: the level loop runs forward and then backward in
    plain tensor code, so no per-level graph is recorded (its bookkeeping costs more than the
    arithmetic on small and medium graphs, and is what a GPU waits for)."""

    @staticmethod
    def forward(ctx, kernel: PairKernel, schedule: TreeSchedule, states: Tensor, *params: Tensor):
        packed = kernel.pack(*params)
        rest, channels = states.shape[1:], states.shape[-1]
        per_row = states[:1].numel() // channels  # kernel rows per tree row (heads)
        width = kernel.saved_width(channels)
        keep = any(ctx.needs_input_grad)
        # Roots are gathered once at the end from the saved levels, or, when nothing is saved,
        # copied out level by level so that each level can be freed.
        roots = None if keep else states.new_empty((schedule.root_groups.numel(), *rest))
        current = states.index_select(0, schedule.initial_order)
        finished, saved, done_blocks = 0, [], []
        for level in schedule.levels:
            m, c, d = level.num_pairs, level.num_carry, level.num_done
            if keep:
                done_blocks.append(current[2 * m + c :])
            elif d:
                roots[finished : finished + d].copy_(current[2 * m + c :])
            finished += d
            if m == 0:
                break
            chunks = _chunks(m, states)
            aux = states.new_empty(((m if keep else min(m, chunks.step)) * per_row, width))
            following = states.new_empty((m + c, *rest))
            for start in chunks:
                stop = min(m, start + chunks.step)
                offset = start * per_row if keep else 0
                combined = kernel.forward(
                    _pair_view(current, m, start, stop),
                    packed,
                    aux[offset : offset + (stop - start) * per_row],
                )
                following.index_copy_(0, level.inverse[start:stop], combined.view(-1, *rest))
            if c:
                following.index_copy_(0, level.inverse[m:], current[2 * m : 2 * m + c])
            if keep:
                saved += [current, aux]
            current = following
        ctx.kernel, ctx.schedule, ctx.num_levels = kernel, schedule, len(saved) // 2
        if keep:
            roots = torch.cat(done_blocks)
            ctx.save_for_backward(states, *params, *packed, *saved)
            ctx.num_params, ctx.num_packed = len(params), len(packed)
        return roots

    @staticmethod
    def backward(ctx, grad_roots: Tensor):
        kernel, schedule = ctx.kernel, ctx.schedule
        tensors = ctx.saved_tensors
        inputs, tensors = tensors[: 1 + ctx.num_params], tensors[1 + ctx.num_params :]
        if torch.is_grad_enabled():
            # A second derivative was asked for: differentiate the tree in plain torch ops.
            with torch.enable_grad():
                roots = _tree_roots(
                    inputs[0], schedule, lambda a, b: kernel.reference(a, b, *inputs[1:])
                )
            grads = torch.autograd.grad(
                roots, inputs, grad_roots, create_graph=True, allow_unused=True
            )
            return None, None, *grads
        packed, saved = tensors[: ctx.num_packed], tensors[ctx.num_packed :]
        packed_grads = kernel.packed_grad_buffers(packed)
        grad_roots = grad_roots.contiguous()
        channels = grad_roots.shape[-1]
        per_row = grad_roots[:1].numel() // channels
        offsets = [0]
        for level in schedule.levels:
            offsets.append(offsets[-1] + level.num_done)
        # The level after the last combining one holds only finished roots.
        grad_next = grad_roots[offsets[ctx.num_levels] : offsets[ctx.num_levels + 1]]
        for i in reversed(range(ctx.num_levels)):
            level = schedule.levels[i]
            current, aux = saved[2 * i], saved[2 * i + 1]
            m, c = level.num_pairs, level.num_carry
            grad_current = torch.empty_like(current)
            if offsets[i + 1] > offsets[i]:
                grad_current[2 * m + c :].copy_(grad_roots[offsets[i] : offsets[i + 1]])
            if c:
                torch.index_select(
                    grad_next, 0, level.inverse[m:], out=grad_current[2 * m : 2 * m + c]
                )
            chunks = _chunks(m, grad_roots)
            for start in chunks:
                stop = min(m, start + chunks.step)
                kernel.backward(
                    grad_next.index_select(0, level.inverse[start:stop]).view(-1, channels),
                    _pair_view(current, m, start, stop),
                    aux[start * per_row : stop * per_row],
                    packed,
                    packed_grads,
                    _pair_view(grad_current, m, start, stop),
                )
            grad_next = grad_current
        grad_states = grad_next.index_select(0, schedule.initial_inverse)
        return None, None, grad_states, *kernel.unpack_grads(packed_grads)


def fused_tree_reduce(
    states: Tensor,
    plan: SegmentPlan,
    kernel: PairKernel,
    params: tuple[Tensor, ...],
    identity: Tensor,
) -> Tensor:
    """:func:`tree_reduce` with an operator given as a :class:`PairKernel` of ``params``.

    Same tree, same result up to rounding, one autograd node for the whole reduction. Second
    derivatives (``create_graph=True``) recompute the tree with ``kernel.reference``.
    """
    _check_tree_inputs(states, plan, identity)
    if not isinstance(params, tuple) or not all(isinstance(p, Tensor) for p in params):
        raise TypeError("params must be a tuple of tensors (the kernel's parameters)")
    schedule = cached_tree_schedule(plan)
    if schedule.root_groups.numel() == 0:
        # A fresh tensor: ``identity`` may be an expanded view of a parameter.
        return identity.clone(memory_format=torch.contiguous_format)
    roots = _apply_fused_tree(kernel, schedule, states.contiguous(), *params)
    return identity.index_copy(0, schedule.root_groups, roots)


# torch.compile runs the tree eagerly: the kernels write into strided views, which its
# functionalization does not take, and the tree is one node already, so there is nothing to fuse.
@torch.compiler.disable
def _apply_fused_tree(kernel, schedule, states, *params):
    return _FusedTree.apply(kernel, schedule, states, *params)
