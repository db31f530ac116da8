"""Molecule data sets: OGB-layout round trip, scaffold split, penalised logP, ogb guards."""

import contextlib
import gzip
import io
import shutil

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")
pytest.importorskip("rdkit")
pytest.importorskip("ogb")

from ogb.graphproppred import PygGraphPropPredDataset  # noqa: E402
from ogb.utils import smiles2graph  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import Crippen  # noqa: E402

from gnnagg.data import fetch, penalized_logp, sa_score, scaffold_split  # noqa: E402
from gnnagg.data.download import datasets_dir  # noqa: E402
from gnnagg.data.molecules import ring_penalty, stable_rank  # noqa: E402
from gnnagg.data.ogb_layout import _murcko_scaffold, write_ogb_layout  # noqa: E402
from gnnagg.data.safe_load import pyg_safe_globals  # noqa: E402

FIXTURES = datasets_dir() / "fixtures"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def freesolv(cache):
    return fetch("freesolv", root=cache, fixture=True)


@pytest.fixture(scope="module")
def zinc(cache):
    return fetch("zinc-plogp", root=cache, fixture=True)


def _assert_same_graphs(dataset, smiles):
    assert len(dataset) == len(smiles)
    for i, s in enumerate(smiles):
        g = smiles2graph(s)
        data = dataset[i]
        assert data.num_nodes == g["num_nodes"]
        assert torch.equal(data.x, torch.from_numpy(g["node_feat"]))
        assert torch.equal(data.edge_index, torch.from_numpy(g["edge_index"]))
        assert torch.equal(data.edge_attr, torch.from_numpy(g["edge_feat"]))


def test_freesolv_ogb_layout_round_trip_is_exactly_smiles2graph(freesolv, cache):
    df = pd.read_csv(FIXTURES / "freesolv" / "freesolv.csv")
    _assert_same_graphs(freesolv, df["smiles"].tolist())
    expected = torch.tensor(df["expt"].to_numpy(), dtype=torch.float32).view(-1, 1)
    assert torch.equal(freesolv.y, expected)
    assert isinstance(freesolv, PygGraphPropPredDataset)
    assert freesolv.task_type == "regression" and freesolv.eval_metric == "rmse"
    folder = cache / "built" / "freesolv-fixture" / "ogbg_molfreesolv"
    for rel in (
        "RELEASE_v1.txt",
        "raw/edge.csv.gz",
        "raw/node-feat.csv.gz",
        "raw/edge-feat.csv.gz",
        "raw/num-node-list.csv.gz",
        "raw/num-edge-list.csv.gz",
        "raw/graph-label.csv.gz",
        "split/scaffold/train.csv.gz",
        "mapping/mol.csv.gz",
    ):
        assert (folder / rel).is_file(), rel
    mapping = pd.read_csv(folder / "mapping" / "mol.csv.gz")
    assert mapping["smiles"].tolist() == df["smiles"].tolist()
    # The same folder also loads by its official OGB name.
    again = fetch("ogbg-molfreesolv", root=cache, fixture=True)
    assert torch.equal(again.y, freesolv.y)


def test_safe_ogb_loader_equals_ogbs_own(freesolv, cache, tmp_path):
    # ogb's own class on a copy of the built folder: same data, split and attributes.
    shutil.copytree(cache / "built" / "freesolv-fixture", tmp_path / "copy")
    allowed = torch.serialization.safe_globals(pyg_safe_globals())
    with contextlib.redirect_stdout(io.StringIO()), allowed:
        reference = PygGraphPropPredDataset("ogbg-molfreesolv", root=str(tmp_path / "copy"))
    for key in ("x", "edge_index", "edge_attr", "y"):
        assert torch.equal(getattr(freesolv._data, key), getattr(reference._data, key)), key
        assert torch.equal(freesolv.slices[key], reference.slices[key]), key
    for attr in ("num_tasks", "eval_metric", "task_type", "num_classes", "binary", "root"):
        mine, theirs = getattr(freesolv, attr), getattr(reference, attr)
        assert mine == theirs or attr == "root", attr
    split, expected = freesolv.get_idx_split(), reference.get_idx_split()
    assert all(torch.equal(split[k], expected[k]) for k in expected)


def test_freesolv_scaffold_split_is_disjoint_complete_and_scaffold_pure(freesolv):
    split = {k: v.tolist() for k, v in freesolv.get_idx_split().items()}
    sets = [set(split[k]) for k in ("train", "valid", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set.union(*sets) == set(range(len(freesolv)))
    assert len(sets[0]) <= 0.8 * len(freesolv) < len(sets[0]) + 20
    smiles = pd.read_csv(FIXTURES / "freesolv" / "freesolv.csv")["smiles"].tolist()
    scaffold_of = [_murcko_scaffold(s) for s in smiles]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not {scaffold_of[i] for i in sets[a]} & {scaffold_of[i] for i in sets[b]}
    ours = scaffold_split(smiles)
    assert all(ours[k].tolist() == sorted(split[k]) for k in split)


def test_scaffold_split_follows_ogb_rule_on_a_toy_set():
    # Benzene scaffold x4, pyridine x2, acyclic ("" scaffold) x3, cyclohexane x1.
    smiles = [
        "Cc1ccccc1",
        "CCc1ccccc1",
        "Oc1ccccc1",
        "Nc1ccccc1",
        "Cc1ccncc1",
        "Oc1ccncc1",
        "CCO",
        "CCN",
        "CCC",
        "CC1CCCCC1",
    ]
    split = scaffold_split(smiles, frac_train=0.7, frac_valid=0.2)
    assert split["train"].tolist() == [0, 1, 2, 3, 6, 7, 8]  # the two largest groups fit
    assert split["valid"].tolist() == [4, 5]
    assert split["test"].tolist() == [9]
    with pytest.raises(ValueError, match="frac_train"):
        scaffold_split(smiles, frac_train=0.9, frac_valid=0.2)


def test_zinc_fixture_targets_split_and_features(zinc):
    with gzip.open(FIXTURES / "zinc-plogp" / "train.csv.gz", "rt") as f:
        pool = [line.strip() for line in f][1:]
    split = zinc.get_idx_split()
    assert [len(split[k]) for k in ("train", "valid", "test")] == [160, 20, 20]
    assert not set(split["train"].tolist()) & set(split["test"].tolist())
    order = [pool[i] for i in stable_rank(pool, "gnnagg-zinc-plogp:")]
    _assert_same_graphs(zinc, order)
    expected = torch.tensor([penalized_logp(s) for s in order], dtype=torch.float32)
    assert torch.allclose(zinc.y.view(-1), expected, atol=1e-5)


def test_zinc_split_sizes_are_options(cache):
    small = fetch("zinc-plogp", root=cache, fixture=True, num_train=10, num_val=5, num_test=5)
    assert len(small) == 20
    with pytest.raises(ValueError, match="num_train"):
        fetch("zinc-plogp", root=cache, fixture=True, num_train=0)
    with pytest.raises(ValueError, match="requested"):
        fetch("zinc-plogp", root=cache, fixture=True, num_train=1000)
    with pytest.raises(TypeError, match="num_train"):
        fetch("zinc-plogp", root=cache, fixture=True, num_train="5")


def test_sa_score_and_logp_match_graphium_reference():
    ref = pd.read_csv(FIXTURES / "zinc-plogp" / "micro_zinc_reference.csv")
    assert len(ref) == 50
    for smiles, sa, logp in zip(ref["SMILES"], ref["SA"], ref["logp"]):
        mol = Chem.MolFromSmiles(smiles)
        assert sa_score(mol) == pytest.approx(sa, abs=1e-6)
        assert Crippen.MolLogP(mol) == pytest.approx(logp, abs=1e-6)


def test_penalized_logp_terms():
    assert ring_penalty(Chem.MolFromSmiles("CCO")) == 0
    assert ring_penalty(Chem.MolFromSmiles("c1ccccc1")) == 0
    assert ring_penalty(Chem.MolFromSmiles("C1CCCCCCC1")) == 2  # eight-membered ring
    mol = Chem.MolFromSmiles("C1CCCCCCC1")
    expected = Crippen.MolLogP(mol) - sa_score(mol) - 2
    assert penalized_logp("C1CCCCCCC1") == pytest.approx(expected)
    with pytest.raises(ValueError, match="cannot parse"):
        penalized_logp("not a smiles")


def test_write_ogb_layout_validates_arguments(tmp_path):
    split = {"train": np.array([0]), "valid": np.array([], dtype=int), "test": np.array([1])}
    with pytest.raises(ValueError, match="labels: expected shape"):
        write_ogb_layout(tmp_path, ["C", "CC"], np.zeros(2), split, "s", ["y"])
    with pytest.raises(ValueError, match="label_names"):
        write_ogb_layout(tmp_path, ["C", "CC"], np.zeros((2, 1)), split, "s", ["a", "b"])
    with pytest.raises(ValueError, match="split: needs keys"):
        write_ogb_layout(tmp_path, ["C", "CC"], np.zeros((2, 1)), {"train": [0]}, "s", ["y"])
    # Names that would escape the folder or shift the CSV columns.
    with pytest.raises(ValueError, match="split_name"):
        write_ogb_layout(tmp_path, ["C", "CC"], np.zeros((2, 1)), split, "../../x", ["y"])
    with pytest.raises(ValueError, match="label_names: 'a,b'"):
        write_ogb_layout(tmp_path, ["C", "CC"], np.zeros((2, 1)), split, "s", ["a,b"])
    with pytest.raises(ValueError, match="smiles"):
        write_ogb_layout(tmp_path, ["C", "C\nC"], np.zeros((2, 1)), split, "s", ["y"])
    assert not (tmp_path / "split").exists()


def test_load_ogb_layout_refuses_names_that_leave_the_root(tmp_path):
    from gnnagg.data.ogb_layout import load_ogb_layout

    with pytest.raises(ValueError, match="name"):
        load_ogb_layout(tmp_path, "../elsewhere", meta={})


def test_scaffold_split_type_checks_fractions():
    with pytest.raises(TypeError, match="frac_train"):
        scaffold_split(["C"], frac_train="0.8")


def test_ogb_folder_without_release_file_is_refused_not_prompted(tmp_path):
    (tmp_path / "ogb" / "ogbg_molhiv" / "raw").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="RELEASE_v1.txt.*delete"):
        fetch("ogbg-molhiv", root=tmp_path)
    with pytest.raises(ValueError, match="not an OGB graph-property data set"):
        fetch("ogbg-nothing", root=tmp_path)
