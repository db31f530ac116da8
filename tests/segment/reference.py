"""A float64 Python-loop reference for every segment reduction."""

import torch


def reference_segment(src, index, dim_size, dim, reduce):
    x = src.double().movedim(dim, 0)
    out = torch.zeros((dim_size, *x.shape[1:]), dtype=torch.float64)
    for group in range(dim_size):
        rows = x[index == group]
        if rows.shape[0] == 0:
            # The empty product is 1, as in PyG and torch_scatter; every other reduction gives 0.
            out[group] = 1.0 if reduce == "mul" else 0.0
            continue
        if reduce == "sum":
            out[group] = rows.sum(0)
        elif reduce == "mean":
            out[group] = rows.mean(0)
        elif reduce == "max":
            out[group] = rows.amax(0)
        elif reduce == "min":
            out[group] = rows.amin(0)
        elif reduce == "mul":
            out[group] = rows.prod(0)
        elif reduce == "var":
            out[group] = rows.var(0, unbiased=False)
        elif reduce == "std":
            out[group] = rows.var(0, unbiased=False).sqrt()
        elif reduce == "logsumexp":
            out[group] = torch.logsumexp(rows, 0)
        else:
            raise AssertionError(reduce)
    return out.movedim(0, dim)


def reference_softmax(src, index, dim):
    x = src.double().movedim(dim, 0)
    out = torch.zeros_like(x)
    for group in index.unique().tolist():
        mask = index == group
        out[mask] = torch.softmax(x[mask], 0)
    return out.movedim(0, dim)
