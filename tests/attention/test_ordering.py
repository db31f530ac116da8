"""Node orderings: Morton codes against a bit-by-bit reference, reverse Cuthill-McKee."""

import torch

from gnnagg.attention import morton_codes, reverse_cuthill_mckee

from .attention_graphs import morton_reference


def test_morton_codes_interleave_bits():
    pos = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert morton_codes(pos).tolist() == morton_reference(pos)
    pos2 = pos[:, :2]
    assert morton_codes(pos2).tolist() == morton_reference(pos2)
    batch = torch.arange(50) % 3
    assert morton_codes(pos, batch).tolist() == morton_reference(pos, batch)


def test_rcm_is_a_permutation_with_small_bandwidth():
    from gnnagg.data.meshes import lattice_mesh

    mesh = lattice_mesh(343)
    order = reverse_cuthill_mckee(mesh.edge_index, 343)
    assert torch.equal(torch.sort(order).values, torch.arange(343))
    position = torch.empty_like(order)
    position[order] = torch.arange(343)
    bandwidth = (position[mesh.edge_index[0]] - position[mesh.edge_index[1]]).abs().max()
    assert bandwidth < 343 // 3
