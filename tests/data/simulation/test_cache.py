"""Files and the cache: atomic writes, hash stamps, rebuilds, the committed fixture."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnagg.data import mesh_simulation
from gnnagg.data.simulation import cache as ms
from gnnagg.data.simulation import load_mesh_simulation, save_mesh_simulation


def _small(**overrides):
    options = dict(
        dim=2, num_nodes=300, num_trajectories=3, num_steps=15, dtype="float64", cache=False
    )
    options.update(overrides)
    return mesh_simulation(**options)

# -------------------------------------------------------------------------------- cache


CACHED = dict(dim=2, num_nodes=300, num_trajectories=3, num_steps=4)


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "mesh_simulation").iterdir())


def test_cache_round_trip_and_no_leftovers(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    key = first.config.key()
    assert _files(tmp_path) == [f"{key}.json", f"{key}.npz"]

    def fail(config):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(ms, "generate_simulation", fail)
    second = mesh_simulation(**CACHED, root=tmp_path)
    assert torch.equal(first.u, second.u) and torch.equal(first.kappa, second.kappa)
    assert np.array_equal(first.mesh.cells, second.mesh.cells)
    assert second.config == first.config
    assert torch.equal(second.edge_index, first.edge_index)


def test_cache_rebuilds_a_file_with_a_flipped_byte(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    path = tmp_path / "mesh_simulation" / f"{first.config.key()}.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    calls = []
    generate = ms.generate_simulation
    monkeypatch.setattr(
        ms, "generate_simulation", lambda config: calls.append(config) or generate(config)
    )
    with pytest.warns(UserWarning, match="sha256"):
        again = mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1
    assert torch.equal(again.u, first.u)
    # The rebuilt file is valid again: a third call loads it without warnings or generation.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1


def test_cache_ignores_a_stamp_for_another_configuration(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    stamp = tmp_path / "mesh_simulation" / f"{first.config.key()}.json"
    stamp.write_text(stamp.read_text().replace('"num_steps": 4', '"num_steps": 5'))
    calls = []
    generate = ms.generate_simulation
    monkeypatch.setattr(
        ms, "generate_simulation", lambda config: calls.append(config) or generate(config)
    )
    mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    sim = _small(num_steps=2)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ms.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_mesh_simulation(sim, tmp_path / "sim.npz")
    assert list(tmp_path.iterdir()) == []


def test_saved_files_load_without_pickle_and_check_their_hash(tmp_path):
    sim = _small(num_steps=2)
    digest = save_mesh_simulation(sim, tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    loaded = load_mesh_simulation(tmp_path / "sim.npz", sha256=digest)
    assert torch.equal(loaded.u, sim.u)
    with pytest.raises(ValueError, match="sha256"):
        load_mesh_simulation(tmp_path / "sim.npz", sha256="0" * 64)


# ------------------------------------------------------------------------------ fixture


def test_fixture_loads_hash_checked_and_matches_the_generator():
    fixture = mesh_simulation(fixture=True)
    assert fixture.num_nodes == 300 and fixture.num_trajectories == 4 and fixture.num_steps == 10
    assert [len(fixture.splits[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    again = mesh_simulation(**ms._FIXTURE_OPTIONS, cache=False)
    assert np.array_equal(fixture.mesh.pos, again.mesh.pos)
    assert np.array_equal(fixture.mesh.cells, again.mesh.cells)
    torch.testing.assert_close(fixture.u, again.u, rtol=1e-6, atol=1e-6)


def test_fixture_write_goes_where_asked(tmp_path):
    # Byte equality with the committed file holds on one machine but not across CPUs (numpy's
    # exp differs in the last bit between SIMD paths), hence the tolerance check above.
    path, digest = ms.write_fixture(tmp_path)
    assert path.is_relative_to(tmp_path) and digest == ms.sha256_file(path)
    assert load_mesh_simulation(path, sha256=digest).config.num_nodes == 300


def test_files_that_are_not_simulations_are_refused(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a mesh simulation"):
        load_mesh_simulation(tmp_path / "other.npz")
    sim = _small(num_steps=2)
    save_mesh_simulation(sim, tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["u"] = arrays["u"][:, :2]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="u has shape"):
        load_mesh_simulation(tmp_path / "cut.npz")


def test_cache_rebuilds_when_the_stamp_matches_but_the_file_is_foreign(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    folder = tmp_path / "mesh_simulation"
    data, stamp = folder / f"{first.config.key()}.npz", folder / f"{first.config.key()}.json"
    np.savez(data, x=np.zeros(3))
    payload = json.loads(stamp.read_text())
    payload["sha256"] = ms.sha256_file(data)
    stamp.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="not a mesh simulation"):
        again = mesh_simulation(**CACHED, root=tmp_path)
    assert torch.equal(again.u, first.u)


def test_varied_geometry_round_trips_through_a_file(tmp_path):
    sim = mesh_simulation(2, 300, 3, 2, geometry="varied", splits=(0.34, 0.33, 0.33), cache=False)
    save_mesh_simulation(sim, tmp_path / "v.npz")
    back = load_mesh_simulation(tmp_path / "v.npz")
    assert back.config == sim.config and back.num_meshes == 3
    assert torch.equal(back.mesh_ids, sim.mesh_ids) and torch.equal(back.u, sim.u)
    for a, b in zip(sim.meshes, back.meshes):
        assert np.array_equal(a.cells, b.cells) and np.array_equal(a.pos, b.pos)
        assert a.centre == b.centre and a.radius == b.radius
        assert a.spacing == b.spacing


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: dict(cells=a["cells"] + 0.5), "cells must hold integer node ids"),
        (lambda a: dict(cells=a["cells"].astype(np.float64)), "cells must hold integer"),
        (lambda a: dict(spacing=np.zeros(3)), "spacing"),
        (lambda a: dict(spacing=np.array(["wide"])), "spacing"),
        (lambda a: dict(spacing=np.array([np.nan])), "spacing"),
        (lambda a: dict(pos=a["pos"].astype(np.int64)), "pos has dtype int64"),
        (lambda a: dict(u=a["u"].astype(np.float32)), "u has dtype float32"),
        (lambda a: dict(cells=a["cells"] - 1), "cells do not index"),
    ],
)
def test_forged_arrays_are_refused_by_name(tmp_path, change, match):
    sim = _small(num_steps=2)
    save_mesh_simulation(sim, tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp_path / "forged.npz", **(arrays | change(arrays)))
    with pytest.raises(ValueError, match=match):
        load_mesh_simulation(tmp_path / "forged.npz")


@pytest.mark.parametrize("stamp_text", ["[1, 2]", '"text"', "3", "null"])
def test_a_stamp_that_is_not_an_object_is_rebuilt(tmp_path, monkeypatch, stamp_text):
    first = mesh_simulation(**CACHED, root=tmp_path)
    stamp = tmp_path / "mesh_simulation" / f"{first.config.key()}.json"
    stamp.write_text(stamp_text)
    with pytest.warns(UserWarning, match="not a stamp"):
        again = mesh_simulation(**CACHED, root=tmp_path)
    assert torch.equal(again.u, first.u)
    assert isinstance(json.loads(stamp.read_text()), dict)


def test_a_link_planted_at_the_cache_files_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    sim = _small(num_steps=2)
    (tmp_path / "sim.npz").symlink_to(outside)
    save_mesh_simulation(sim, tmp_path / "sim.npz")
    assert outside.read_bytes() == b"keep" and not (tmp_path / "sim.npz").is_symlink()
    config = ms.MeshSimulationConfig(**CACHED)
    folder = tmp_path / "root" / "mesh_simulation"
    folder.mkdir(parents=True)
    for suffix in (".npz", ".json"):
        (folder / f"{config.key()}{suffix}").symlink_to(outside)
    mesh_simulation(**CACHED, root=tmp_path / "root")
    assert outside.read_bytes() == b"keep"


def test_a_fifo_planted_as_the_stamp_is_never_read(tmp_path):
    import os

    config = ms.MeshSimulationConfig(**CACHED)
    folder = tmp_path / "mesh_simulation"
    folder.mkdir()
    os.mkfifo(folder / f"{config.key()}.json")  # a read would block for ever
    sim = mesh_simulation(**CACHED, root=tmp_path)
    assert sim.config == config and (folder / f"{config.key()}.json").is_file()
