"""Partitioned meshes: cores, halos against the whole mesh's mask and against what a model's
outputs depend on, stitched inference."""

import importlib.util

import pytest
import torch

from gnnagg.attention import adjacency, dilated_window, global_tokens, khop, random_jumps
from gnnagg.data import channel_mesh, delaunay_mesh
from gnnagg.models import (
    GraphTransformer,
    MeshGraphNet,
    MeshPartition,
    edge_reach,
    mask_reach,
    partition_mesh,
    partition_nodes,
    restrict_mask,
    stitched_forward,
)

HAS_METIS = importlib.util.find_spec("pymetis") is not None
METHODS = ["rcb", "morton", "rcm"] + (["metis"] if HAS_METIS else [])
MASKS = {
    "adjacency": adjacency(),
    "khop2": khop(2),
    "dilated": dilated_window(2, 3),
    "khop2|dilated": khop(2) | dilated_window(2, 3),
    "adjacency|dilated-index": adjacency() | dilated_window(1, 5, order="index"),
}


def _mesh(dim):
    """A 2-D channel mesh (300 nodes) or a 3-D Delaunay mesh (250 nodes): edges, pos."""
    if dim == 2:
        mesh = channel_mesh(300, 2)
        edge_index = torch.from_numpy(mesh.edges())
        return edge_index, torch.from_numpy(mesh.pos).to(torch.float64)
    data = delaunay_mesh(250, seed=1)
    return data.edge_index, data.pos.to(torch.float64)


def _dense_reach(attends, start, steps):
    """Reference reach: ``attends[q, k]`` is True when query ``q`` reads key ``k``."""
    reached = start.clone()
    for _ in range(steps):
        reached = reached | attends[reached].any(dim=0)
    return reached


def _node_pairs(mask_index):
    """The whole mask's node-to-node pairs as a dense ``[N, N]`` table (tokens dropped)."""
    return mask_index.to_dense()[mask_index.node_rows][:, mask_index.node_rows]


# ---------------------------------------------------------------------- parts


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_parts", [1, 3, 4, 7])
def test_cores_cover_every_node_exactly_once(method, num_parts):
    edge_index, pos = _mesh(2)
    partition = partition_mesh(edge_index, num_parts, num_layers=1, pos=pos, method=method)
    assert partition.method == method and partition.num_parts == num_parts
    cores = torch.cat([part.core for part in partition.parts])
    assert torch.equal(torch.sort(cores).values, torch.arange(300))
    for index, part in enumerate(partition.parts):
        assert bool((partition.assignment[part.core] == index).all())
        assert torch.equal(part.nodes[: part.num_core], part.core)
        assert not bool(torch.isin(part.halo, part.core).any())
    sizes = torch.bincount(partition.assignment, minlength=num_parts)
    if method != "metis":
        assert int(sizes.max() - sizes.min()) <= 1


@pytest.mark.parametrize("method", METHODS)
def test_partition_is_deterministic(method):
    edge_index, pos = _mesh(3)
    first, name = partition_nodes(edge_index, 5, pos=pos, method=method)
    again, _ = partition_nodes(edge_index, 5, pos=pos, method=method)
    assert name == method and torch.equal(first, again)


def test_auto_method_is_metis_when_installed_else_rcb_or_rcm():
    edge_index, pos = _mesh(2)
    _, with_pos = partition_nodes(edge_index, 2, pos=pos)
    _, without = partition_nodes(edge_index, 2)
    assert (with_pos, without) == (("metis", "metis") if HAS_METIS else ("rcb", "rcm"))


def test_rcb_parts_are_compact():
    """Recursive bisection cuts along coordinates: each of 4 parts of a 2-D mesh spans about
    half the channel's length and height or less."""
    edge_index, pos = _mesh(2)
    part, _ = partition_nodes(edge_index, 4, pos=pos, method="rcb")
    extent = pos.amax(0) - pos.amin(0)
    for index in range(4):
        points = pos[part == index]
        assert bool(((points.amax(0) - points.amin(0)) <= 0.55 * extent + 1e-9).sum() >= 1)


# ---------------------------------------------------------------------- halos


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", list(MASKS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_halo_is_the_masks_reach(dim, name, num_layers):
    edge_index, pos = _mesh(dim)
    mask = MASKS[name]
    partition = partition_mesh(edge_index, 4, num_layers=num_layers, mask=mask, pos=pos,
                               method="rcb")
    whole = mask.build(edge_index, num_nodes=pos.size(0), pos=pos)
    attends = _node_pairs(whole)
    for part in partition.parts:
        core = torch.zeros(pos.size(0), dtype=torch.bool)
        core[part.core] = True
        expected = _dense_reach(attends, core, num_layers)
        got = torch.zeros_like(core)
        got[part.nodes] = True
        assert torch.equal(got, expected)
        assert torch.equal(mask_reach(whole, part.core, num_layers), expected)
        # Rows one layer inside the halo keep every key they have on the whole mesh.
        inner = _dense_reach(attends, core, num_layers - 1)[part.nodes]
        sub = part.mask_index.to_dense()
        assert torch.equal(sub[inner], attends[part.nodes[inner]][:, part.nodes])
        assert sub.sum() == attends[part.nodes][:, part.nodes].sum()


# Every kind of mask a mesh transformer uses, alone and composed as the mesh study composes
# them: the halo must hold every node the core's outputs depend on.
DEPENDENCY_MASKS = {
    "adjacency": adjacency(),
    "khop2": khop(2),
    "dilated": dilated_window(4, 8, "morton"),
    "khop2|dilated": khop(2) | dilated_window(4, 8, "morton"),
    "adjacency|global": adjacency() | global_tokens(2),
    "khop2|dilated|global": khop(2) | dilated_window(4, 8, "morton") | global_tokens(2),
}


def _depends_on(model, x, whole_mask, rows):
    """``[N]`` bool: the nodes whose features change the outputs at ``rows`` (from the
    gradient of a random projection of those outputs; float64, so no accidental zeros)."""
    x = x.clone().requires_grad_(True)
    out = model(x, mask_index=whole_mask)[rows]
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return grad.abs().sum(dim=1) > 0


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", list(DEPENDENCY_MASKS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_halo_holds_every_node_the_cores_outputs_depend_on(dim, name, num_layers):
    """The halo against the model itself, not against mask_reach: the nodes a core's outputs
    depend on (the gradient's support on the whole mesh) are exactly the mask's
    ``num_layers``-step reach, which the sub-mesh holds. Global tokens carry every node to
    every node from the second layer on; the halo does not follow them, and the partition
    says so (``exact`` false)."""
    torch.manual_seed(7)
    edge_index, pos = _mesh(dim)
    n = pos.size(0)
    mask = DEPENDENCY_MASKS[name]
    model = GraphTransformer(3, 8, 2, heads=2, num_layers=num_layers, mask=mask).double()
    whole = mask.build(edge_index, num_nodes=n, pos=pos)
    partition = partition_mesh(edge_index, 4, num_layers=num_layers, mask=whole, pos=pos,
                               method="rcb")
    tokens = mask.tokens_per_graph > 0
    assert partition.exact is (not tokens or num_layers == 1)
    x = torch.randn(n, 3, dtype=torch.float64)
    for part in partition.parts:
        depends = _depends_on(model, x, whole, part.core)
        held = torch.zeros(n, dtype=torch.bool)
        held[part.nodes] = True
        assert torch.equal(held, mask_reach(whole, part.core, num_layers))
        if partition.exact:
            assert torch.equal(depends, held)
        else:
            assert bool(depends.all())


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_halo_of_message_passing_is_the_edges_reach(dim, num_layers):
    edge_index, pos = _mesh(dim)
    n = pos.size(0)
    partition = partition_mesh(edge_index, 3, num_layers=num_layers, pos=pos, method="morton")
    attends = torch.zeros(n, n, dtype=torch.bool)
    attends[edge_index[1], edge_index[0]] = True  # a receiver reads its senders
    assert partition.reach == "edges" and partition.exact
    for part in partition.parts:
        core = torch.zeros(n, dtype=torch.bool)
        core[part.core] = True
        expected = _dense_reach(attends, core, num_layers)
        assert torch.equal(edge_reach(edge_index, core, num_layers), expected)
        assert torch.equal(torch.sort(part.nodes).values, expected.nonzero().view(-1))
        # The sub-mesh has exactly the mesh's edges between its nodes, renumbered.
        inside = expected[edge_index[0]] & expected[edge_index[1]]
        assert torch.equal(part.edge_ids, inside.nonzero().view(-1))
        assert torch.equal(part.nodes[part.edge_index], edge_index[:, part.edge_ids])


# ---------------------------------------------------------------------- stitched inference


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", list(MASKS))
def test_stitched_transformer_equals_whole_mesh(dim, name):
    torch.manual_seed(0)
    edge_index, pos = _mesh(dim)
    mask = MASKS[name]
    model = GraphTransformer(4, 16, 3, heads=2, num_layers=2, mask=mask).double()
    x = torch.randn(pos.size(0), 4, dtype=torch.float64)
    partition = partition_mesh(edge_index, 4, num_layers=2, mask=mask, pos=pos, method="rcb")
    assert partition.exact
    whole = model(x, edge_index, pos=pos)
    torch.testing.assert_close(stitched_forward(model, partition, x), whole, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("method", ["rcb", "morton"])
def test_stitched_meshgraphnet_equals_whole_mesh(dim, method):
    torch.manual_seed(1)
    edge_index, pos = _mesh(dim)
    model = MeshGraphNet(4, 16, 2, edge_dim=dim + 1, num_layers=3).double()
    x = torch.randn(pos.size(0), 4, dtype=torch.float64)
    partition = partition_mesh(edge_index, 4, num_layers=3, pos=pos, method=method)
    whole = model(x, edge_index, pos=pos)
    torch.testing.assert_close(stitched_forward(model, partition, x, pos=pos), whole,
                               rtol=0, atol=1e-10)
    edge_attr = torch.randn(edge_index.size(1), dim + 1, dtype=torch.float64)
    torch.testing.assert_close(stitched_forward(model, partition, x, edge_attr=edge_attr),
                               model(x, edge_index, edge_attr), rtol=0, atol=1e-10)


def test_a_halo_too_shallow_changes_the_output():
    """The halo is needed: one layer of halo for a three-step MeshGraphNet is not enough."""
    torch.manual_seed(2)
    edge_index, pos = _mesh(2)
    model = MeshGraphNet(4, 16, 2, edge_dim=3, num_layers=3).double()
    x = torch.randn(300, 4, dtype=torch.float64)
    shallow = partition_mesh(edge_index, 4, num_layers=1, pos=pos, method="rcb")
    stitched = shallow.apply(lambda part: model(x[part.nodes], part.edge_index,
                                                pos=pos[part.nodes]))
    assert (stitched - model(x, edge_index, pos=pos)).abs().max() > 1e-6


def test_global_tokens_are_exact_for_one_layer_and_approximate_beyond():
    """Tokens are followed by no halo: with one layer they hold their learned embeddings in
    every part (exact); from two layers on they have seen only their sub-mesh."""
    torch.manual_seed(3)
    edge_index, pos = _mesh(2)
    mask = adjacency() | global_tokens(2)
    x = torch.randn(300, 4, dtype=torch.float64)
    for layers, exact in ((1, True), (2, False)):
        model = GraphTransformer(4, 16, 3, heads=2, num_layers=layers, mask=mask).double()
        partition = partition_mesh(edge_index, 4, num_layers=layers, mask=mask, pos=pos,
                                   method="rcb")
        plain = partition_mesh(edge_index, 4, num_layers=layers, mask=adjacency(), pos=pos,
                               method="rcb")
        assert partition.exact is exact
        for part, reference in zip(partition.parts, plain.parts):
            assert torch.equal(part.nodes, reference.nodes)  # the tokens widen no halo
            assert part.mask_index.tokens_per_graph == 2
        difference = (stitched_forward(model, partition, x) - model(x, edge_index)).abs().max()
        assert difference < 1e-10 if exact else difference > 1e-6


def test_random_jumps_drawn_once_are_exact_and_widen_the_halo():
    torch.manual_seed(4)
    edge_index, pos = _mesh(2)
    mask = adjacency() | random_jumps(0.02, seed=5)
    whole = mask.build(edge_index, num_nodes=300, pos=pos)
    model = GraphTransformer(4, 16, 3, heads=2, num_layers=2, mask=mask).double()
    x = torch.randn(300, 4, dtype=torch.float64)
    partition = partition_mesh(edge_index, 4, num_layers=2, mask=whole, pos=pos, method="rcb")
    plain = partition_mesh(edge_index, 4, num_layers=2, mask=adjacency(), pos=pos, method="rcb")
    assert partition.halo_fraction() > plain.halo_fraction()
    torch.testing.assert_close(stitched_forward(model, partition, x),
                               model(x, mask_index=whole), rtol=0, atol=1e-10)


def test_restrict_mask_keeps_the_pairs_between_the_nodes():
    edge_index, pos = _mesh(2)
    whole = (khop(2) | global_tokens(1)).build(edge_index, num_nodes=300, pos=pos)
    nodes = torch.tensor([7, 3, 250, 11, 12])
    sub = restrict_mask(whole, nodes).to_dense()
    dense = whole.to_dense()
    rows = torch.cat([whole.token_rows.view(-1), whole.node_rows[nodes]])
    assert torch.equal(sub, dense[rows][:, rows])


# ---------------------------------------------------------------------- arguments


def test_bad_arguments_are_named():
    edge_index, pos = _mesh(2)
    for bad, error in ((0, ValueError), (301, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="num_parts"):
            partition_mesh(edge_index, bad, num_layers=1, pos=pos)
    for bad, error in ((-1, ValueError), ("2", TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="num_layers"):
            partition_mesh(edge_index, 2, num_layers=bad, pos=pos)
    with pytest.raises(ValueError, match="method"):
        partition_nodes(edge_index, 2, pos=pos, method="kmeans")
    with pytest.raises(ValueError, match="pos"):
        partition_nodes(edge_index, 2, method="rcb")
    with pytest.raises(TypeError, match="mask"):
        partition_mesh(edge_index, 2, num_layers=1, mask="khop2")
    with pytest.raises(ValueError, match="edge_index"):
        partition_mesh(edge_index[:1], 2, num_layers=1)
    with pytest.raises(ValueError, match="pos"):
        partition_mesh(edge_index, 2, num_layers=1, num_nodes=300, pos=pos[:10])


def test_stitched_inference_refuses_a_partition_that_does_not_fit():
    edge_index, pos = _mesh(2)
    x = torch.randn(300, 4)
    model = GraphTransformer(4, 8, 1, heads=2, num_layers=2, mask=khop(2))
    shallow = partition_mesh(edge_index, 2, num_layers=1, mask=khop(2), pos=pos)
    with pytest.raises(ValueError, match="num_layers=1"):
        stitched_forward(model, shallow, x)
    other = partition_mesh(edge_index, 2, num_layers=2, mask=adjacency(), pos=pos)
    with pytest.raises(ValueError, match="khop"):
        stitched_forward(model, other, x)
    mgn = MeshGraphNet(4, 8, 1, edge_dim=3, num_layers=1)
    with pytest.raises(ValueError, match="edges"):
        stitched_forward(mgn, other, x, pos=pos.float())
    with pytest.raises(ValueError, match="x"):
        stitched_forward(model, other, x[:5])
    with pytest.raises(ValueError, match="outputs"):
        other.stitch([x])
    assert isinstance(other, MeshPartition)


def test_metis_without_pymetis_says_how_to_install(monkeypatch):
    edge_index, pos = _mesh(2)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pymetis" else real(name, *a))
    with pytest.raises(ImportError, match="pip install pymetis"):
        partition_nodes(edge_index, 2, pos=pos, method="metis")
    assert partition_nodes(edge_index, 2, pos=pos)[1] == "rcb"
