"""Model-data handling: the SHA-256 registry, directory checks, table checks, fetch set-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hra.inputs import modeldata as md


def test_registry_matches_the_model_dir(model_dir):
    assert md.check_model_dir(model_dir, md.VERSIONS) == []


def test_registry_covers_versions_and_dependencies():
    files = md.expected_files(["TNO2020"])
    assert "TNO2020/conversie_v3.yaml" in files
    assert any(f.startswith("V6/Fragility") for f in files) and any(f.startswith("V7/Fatality") for f in files)
    for rel, sha in files.items():
        assert len(sha) == 64 and int(sha, 16) >= 0, rel
    with pytest.raises(md.ModelDataError, match="unknown model version"):
        md.expected_files(["V9"])


def test_missing_and_altered_files_are_reported(tmp_path):
    (tmp_path / "V7").mkdir()
    rel, sha = md.MODEL_FILES["V7"]["gmm_sigma"]
    (tmp_path / rel).write_text("periods,tau_level1\n0.01,0.2\n")
    problems = md.check_model_dir(tmp_path, ["V7"], strict=False)
    assert len(problems) == len(md.MODEL_FILES["V7"])
    altered = [p for p in problems if "gmpe_sigmas" in p]
    assert len(altered) == 1
    assert sha in altered[0] and md.sha256_file(tmp_path / rel) in altered[0] and "Fix" in altered[0]
    missing = [p for p in problems if p.startswith("missing file")]
    assert len(missing) == len(md.MODEL_FILES["V7"]) - 1
    assert all("Fix" in p and "expected SHA-256" in p for p in missing)
    with pytest.raises(md.ModelDataError, match="model directory check failed"):
        md.check_model_dir(tmp_path, ["V7"])


def test_resolve_model_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(md.ENV_MODEL_DIR, raising=False)
    with pytest.raises(md.ModelDataError, match="HRA_MODEL_DIR is not set"):
        md.resolve_model_dir()
    monkeypatch.setenv(md.ENV_MODEL_DIR, str(tmp_path / "nope"))
    with pytest.raises(md.ModelDataError, match="does not exist"):
        md.resolve_model_dir()
    monkeypatch.setenv(md.ENV_MODEL_DIR, str(tmp_path))
    assert md.resolve_model_dir() == tmp_path
    assert md.resolve_model_dir(tmp_path / ".") == tmp_path / "."


def test_model_dir_or_skip_skips_without_env(monkeypatch, tmp_path):
    monkeypatch.delenv(md.ENV_MODEL_DIR, raising=False)
    with pytest.raises(pytest.skip.Exception, match="HRA_MODEL_DIR not set / directory absent"):
        md.model_dir_or_skip()
    monkeypatch.setenv(md.ENV_MODEL_DIR, str(tmp_path / "absent"))
    with pytest.raises(pytest.skip.Exception, match="directory absent"):
        md.model_dir_or_skip()


def test_read_table_tolerates_bom_and_cr_line_endings(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("\ufeffa,b\r1,2\r3,NA\r".encode("utf-8"))
    t = md.read_table(f, ["a", "b"])
    assert t.columns == ("a", "b") and t.lines == [2, 3]
    assert np.allclose(t.floats("a"), [1, 3])
    with pytest.raises(md.ModelDataError, match=r"row 3 \(file line\), column 'b'"):
        t.floats("b")
    assert np.isnan(t.floats("b", na_ok=True)[1])
    with pytest.raises(md.ModelDataError, match=r"missing column\(s\) \['c'\]"):
        md.read_table(f, ["c"])


def _copy_v7(model_dir: Path, dest: Path, edit=None) -> Path:
    """Copy the four V7 GMM files into a temporary dir (outside the repository), optionally edited."""
    (dest / "V7").mkdir(parents=True)
    for role in ("gmm_median", "gmm_sigma", "gmm_af", "gmm_p2p"):
        rel, _ = md.MODEL_FILES["V7"][role]
        text = (model_dir / rel).read_text(encoding="utf-8-sig")
        if edit is not None:
            text = edit(role, text)
        (dest / rel).write_text(text, encoding="utf-8")
    return dest


def test_loader_names_file_row_and_column(model_dir, tmp_path):
    def corrupt(role, text):
        if role != "gmm_sigma":
            return text
        lines = text.splitlines()
        parts = lines[3].split(",")
        parts[2] = "abc"  # tau_level2 of the third period
        lines[3] = ",".join(parts)
        return "\n".join(lines) + "\n"

    d = _copy_v7(model_dir, tmp_path / "m", corrupt)
    with pytest.raises(md.ModelDataError) as exc:
        md.load_gmm_v7_tables(d, verify=False)
    msg = str(exc.value)
    assert "gmpe_sigmas_NS_B_20211010_v7.csv" in msg and "row 4" in msg and "'tau_level2'" in msg
    # with hash verification on, the edit is caught first, naming both hashes
    with pytest.raises(md.ModelDataError, match="expected"):
        md.load_gmm_v7_tables(d, verify=True)


def test_loader_checks_zones_and_periods(model_dir, tmp_path):
    def drop_row(role, text):
        if role != "gmm_af":
            return text
        lines = text.splitlines()
        return "\n".join(lines[:5] + lines[6:]) + "\n"  # one (zone, period) row gone

    d = _copy_v7(model_dir, tmp_path / "m", drop_row)
    with pytest.raises(md.ModelDataError, match=r"zone 110 has no row for period"):
        md.load_gmm_v7_tables(d, verify=False)

    def bad_period(role, text):
        if role != "gmm_median":
            return text
        lines = text.splitlines()
        lines[2] = "0.15" + lines[2][lines[2].index(","):]
        return "\n".join(lines) + "\n"

    d = _copy_v7(model_dir, tmp_path / "n", bad_period)
    with pytest.raises(md.ModelDataError, match=r"row 3 \(file line\), column 'periods': period 0.15"):
        md.load_gmm_v7_tables(d, verify=False)


def test_loaded_tables_have_the_expected_shape(model_dir):
    t = md.load_gmm_v7_tables(model_dir)
    assert t.periods.tolist() == list(md.V7_PERIODS)
    assert t.zones.size == md.N_ZONES and 308 in t.zones and 2813 not in t.zones
    assert t.af["f3"].shape == (160, 10) and np.all(t.af["xh"] == t.af["f3"])
    assert np.allclose(t.tau[:, 0], [0.2362, 0.3498, 0.484])
    # NA tanh coefficients (unused there) are read as 0
    assert np.all(t.median["r1c"][:, 3:] == 0) and np.all(t.median["r2d"][:, 6:] == 0)
    t6 = md.load_gmm_v6_tables(model_dir)
    assert t6.periods.size == 23 and t6.tau.shape == (4, 23) and t6.p2p.shape == (23, 23)


def test_fetch_models_uses_the_pinned_commit(monkeypatch, tmp_path):
    import pooch

    seen = {}

    class FakePooch:
        def fetch(self, name, progressbar=False):
            seen.setdefault("fetched", []).append(name)
            return str(tmp_path / name)

    def fake_create(path, base_url, registry, urls):
        seen.update(path=path, base_url=base_url, registry=registry, urls=urls)
        return FakePooch()

    monkeypatch.setattr(pooch, "create", fake_create)
    out = md.fetch_models(tmp_path, ["V7"])
    assert out == tmp_path
    assert md.UPSTREAM_COMMIT in seen["base_url"]
    assert set(seen["fetched"]) == set(seen["registry"])
    rel, sha = md.MODEL_FILES["V7"]["gmm_median"]
    assert seen["registry"][rel] == f"sha256:{sha}"
    assert seen["urls"][rel] == (
        f"https://raw.githubusercontent.com/{md.UPSTREAM_REPO}/{md.UPSTREAM_COMMIT}/convert/res/{rel}"
    )
    assert seen["urls"][md.ZONATION_FILE].endswith("tests/res/Geological_zones_V6.zip")


def test_zonation_file_found_in_upstream_layout(model_dir):
    z = md.zonation_file(model_dir)
    assert z.name == md.ZONATION_FILE and md.sha256_file(z) == md.ZONATION_SHA256

