"""The benchmark scripts stay runnable: ``benchmarks/field_scale.py --quick`` end to end.

No timing assertions (figures depend on the machine); the test checks that every phase runs, that
the synthetic inputs are what the script says (buildings, zones, the 24-branch layout reduced to
the quick mode's branches) and that the warm run (tables from the store) gives the cold run's
results bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hra.inputs import modeldata as md

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_field_scale_quick(tmp_path):
    model_dir = md.model_dir_or_skip()
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "field_scale.py"), "--quick", "--model-dir",
                           str(model_dir), "--workdir", str(tmp_path / "work"), "--json", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(out.read_text())
    ph = {r["phase"]: r for r in res["phases"]}
    assert set(ph) == {"read", "cold", "warm"}
    assert ph["read"]["buildings"] == 200 and ph["read"]["zones_found"] == 1
    assert ph["cold"]["buildings"] == 200 and ph["cold"]["zones"] == 1
    assert ph["cold"]["digest"] == ph["warm"]["digest"]  # tables from the store: the same results
    assert 0.0 < ph["cold"]["mean_lpr"] <= ph["cold"]["max_lpr"] < 1e-3 and math.isfinite(ph["cold"]["max_lpr"])
    assert res["inputs"]["forecast"]["branches"] == 4  # 2 rate x 2 magnitude models x the quick mode's 1 Mmax
    assert "warm results identical to cold: yes" in proc.stdout
    assert "extrapolation to 250,000 buildings x 160 zones" in proc.stdout
    for phase in ("cold", "warm"):  # both runs extrapolated, from the engine's stage CPU seconds and from wall seconds
        assert ph[phase]["tables_cpu_s"] > 0 and ph[phase]["buildings_cpu_s"] > 0
        # the chunks' own thread time (the engine's) is part of the building pass's process CPU (the rest after prepare)
        # (the quick case's 200 buildings: a few ms; positivity is tested against a known cost in test_zone_groups)
        assert 0 <= ph[phase]["chunks_cpu_s"] <= ph[phase]["buildings_cpu_s"] + 0.1
        assert f"{phase} from CPU seconds" in proc.stdout and f"{phase} from wall seconds" in proc.stdout
    head = (tmp_path / "work" / "edb.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert head.startswith("bag_building_id,point_x,point_y,") and "s_probability_10" in head
