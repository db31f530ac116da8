"""Where dense attention stops paying: forward + backward CPU time of ``graph_attention`` with
the dense and the sparse backend, for masks of ``k`` random keys per row at several sizes.

It chose ``AUTO_DENSE_FILL`` (``gnnagg/attention/ops.py``): the fill (``nnz / R²``) above which
``backend="auto"`` takes the dense backend for small masks.

    OMP_NUM_THREADS=1 python experiments/attention_dense_crossover.py [--repeats 20]

Prints one line per (rows, keys per row): the fill, the milliseconds of each backend and the
dense / sparse ratio; then one JSON line with the settings and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from gnnagg.attention import adjacency
from gnnagg.attention.ops import graph_attention

HEADS, CHANNELS = 4, 8


def random_mask(rows: int, per_row: int):
    """An adjacency mask with ``per_row`` distinct random keys per row (seeded)."""
    generator = torch.Generator().manual_seed(0)
    cols = torch.stack([torch.randperm(rows, generator=generator)[:per_row] for _ in range(rows)])
    edge_index = torch.stack([torch.arange(rows).repeat_interleave(per_row), cols.reshape(-1)])
    return adjacency().build(edge_index, num_nodes=rows)


def time_backend(mask, backend: str, repeats: int) -> float:
    """Mean CPU-ms of one forward + backward (after 3 warm-up calls)."""
    q, k, v = (torch.randn(mask.num_rows, HEADS, CHANNELS, requires_grad=True) for _ in range(3))
    for _ in range(3):
        graph_attention(q, k, v, mask, backend=backend).sum().backward()
    start = time.process_time()
    for _ in range(repeats):
        graph_attention(q, k, v, mask, backend=backend).sum().backward()
    return (time.process_time() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows_out = []
    for rows in (128, 300, 512):
        for per_row in (6, 16, 32, 64, 128, 256):
            if per_row > rows:
                continue
            mask = random_mask(rows, per_row)
            dense, sparse = (time_backend(mask, b, args.repeats) for b in ("dense", "sparse"))
            fill = mask.nnz / mask.num_rows**2
            rows_out.append({"rows": rows, "keys_per_row": per_row, "fill": fill,
                             "dense_ms": dense, "sparse_ms": sparse})  # fmt: skip
            print(
                f"{rows:4d} rows, {per_row:3d} keys/row, fill {fill:.3f}: dense {dense:6.2f} ms,"
                f" sparse {sparse:6.2f} ms, dense/sparse {dense / sparse:.2f}",
                flush=True,
            )
    print(json.dumps({"heads": HEADS, "channels": CHANNELS, "repeats": args.repeats,
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "load_average": os.getloadavg(), "rows": rows_out}))  # fmt: skip


if __name__ == "__main__":
    main()
