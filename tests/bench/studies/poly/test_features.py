"""The polynomial-feature cache: a second call reads the cache; a flipped byte, a forged
record, a pickled object or a symbolic link is never trusted (the features are recomputed and
the file replaced, nothing outside the cache folder is touched); the key depends on the graphs
and the settings."""

import json
import pickle

import pytest
import torch
from torch_geometric.data import Data

from gnnagg.bench.studies.poly.features import feature_key, polynomial_features


def _graphs():
    # A triangle with a pendant node, a 4-cycle and a path: different counts per pattern.
    edges = [
        [(0, 1), (1, 2), (2, 0), (2, 3)],
        [(0, 1), (1, 2), (2, 3), (3, 0)],
        [(0, 1), (1, 2)],
    ]
    out = []
    for pairs in edges:
        index = torch.tensor(pairs).t()
        index = torch.cat([index, index.flip(0)], dim=1)
        out.append(Data(edge_index=index, num_nodes=int(index.max()) + 1))
    return out


def _features(cache, graphs=None, **changes):
    settings = {"max_degree": 3, "subset": "all", "normalize": "log1p", "cache_dir": cache}
    settings.update(changes)
    return polynomial_features(_graphs() if graphs is None else graphs, **settings)


def _files(cache):
    (data,) = cache.glob("*.pt")
    (record,) = cache.glob("*.json")
    return data, record


def test_second_call_reads_the_cache(tmp_path):
    first, info = _features(tmp_path)
    again, cached = _features(tmp_path)
    assert not info["cached"] and cached["cached"]
    assert cached["time_s"] == info["time_s"] and cached["key"] == info["key"]
    assert cached["cpu_s"] == info["cpu_s"] >= 0
    for key in ("graph", "node", "edge"):
        assert torch.equal(first[key], again[key]) and first[key].dtype == torch.float32
    assert first["graph"].shape[0] == 3
    assert first["node"].shape[0] == 4 + 4 + 3
    assert first["edge"].shape[0] == 8 + 8 + 4
    assert cached["names"] == info["names"]
    assert len(info["names"]["edge"]) == first["edge"].shape[1] > 0


def test_a_flipped_byte_is_recomputed_and_rewritten(tmp_path):
    first, _ = _features(tmp_path)
    data, record = _files(tmp_path)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    again, info = _features(tmp_path)
    assert not info["cached"]
    for key in first:
        assert torch.equal(first[key], again[key])
    # The file was rewritten and is trusted again.
    assert _features(tmp_path)[1]["cached"]


def test_a_forged_record_is_not_trusted(tmp_path):
    _features(tmp_path)
    _, record = _files(tmp_path)
    content = json.loads(record.read_text())
    content["sha256"] = "0" * 64
    record.write_text(json.dumps(content))
    assert not _features(tmp_path)[1]["cached"]
    record.write_text("{not json")
    assert not _features(tmp_path)[1]["cached"]


class _Payload:
    """Unpickling this would run code; ``weights_only=True`` must refuse it."""

    ran = False

    def __reduce__(self):
        return (_mark, ())


def _mark():
    _Payload.ran = True
    return {}


def test_a_pickled_object_with_a_matching_record_is_refused(tmp_path):
    import hashlib

    _features(tmp_path)
    data, record = _files(tmp_path)
    data.write_bytes(pickle.dumps(_Payload()))
    content = json.loads(record.read_text())
    content["sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    record.write_text(json.dumps(content))
    _, info = _features(tmp_path)
    assert not info["cached"] and not _Payload.ran


def test_wrong_shapes_are_recomputed(tmp_path):
    import hashlib

    first, _ = _features(tmp_path)
    data, record = _files(tmp_path)
    torch.save({k: v[:1] for k, v in first.items()}, data)
    content = json.loads(record.read_text())
    content["sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    record.write_text(json.dumps(content))
    again, info = _features(tmp_path)
    assert not info["cached"] and torch.equal(again["edge"], first["edge"])


def test_a_symbolic_link_is_replaced_not_followed(tmp_path):
    cache, outside = tmp_path / "cache", tmp_path / "outside.pt"
    _features(cache)
    data, _ = _files(cache)
    outside.write_bytes(data.read_bytes())
    before = outside.read_bytes()
    data.unlink()
    data.symlink_to(outside)
    _, info = _features(cache)
    assert not info["cached"]
    assert not data.is_symlink() and outside.read_bytes() == before


def test_the_key_depends_on_graphs_order_and_settings():
    graphs = _graphs()
    key = feature_key(graphs, 3, "all", "log1p")
    assert feature_key(graphs[::-1], 3, "all", "log1p") != key
    assert feature_key(graphs, 4, "all", "log1p") != key
    assert feature_key(graphs, 3, "beyond-2fwl", "log1p") != key
    assert feature_key(graphs, 3, "all", "density") != key
    assert feature_key(_graphs(), 3, "all", "log1p") == key


def test_without_cache_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tensors, info = _features(None)
    assert not info["cached"] and tensors["edge"].shape[0] == 20
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("subset", ["beyond-2fwl", "all"])
def test_features_match_the_transform(subset, tmp_path):
    from torch_geometric.data import Batch

    from gnnagg.poly import AddEquivariantPolynomials

    graphs = _graphs()
    tensors, _ = _features(tmp_path, graphs=graphs, subset=subset, max_degree=5)
    batch = AddEquivariantPolynomials(5, (0, 1, 2), subset=subset, normalize="log1p")(
        Batch.from_data_list(graphs)
    )
    assert torch.equal(tensors["edge"], batch.poly_edge_attr.float())
    assert torch.equal(tensors["node"], batch.poly_x.float())
    assert torch.equal(tensors["graph"], batch.poly_graph.float())


def test_a_fifo_planted_as_the_record_is_never_read(tmp_path):
    import os

    first, info = _features(tmp_path)
    _, record = _files(tmp_path)
    record.unlink()
    os.mkfifo(record)  # a read would block for ever
    again, info = _features(tmp_path)
    assert not info["cached"] and record.is_file()
