"""group_neighbourhoods regroups messages by node, gathering only when it has to."""

import torch

from gnnagg.aggr.base import group_neighbourhoods


def test_sorted_input_is_used_in_place_and_unsorted_is_gathered():
    x = torch.randn(6, 3)
    grouped = group_neighbourhoods(x, torch.tensor([0, 0, 1, 2, 2, 2]), dim_size=3)
    assert grouped.rows is None and grouped.messages.data_ptr() == x.data_ptr()
    index = torch.tensor([2, 0, 1, 0, 2, 2])
    grouped = group_neighbourhoods(x, index, dim_size=3)
    assert torch.equal(grouped.rows, torch.tensor([1, 3, 2, 0, 4, 5]))
    assert torch.equal(grouped.messages, x[grouped.rows])
    torch.testing.assert_close(grouped.ptr, torch.tensor([0, 2, 3, 6]))


def test_shuffle_keeps_groups_together():
    x = torch.arange(8.0).unsqueeze(1)
    index = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    generator = torch.Generator().manual_seed(0)
    grouped = group_neighbourhoods(x, index, dim_size=3, shuffle=True, generator=generator)
    assert torch.equal(index[grouped.rows], index)
    assert sorted(grouped.rows.tolist()) == list(range(8))
