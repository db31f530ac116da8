"""MUTAG, QM9 and the airfoil mesh from fixtures."""

import shutil

import pytest
import torch
from torch_geometric.datasets import TUDataset
from torch_geometric.utils import is_undirected

from gnnagg.data import QM9_TARGETS, QM9Dataset, fetch
from gnnagg.data.download import datasets_dir
from gnnagg.data.safe_load import pyg_safe_globals
from gnnagg.data.tu_format import MUTAG_FILES, TUFormatDataset

FIXTURES = datasets_dir() / "fixtures"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _read_ints(name):
    return [int(v) for v in (FIXTURES / "mutag" / name).read_text().split()]


def test_mutag_fixture_equals_pyg_tudataset(cache, tmp_path):
    ds = fetch("mutag", root=cache, fixture=True)
    labels = _read_ints("MUTAG_graph_labels.txt")
    assert isinstance(ds, TUFormatDataset) and len(ds) == len(labels) == 41
    # PyG's own TUDataset on the same files gives the same graphs and sizes.
    raw = tmp_path / "MUTAG" / "raw"
    raw.mkdir(parents=True)
    for name in MUTAG_FILES:
        shutil.copyfile(FIXTURES / "mutag" / name, raw / name)
    with torch.serialization.safe_globals(pyg_safe_globals()):
        reference = TUDataset(str(tmp_path), "MUTAG")
    assert ds.sizes == reference.sizes and ds.num_node_labels == reference.num_node_labels == 7
    for key in ("x", "edge_index", "edge_attr", "y"):
        assert torch.equal(getattr(ds._data, key), getattr(reference._data, key)), key
        assert torch.equal(ds.slices[key], reference.slices[key]), key
    # TU labels -1/1 become classes 0/1.
    assert ds.y.tolist() == [(v + 1) // 2 for v in labels]
    # The fixture keeps every node and edge label, so feature widths equal the full MUTAG's.
    assert ds.num_node_features == 7 and ds.num_edge_features == 4
    indicator = _read_ints("MUTAG_graph_indicator.txt")
    sizes = torch.bincount(torch.tensor(indicator))[1:]
    assert [ds[i].num_nodes for i in range(len(ds))] == sizes.tolist()
    node_labels = torch.tensor(_read_ints("MUTAG_node_labels.txt"))
    assert torch.equal(ds.x.argmax(dim=1), node_labels)
    assert all(is_undirected(ds[i].edge_index) for i in range(len(ds)))


def test_qm9_fixture_matches_csv(cache):
    pd = pytest.importorskip("pandas")
    ds = fetch("qm9", root=cache, fixture=True)
    assert isinstance(ds, QM9Dataset) and len(ds) == 100
    df = pd.read_csv(FIXTURES / "qm9" / "qm9_fixture.csv")
    assert ds.target_names == (
        "mu",
        "alpha",
        "homo",
        "lumo",
        "gap",
        "r2",
        "zpve",
        "U0",
        "U",
        "H",
        "G",
        "Cv",
    )
    cols = [c for _, c, _ in QM9_TARGETS]
    expected = torch.tensor(df[cols].to_numpy(), dtype=torch.float32)
    assert torch.equal(ds.y, expected)
    assert ds.idx.tolist() == df["Index"].tolist()
    for i in (0, 57, 99):
        data = ds[i]
        assert data.pos.shape == (data.num_nodes, 3) and data.z.numel() == data.num_nodes
        assert set(data.z.tolist()) <= {1, 6, 7, 8, 9}
        assert data.smiles == df["SMILES"][i]


def test_qm9_subset_is_deterministic_and_validated(cache):
    a = fetch("qm9", root=cache, fixture=True, subset=10)
    b = fetch("qm9", root=cache, fixture=True, subset=10)
    full = fetch("qm9", root=cache, fixture=True)
    assert len(a) == 10 and a.idx.tolist() == b.idx.tolist()
    assert set(a.idx.tolist()) <= set(full.idx.tolist())
    assert a.idx.tolist() == sorted(a.idx.tolist())
    with pytest.raises(ValueError, match="subset: 500 requested"):
        fetch("qm9", root=cache, fixture=True, subset=500)
    with pytest.raises(ValueError, match="subset must be positive, got 0 \\(option of 'qm9'\\)"):
        fetch("qm9", root=cache, fixture=True, subset=0)


def test_airfoil_mesh_matches_mat_file(cache):
    loadmat = pytest.importorskip("scipy.io").loadmat
    mesh = fetch("airfoil", root=cache, fixture=True)
    mat = loadmat(str(FIXTURES / "airfoil" / "airfoil.mat"))
    assert mesh.num_nodes == 4253 and mesh.pos.shape == (4253, 2)
    assert torch.allclose(mesh.pos[:, 0].double(), torch.from_numpy(mat["x"][:, 0]), atol=1e-6)
    i = mat["i_inds"].reshape(-1).astype(int) - 1
    j = mat["j_inds"].reshape(-1).astype(int) - 1
    expected = {(a, b) for a, b in zip(i, j) if a != b} | {(b, a) for a, b in zip(i, j) if a != b}
    assert set(map(tuple, mesh.edge_index.t().tolist())) == expected
    assert mesh.edge_index.size(1) == len(expected)
    shifted = fetch("airfoil", root=cache, fixture=True, transform=lambda d: d.pos.sum())
    assert torch.is_tensor(shifted)
