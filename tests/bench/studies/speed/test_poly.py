"""The poly speed part's data and naive baseline (the timed run itself is not part of the
tests), and a smoke-sized run."""

import networkx as nx
import torch
from torch_geometric.utils import to_networkx

from gnnagg.bench.studies.speed import poly as bench_poly
from gnnagg.poly import AddEquivariantPolynomials


def test_molecule_batch_is_molecule_sized():
    batch = bench_poly.molecule_batch(40, seed=1)
    sizes = torch.diff(batch.ptr).double()
    assert 21 <= sizes.mean() <= 25
    assert 22 <= batch.num_edges / 2 / batch.num_graphs <= 27
    for data in batch.to_data_list()[:10]:
        graph = to_networkx(data, to_undirected=True)
        assert nx.is_connected(graph)
        assert max(d for _, d in graph.degree()) <= 4


def test_naive_baseline_agrees_with_the_transform():
    batch = bench_poly.molecule_batch(5, seed=2)
    transform = AddEquivariantPolynomials(4, dtype=torch.float64)
    ours = transform(batch)
    padded = int(torch.diff(batch.ptr).max())
    naive, seconds = bench_poly.naive_dense(transform.basis, batch, 3, padded)
    assert seconds > 0
    rows = {0: 3, 1: int(batch.ptr[3]), 2: int((batch.batch[batch.edge_index[0]] < 3).sum())}
    for order, name in bench_poly.ATTRIBUTES.items():
        torch.testing.assert_close(naive[order], ours[name][: rows[order]])


def test_left_to_right_width():
    assert bench_poly._left_to_right_width("ij,ja,ai->ij") == 3
    assert bench_poly._left_to_right_width("ia,jb,ac,bc->ij") == 4
    assert bench_poly._left_to_right_width("ab,bc,ca->") == 2


def test_smoke_run_agrees_with_the_naive_baseline_and_formats():
    result = bench_poly.run(size="smoke")
    assert result["size"] == "smoke" and result["machine"]["torch_threads"] >= 1
    for row in result["molecules"]:
        assert row["max_abs_diff_naive_vs_ours"] < 1e-6
        assert row["max_abs_diff_dense_vs_sparse"] < 1e-6
    assert "bench_poly (smoke;" in bench_poly.format_table(result)
