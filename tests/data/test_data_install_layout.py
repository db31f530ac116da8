"""A regular install finds the manifest under <prefix>/share/gnnagg/datasets."""

import sys

import pytest

from gnnagg.data import download


def test_datasets_dir_falls_back_to_the_install_prefix(tmp_path, monkeypatch):
    installed = tmp_path / "share" / "gnnagg" / "datasets"
    installed.mkdir(parents=True)
    (installed / "manifest.json").write_text("{}")
    monkeypatch.delenv("GNNAGG_DATASETS_DIR", raising=False)
    monkeypatch.setattr(download, "__file__", str(tmp_path / "site" / "gnnagg" / "data" / "x.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert download.datasets_dir() == installed


def test_datasets_dir_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("GNNAGG_DATASETS_DIR", raising=False)
    monkeypatch.setattr(download, "__file__", str(tmp_path / "site" / "gnnagg" / "data" / "x.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty"))
    with pytest.raises(download.FetchError, match="share/gnnagg/datasets"):
        download.datasets_dir()
