"""Mesh graphs: the channel of the simulations, the generated 3-D lattice and Delaunay meshes."""

import math

import numpy as np
import pytest
import torch
from torch_geometric.utils import is_undirected, to_networkx

from gnnagg.data import NODE_TYPES, channel_mesh, delaunay_mesh, lattice_mesh

OBSTACLE = NODE_TYPES.index("obstacle")
WALL = NODE_TYPES.index("wall")
CENTRE, RADIUS = (0.2, 0.2), 0.05


# ------------------------------------------------------------------------- channel meshes


@pytest.mark.parametrize(("dim", "n"), [(2, 200), (2, 777), (2, 3000), (3, 1000), (3, 2500)])
def test_mesh_has_exactly_the_requested_nodes_all_used(dim, n):
    mesh = channel_mesh(n, dim, seed=3)
    assert mesh.pos.shape == (n, dim)
    assert mesh.cells.shape[1] == dim + 1
    assert np.array_equal(np.unique(mesh.cells), np.arange(n))
    assert (mesh.cell_volumes() > 0).all()
    assert set(np.unique(mesh.node_type)) == {0, 1, 2}


@pytest.mark.parametrize("n", [300, 2000])
def test_mesh_covers_the_channel_minus_the_polygonal_cylinder(n):
    mesh = channel_mesh(n, 2)
    (length, height), centre, radius = mesh.box, np.asarray(CENTRE), RADIUS
    on_circle = mesh.pos[mesh.node_type == OBSTACLE]
    np.testing.assert_allclose(np.linalg.norm(on_circle - centre, axis=1), radius)
    m = len(on_circle)
    polygon = 0.5 * m * radius**2 * math.sin(2 * math.pi / m)
    assert mesh.cell_volumes().sum() == pytest.approx(length * height - polygon, rel=1e-12)
    # No element has its centroid inside the cylinder.
    centroids = mesh.pos[mesh.cells].mean(axis=1)
    assert (np.linalg.norm(centroids - centre, axis=1) > radius * math.cos(math.pi / m)).all()


def test_mesh_without_obstacle_covers_the_box():
    mesh = channel_mesh(1200, 3, obstacle=False)
    assert mesh.cell_volumes().sum() == pytest.approx(2.2 * 0.41 * 0.41, rel=1e-12)
    assert OBSTACLE not in mesh.node_type


def test_wall_nodes_lie_on_the_box_and_edges_are_symmetric():
    mesh = channel_mesh(500, 2)
    box = np.asarray(mesh.box)
    walls = mesh.pos[mesh.node_type == WALL]
    assert (np.isclose(walls, 0).any(1) | np.isclose(walls, box).any(1)).all()
    edges = mesh.edges()
    forward = set(map(tuple, edges.T.tolist()))
    assert forward == {(b, a) for a, b in forward}
    assert (edges[0] != edges[1]).all()
    keys = edges[0] * mesh.num_nodes + edges[1]
    assert (np.diff(keys) > 0).all()




# --------------------------------------------------------------------- 3-D meshes



def _check_mesh(mesh, n):
    assert mesh.num_nodes == n and mesh.pos.shape == (n, 3)
    ei = mesh.edge_index
    assert is_undirected(ei) and not torch.any(ei[0] == ei[1])
    assert torch.unique(ei, dim=1).size(1) == ei.size(1)
    assert mesh.pos.min() >= 0 and mesh.pos.max() <= 1


def test_lattice_mesh_exact_sizes_and_degrees():
    cube = lattice_mesh(27)
    _check_mesh(cube, 27)
    assert cube.edge_index.size(1) == 2 * 3 * 3 * 3 * 2  # 3 axes, 9 lines, 2 edges each
    for n in (1, 2, 28, 1000, 4097):
        mesh = lattice_mesh(n)
        _check_mesh(mesh, n)
        deg = torch.bincount(mesh.edge_index[0], minlength=n)
        assert deg.max() <= 6
        if n > 1:
            assert to_networkx(mesh, to_undirected=True).number_of_edges() * 2 == deg.sum()
    assert torch.equal(lattice_mesh(500).edge_index, lattice_mesh(500).edge_index)


def test_delaunay_mesh_is_connected_and_seeded():
    nx = pytest.importorskip("networkx")
    pytest.importorskip("scipy")
    mesh = delaunay_mesh(300, seed=1)
    _check_mesh(mesh, 300)
    assert nx.is_connected(to_networkx(mesh, to_undirected=True))
    assert torch.equal(mesh.edge_index, delaunay_mesh(300, seed=1).edge_index)
    assert not torch.equal(mesh.pos, delaunay_mesh(300, seed=2).pos)


@pytest.mark.parametrize(
    ("fn", "args", "exc", "match"),
    [
        (lattice_mesh, (0,), ValueError, "n: need at least 1"),
        (lattice_mesh, (2.5,), TypeError, "n: expected an int"),
        (delaunay_mesh, (4,), ValueError, "n: need at least 5"),
        (delaunay_mesh, (10, -1), ValueError, "seed"),
    ],
)
def test_mesh_bad_arguments(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


def test_obstacle_may_sit_anywhere_inside_the_channel():
    mesh = channel_mesh(400, centre=(1.5, 0.25), radius=0.07, seed=3)
    assert mesh.num_nodes == 400 and mesh.centre == (1.5, 0.25) and mesh.radius == 0.07
    on = mesh.pos[mesh.node_type == OBSTACLE]
    np.testing.assert_allclose(np.linalg.norm(on - [1.5, 0.25], axis=1), 0.07, rtol=1e-9)
    # Nothing of the mesh lies inside the obstacle.
    corners = mesh.pos[mesh.cells].mean(axis=1)
    assert (np.linalg.norm(corners - [1.5, 0.25], axis=1) > 0.07 * 0.9).all()
    default = channel_mesh(400)
    assert default.centre == (0.2, 0.2) and default.radius == 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [({"centre": (2.19, 0.2)}, "centre, radius"), ({"radius": 0.3}, "centre, radius"),
     ({"centre": (0.5,)}, "centre"), ({"radius": -1.0}, "radius"),
     ({"centre": (0.2, 0.07), "radius": 0.05}, "within")],
)  # fmt: skip
def test_obstacle_geometry_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        channel_mesh(300, **kwargs)


def test_meshes_beyond_memory_are_refused_before_allocating(monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    for make in (lattice_mesh, delaunay_mesh):
        with pytest.raises(ValueError, match="n=10000000000000: the mesh"):
            make(10**13)
