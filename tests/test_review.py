"""Reviewing runs (issue 15 items 2-4): compare two runs, the HTML report, GIS export, `hra info`.

The two runs are small parametric cases: NEW multiplies every source rate by K, moves one
building, retypes one, removes one and adds one. LPR is linear in the rate, so every value of
NEW is known from OLD by hand (K x OLD for unchanged buildings), and so are the categories and
the attribution of their changes.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hra
from hra.cli.main import app
from hra.review.tables import risk_category
from tests.helpers import make_config

NORM = 1e-5
CURVES = {"URM": ((0.1, 0.2, 0.4), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.5, 1.0, 2.0), 0.5, (0.005, 0.05, 0.2))}
CELL = (250_000.0, 590_000.0)
FRAG_BRANCHES = [("weak", 0.3, 0.6), ("central", 0.4, 1.0), ("strong", 0.3, 1.6)]


def buildings_old():
    b = [dict(id=f"B{i}", x=CELL[0] + d * 1000, y=CELL[1], typology="URM", municipality="Groningen" if i % 2 else "Loppersum")
         for i, d in enumerate((2, 4, 6, 8, 10, 12, 16, 20), start=1)]
    b[3]["typology"] = "RC"
    return b


def _case(tmp: Path, rate: float, bld: list[dict], out: str):
    return make_config(tmp, cells=[(*CELL, rate)], curves=CURVES, buildings=bld, years=tuple(range(2025, 2032)),
                       frag_branches=FRAG_BRANCHES, output={"path": str(tmp / out)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    old = hra.run(_case(base / "old", 0.05, buildings_old(), "old.zarr"), progress=False)
    m_old = old["lpr_mean"].values[:, 0]
    # K puts B3 (mean below the norm) just above it in NEW
    k = 1.5 * NORM / m_old[2]
    assert m_old[2] < NORM
    new_b = buildings_old()
    new_b[1]["x"] += 700.0                      # B2 moved
    new_b[3]["typology"] = "URM"                # B4 retyped (weaker): neither -> P90 above the norm
    del new_b[4]                                # B5 removed
    new_b.append(dict(id="B9", x=CELL[0] + 5000, y=CELL[1] + 5000, typology="URM", municipality="Groningen"))  # added
    new = hra.run(_case(base / "new", 0.05 * k, new_b, "new.zarr"), progress=False)
    return dict(base=base, old=old, new=new, k=k, old_path=base / "old" / "old.zarr", new_path=base / "new" / "new.zarr")


def test_compare_classification_and_attribution(runs):
    old, new, k = runs["old"], runs["new"], runs["k"]
    cmp = hra.compare(runs["old_path"], runs["new_path"])
    b = cmp.buildings.set_index("building_id")
    assert b.loc["B9", "status"] == "added" and b.loc["B5", "status"] == "removed"
    assert b.loc["B2", "moved"] and b.loc["B2", "moved_m"] == pytest.approx(700.0)
    assert b.loc["B4", "retyped"] and not b.loc["B3", "retyped"] and not b.loc["B3", "moved"]
    s = cmp.summary
    assert (s["added"], s["removed"], s["moved"], s["retyped"]) == (1, 1, 1, 1)
    # unchanged buildings: NEW = K x OLD (linear in the rate)
    for i in ("B1", "B3", "B6", "B7", "B8"):
        for y in (2025, 2026):
            mo = float(old["lpr_mean"].sel(building=i, year=y))
            assert b.loc[i, f"lpr_mean_new_{y}"] == pytest.approx(k * mo, rel=1e-9)
            assert b.loc[i, f"d_lpr_mean_{y}"] == pytest.approx((k - 1) * mo, rel=1e-9)
            po = float(old["lpr_p90"].sel(building=i, year=y))
            assert b.loc[i, f"d_lpr_p90_{y}"] == pytest.approx((k - 1) * po, rel=1e-9)
    # categories by hand from the OLD values
    both = [i for i in b.index if b.loc[i, "status"] == "both"]
    for i in both:
        mo = old["lpr_mean"].sel(building=i).values.max()
        po = old["lpr_p90"].sel(building=i).values.max()
        mn = new["lpr_mean"].sel(building=i).values.max()
        pn = new["lpr_p90"].sel(building=i).values.max()
        co, cn = risk_category(np.array([mo]), np.array([po]), NORM)[0], risk_category(np.array([mn]), np.array([pn]), NORM)[0]
        assert b.loc[i, "category_old"] == co and b.loc[i, "category_new"] == cn
    assert b.loc["B3", "category_old"] != "mean" and b.loc["B3", "category_new"] == "mean"
    changed = set(b.index[b["category_change"] != ""])
    assert "B3" in changed and not changed & {"B5", "B9"}
    # attribution of B3: only the source changed -> the source effect is the whole change, reverting it reverts
    y = int(b.loc["B3", "attr_year"])
    mo = float(old["lpr_mean"].sel(building="B3", year=y))
    assert b.loc["B3", "attr_statistic"] == "lpr_mean"
    assert b.loc["B3", "attr_source"] == pytest.approx((k - 1) * mo, rel=1e-9)
    assert b.loc["B3", "attr_models"] == 0.0 and b.loc["B3", "attr_exposure"] == pytest.approx(0.0, abs=1e-20)
    assert b.loc["B3", "attr_residual"] == pytest.approx(0.0, abs=1e-9 * mo)
    assert b.loc["B3", "attr_main"] == "source" and b.loc["B3", "attr_reverts"] == "source"
    # B4 (retyped to URM and rates x K): exposure effect = NEW - K x OLD, source effect = NEW - NEW / K
    assert b.loc["B4", "category_change"] == "neither -> p90_only"
    y = int(b.loc["B4", "attr_year"])
    st = b.loc["B4", "attr_statistic"]
    vn, vo = float(new[st].sel(building="B4", year=y)), float(old[st].sel(building="B4", year=y))
    assert b.loc["B4", "attr_exposure"] == pytest.approx(vn - k * vo, rel=1e-9)
    assert b.loc["B4", "attr_source"] == pytest.approx(vn - vn / k, rel=1e-9)
    assert st == "lpr_p90" and b.loc["B4", "attr_main"] == "exposure" and b.loc["B4", "attr_models"] == 0.0
    assert b.loc["B4", "attr_reverts"] == "source exposure"  # either swap alone keeps the P90 below the norm


def test_compare_cli_and_csv(runs, tmp_path):
    out = tmp_path / "cmp.csv"
    r = CliRunner().invoke(app, ["compare", str(runs["old_path"]), str(runs["new_path"]), "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "risk category changed" in r.output
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 9 and set(df["building_id"]) == {f"B{i}" for i in range(1, 10)}
    assert {"d_lpr_mean_2025", "d_lpr_p90_2026", "category_change", "attr_source", "profile_change"} <= set(df.columns)
    bad = CliRunner().invoke(app, ["compare", str(runs["old_path"]), str(tmp_path / "missing.zarr")])
    assert bad.exit_code == 2 and "does not exist" in bad.output and "Traceback" not in bad.output


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.refs = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if a.get(k):
                self.refs.append(a[k])


def test_report_is_self_contained(runs, tmp_path):
    out = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["report", str(runs["new_path"]), "-o", str(out), "--compare", str(runs["old_path"])])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    p = _Html()
    p.feed(text)
    assert {"provenance", "categories", "profiles", "maps", "distribution", "top", "comparison"} <= p.ids
    assert len(p.imgs) == 3
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert w >= 300 and h >= 200
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
    assert not [u for u in p.refs if u.startswith(("http:", "https:", "//"))]
    # provenance: the model tables and their hashes, the config, seed
    prov = json.loads(runs["new"].attrs["provenance"])
    for digest in prov["input_sha256"].values():
        assert digest in text
    assert "[source]" in text and prov["config_sha256"] in text
    # top buildings: the highest mean first, with its values
    top = str(runs["new"]["building_id"].values[int(np.argmax(runs["new"]["lpr_mean"].values[:, 0]))])
    assert text.index(f"<td>{top}</td>") < text.index("<td>B8</td>")
    # exists already: refused without --overwrite
    again = CliRunner().invoke(app, ["report", str(runs["new_path"]), "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_report_uses_explain_when_available(runs, tmp_path, monkeypatch):
    calls = []

    def fake_explain(run, ids, year=None):
        calls.append((list(ids), year))
        return [{"building": i, "year": year, "lpr_mean": 2.0,
                 "splits": {"magnitude": [{"label": "M3.5", "lpr": 1.5}, {"label": "M2.5", "lpr": 0.5}]}} for i in ids]

    import hra.review.explain as explain_mod

    monkeypatch.setattr(explain_mod, "explain", fake_explain)
    from hra.review.report import write_report

    write_report(runs["new_path"], tmp_path / "r.html", top=4, explain_top=3)
    text = (tmp_path / "r.html").read_text()
    assert len(calls) == 1 and len(calls[0][0]) == 3  # one call, the chain prepared once, 3 of the 4 top buildings
    assert text.count("magnitude: M3.5 (75%)") == 3


def test_gis_export_reads_back(runs, tmp_path):
    import pyogrio
    from pyogrio.raw import read

    new = runs["new"]
    path = tmp_path / "risk.gpkg"
    r = CliRunner().invoke(app, ["export", str(runs["new_path"]), "--gpkg", str(path)])
    assert r.exit_code == 0, r.output
    info = pyogrio.read_info(path)
    assert info["crs"] == "EPSG:28992" and info["features"] == new.sizes["building"] and info["geometry_type"] == "Point"
    meta, _, geom, fields = read(path)
    cols = dict(zip(meta["fields"], fields))
    for c in ("building_id", "municipality", "category", "profile", "lpr_mean_2025", "lpr_p50_2026", "lpr_p90_2025"):
        assert c in cols
    import shapely

    pts = shapely.from_wkb(geom)
    for j, bid in enumerate(cols["building_id"]):
        one = new.sel(building=bid)
        assert shapely.get_x(pts[j]) == pytest.approx(float(one["x_rd"])) and shapely.get_y(pts[j]) == pytest.approx(float(one["y_rd"]))
        for s in ("lpr_mean", "lpr_p50", "lpr_p90"):
            assert cols[f"{s}_2026"][j] == float(one[s].sel(year=2026))
        m, p = one["lpr_mean"].values.max(), one["lpr_p90"].values.max()
        assert cols["category"][j] == ("mean" if m > NORM else "p90_only" if p > NORM else "neither")
        assert cols["municipality"][j] == str(one["municipality"].values)
    assert set(cols["profile"]) <= {"verhoogd", "langjarig_licht_verhoogd", "licht_verhoogd", "normaal"}


def test_gis_from_output_section_and_errors(runs, tmp_path):
    import importlib.util

    import pyogrio

    cfg = _case(tmp_path, 0.05, buildings_old()[:3], "r.zarr").with_updates(output={"gpkg": str(tmp_path / "r.gpkg")})
    hra.run(cfg, progress=False)
    assert pyogrio.read_info(tmp_path / "r.gpkg")["features"] == 3
    from pydantic import ValidationError

    with pytest.raises((ValueError, ValidationError), match="gpkg"):
        cfg.with_updates(output={"gpkg": "risk.shp"})
    if importlib.util.find_spec("pyarrow") is None:
        r = CliRunner().invoke(app, ["export", str(runs["new_path"]), "--geoparquet", str(tmp_path / "x.parquet")])
        assert r.exit_code == 2 and "pyarrow" in r.output and not (tmp_path / "x.parquet").exists()
    r = CliRunner().invoke(app, ["export", str(runs["new_path"])])
    assert r.exit_code == 2


def test_info_prints_provenance(runs):
    r = CliRunner().invoke(app, ["info", str(runs["new_path"])])
    assert r.exit_code == 0, r.output
    prov = json.loads(runs["new"].attrs["provenance"])
    flat = re.sub(r"\s+|│|┃", "", r.output)
    assert prov["config_sha256"] in flat and "rates.csv" in r.output and "numpy" in r.output and "[source]" in r.output
    j = CliRunner().invoke(app, ["info", str(runs["new_path"]), "--json"])
    assert json.loads(j.output)["config_sha256"] == prov["config_sha256"]


def test_compare_attributes_a_model_change(tmp_path):
    """NEW changes only the GMM (c0 + 0.4): the models swap carries the whole change of B1."""
    from tests.helpers import PARAMETRIC

    bld = buildings_old()[:3]
    kw = dict(curves=CURVES, buildings=bld, years=(2025,), frag_branches=FRAG_BRANCHES)
    old = hra.run(make_config(tmp_path / "o", cells=[(*CELL, 0.02)], output={"path": str(tmp_path / "o.zarr")}, **kw), progress=False)
    assert old["lpr_mean"].sel(building="B2").item() < NORM
    new = hra.run(make_config(tmp_path / "n", cells=[(*CELL, 0.02)], output={"path": str(tmp_path / "n.zarr")},
                              gm=dict(PARAMETRIC, c0=PARAMETRIC["c0"] + 0.6), **kw), progress=False)
    cmp = hra.compare(tmp_path / "o.zarr", tmp_path / "n.zarr")
    b = cmp.buildings.set_index("building_id")
    changed = b.index[b["category_change"] != ""]
    assert len(changed) >= 1
    for i in changed:
        st = b.loc[i, "attr_statistic"]
        total = float(new[st].sel(building=i, year=2025)) - float(old[st].sel(building=i, year=2025))
        assert b.loc[i, "attr_models"] == pytest.approx(total, rel=1e-9)
        assert b.loc[i, "attr_source"] == pytest.approx(0.0, abs=1e-12 * abs(total))
        assert b.loc[i, "attr_exposure"] == pytest.approx(0.0, abs=1e-12 * abs(total))
        assert b.loc[i, "attr_main"] == "models" and b.loc[i, "attr_reverts"] == "models"
