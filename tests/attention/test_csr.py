"""Sorted CSR patterns: union and intersection by merge, row permutation and ranges, against
Python sets."""

import pytest
import torch

from gnnagg.attention import csr


def random_pattern(generator, num_rows, num_cols, density, dtype=torch.int32):
    dense = torch.rand(num_rows, num_cols, generator=generator) < density
    rows, cols = dense.nonzero(as_tuple=True)
    return csr.csr_from_sorted_pairs(rows, cols.to(dtype), num_rows)


def as_sets(pattern):
    rowptr, col = pattern
    return [set(col[rowptr[r] : rowptr[r + 1]].tolist()) for r in range(rowptr.numel() - 1)]


def check_sorted(pattern):
    rowptr, col = pattern
    assert rowptr[0] == 0 and rowptr[-1] == col.numel()
    for r in range(rowptr.numel() - 1):
        row = col[rowptr[r] : rowptr[r + 1]]
        assert bool((row[1:] > row[:-1]).all())


@pytest.fixture(params=["torch", "scipy"])
def engine(request, monkeypatch):
    """The torch merge (as on a GPU or without scipy) or scipy's compiled one."""
    if request.param == "torch":
        monkeypatch.setattr(csr, "_scipy_sparse", lambda a, b: None)
    else:
        pytest.importorskip("scipy")
    return request.param


@pytest.mark.parametrize("chunk", [1, 7, 1 << 22])
@pytest.mark.parametrize("densities", [(0.3, 0.05), (0.05, 0.3), (0.0, 0.2), (0.2, 0.0),
                                       (0.5, 0.5), (1.0, 0.1)])
def test_union_and_intersection_are_the_row_sets(monkeypatch, engine, chunk, densities):
    monkeypatch.setattr(csr, "_CHUNK", chunk)
    generator = torch.Generator().manual_seed(chunk + int(100 * sum(densities)))
    a = random_pattern(generator, 23, 40, densities[0])
    b = random_pattern(generator, 23, 40, densities[1])
    b = (b[0], b[1].to(torch.int64))
    union = csr.csr_union(a, b)
    check_sorted(union)
    assert union[1].dtype == torch.int64
    assert as_sets(union) == [x | y for x, y in zip(as_sets(a), as_sets(b))]
    both = csr.csr_intersection(a, b)
    check_sorted(both)
    assert as_sets(both) == [x & y for x, y in zip(as_sets(a), as_sets(b))]
    narrow = csr.csr_union(a, a, torch.int32)
    assert narrow[1].dtype == torch.int32 and torch.equal(narrow[1], a[1])


def test_union_of_empty_patterns(engine):
    empty = (torch.zeros(1, dtype=torch.int64), torch.zeros(0, dtype=torch.int32))
    assert csr.csr_union(empty, empty)[1].numel() == 0
    none = (torch.zeros(4, dtype=torch.int64), torch.zeros(0, dtype=torch.int32))
    some = csr.csr_from_sorted_pairs(torch.tensor([0, 2]), torch.tensor([1, 0]), 3)
    assert as_sets(csr.csr_union(none, some)) == [{1}, set(), {0}]
    assert as_sets(csr.csr_intersection(none, some)) == [set(), set(), set()]


def test_permute_rows_and_ranges():
    generator = torch.Generator().manual_seed(3)
    pattern = random_pattern(generator, 11, 9, 0.4)
    order = torch.randperm(11, generator=generator)
    moved = csr.permute_rows(*pattern, order)
    assert as_sets(moved) == [as_sets(pattern)[int(r)] for r in order]
    starts, lengths = torch.tensor([5, 0, 2, 9]), torch.tensor([2, 0, 3, 1])
    assert csr.ranges(starts, lengths).tolist() == [5, 6, 2, 3, 4, 9]


def test_index_dtype():
    assert csr.index_dtype(2**31 - 1) == torch.int32
    assert csr.index_dtype(2**31) == torch.int64
