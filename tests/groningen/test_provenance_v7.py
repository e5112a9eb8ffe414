"""The V7 chain hashes every model table it reads, the zonation included (issue 15 item 5)."""

from __future__ import annotations

import hashlib

import pandas as pd

import hra
from hra.chain import prepare


def test_v7_hashes_gmm_fcm_tables_and_zonation(tmp_path, model_dir, zonation_zip):
    cfg = hra.demo_config(n_buildings=5, directory=tmp_path, realisations=4, model="groningen-v7", model_dir=model_dir)
    b = pd.read_csv(tmp_path / "buildings.csv")
    b.drop(columns=[c for c in ("zone",) if c in b.columns]).to_csv(tmp_path / "buildings.csv", index=False)
    files = prepare(cfg).files
    gmm = {k[4:]: v for k, v in files.items() if k.startswith("gmm:")}
    fcm = {k[4:]: v for k, v in files.items() if k.startswith("fcm:")}
    assert len(gmm) >= 4 and len(fcm) >= 6
    for rel, digest in list(gmm.items()) + list(fcm.items()):
        assert hashlib.sha256((model_dir / rel).read_bytes()).hexdigest() == digest, rel
    assert files[f"zonation:{zonation_zip.name}"] == hashlib.sha256(zonation_zip.read_bytes()).hexdigest()
