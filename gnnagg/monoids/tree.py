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
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..segment import SegmentPlan

__all__ = ["TreeLevel", "TreeSchedule", "cached_tree_schedule", "tree_reduce", "tree_schedule"]


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
    """``initial_order`` arranges the grouped rows into the first level's layout."""

    initial_order: Tensor
    initial_inverse: Tensor
    levels: list[TreeLevel]


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


def cached_tree_schedule(plan: SegmentPlan) -> TreeSchedule:
    """:func:`tree_schedule` for ``plan``'s degrees, computed once per plan."""
    schedule = plan.__dict__.get("_tree_schedule")
    if schedule is None:
        schedule = tree_schedule(plan.degrees)
        plan.__dict__["_tree_schedule"] = schedule
    return schedule


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
    schedule = cached_tree_schedule(plan)
    finished_states, finished_groups = [], []
    current = permute_rows(states, schedule.initial_order, schedule.initial_inverse)
    for level in schedule.levels:
        left, right, carried, done = current.split(
            [level.num_pairs, level.num_pairs, level.num_carry, level.num_done]
        )
        if level.num_done:
            finished_states.append(done)
            finished_groups.append(level.done_groups)
        if level.num_pairs == 0:
            break
        combined = combine(left, right)
        current = permute_rows(torch.cat([combined, carried]), level.order, level.inverse)
    if not finished_groups:
        return identity
    return identity.index_copy(0, torch.cat(finished_groups), torch.cat(finished_states))
