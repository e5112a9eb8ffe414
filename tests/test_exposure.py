"""Tests of hra.inputs.exposure: reading, validation messages, normalisation, engine arrays, keys.

Row numbers in CSV messages follow spreadsheet numbering (header = row 1, first building = row 2);
in DataFrames and Parquet files records are counted from 1.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from hra.inputs.exposure import (
    ExposureError,
    building_keys,
    exposure_arrays,
    read_exposure,
    validate_exposure,
    write_exposure,
)

TYPOLOGIES = ["URM_terraced_pre1920", "URM_detached_pre1945", "RC_frame", "timber_frame"]

HEADER_PAIRS = "id,x,y,system_1,s_probability_1,system_2,s_probability_2"


def _csv(tmp_path, text: str, name: str = "buildings.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _where(path, row: int | None, column: str | None) -> str:
    """Regex for the start of a message: file, spreadsheet row, column."""
    pattern = re.escape(str(path))
    if row is not None:
        pattern += re.escape(f", row {row} (spreadsheet numbering, header = row 1)") + r"[^:]*"
    if column is not None:
        pattern += re.escape(f", column {column!r}")
    return pattern


# --------------------------------------------------------------------------------------------
# Bad input: every message names file, row and column (and carries a fix)
# --------------------------------------------------------------------------------------------


def test_missing_column(tmp_path):
    p = _csv(tmp_path, "id,x,typology\nb1,246000,URM_farmhouse\n")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 1 (the header), column 'y'")) as exc:
        read_exposure(p)
    assert "Fix: add a column 'y'" in str(exc.value)
    assert exc.value.column == "y"


def test_missing_typology_columns(tmp_path):
    p = _csv(tmp_path, "id,x,y\nb1,246000,596000\n")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 1 (the header), column 'typology'") + ".*no typology column"):
        read_exposure(p)


def test_missing_partner_column(tmp_path):
    p = _csv(tmp_path, "id,x,y,system_1,s_probability_1,system_2\nb1,246000,596000,RC_frame,1,\n")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 1 (the header), column 's_probability_2'")):
        read_exposure(p)


@pytest.mark.parametrize(
    "cell, problem",
    [("", "coordinate is empty"), ("nan", "not a finite number"), ("inf", "not a finite number"), ("abc", "not a number")],
)
def test_bad_coordinate(tmp_path, cell, problem):
    p = _csv(tmp_path, f"id,x,y,typology\nb1,246000,596000,RC_frame\nb2,{cell},596100,RC_frame\n")
    with pytest.raises(ExposureError, match=_where(p, 3, "x") + ".*" + problem + ".*Fix: give x in RD New metres"):
        read_exposure(p)


def test_coordinate_outside_rd_box_hints_degrees(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology\nb1,6.75,53.34,RC_frame\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "y") + ".*outside the plausible RD New range.*wgs84_to_rd"):
        read_exposure(p)
    p = _csv(tmp_path, "id,x,y,typology\nb1,246000,196000,RC_frame\n", "south.csv")
    with pytest.raises(ExposureError, match=_where(p, 2, "y") + ".*289000..629000"):
        read_exposure(p)


def test_probabilities_not_summing_to_one(tmp_path):
    p = _csv(
        tmp_path,
        f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,0.5,timber_frame,0.5\nb2,246100,596000,RC_frame,0.6,timber_frame,0.3\n",
    )
    where = re.escape(f"{p}, row 3 (spreadsheet numbering, header = row 1), columns 's_probability_1', 's_probability_2'")
    with pytest.raises(ExposureError, match=where + ": typology probabilities sum to 0.9, not 1"):
        read_exposure(p)


def test_probabilities_within_tolerance_accepted(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,0.3333333,timber_frame,0.6666666\n")
    df = read_exposure(p)
    assert df.loc[0, "s_probability_1"] == pytest.approx(0.3333333)


def test_unknown_typology_lists_known_ones(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology\nb1,246000,596000,RC_frame\nb2,246100,596000,URM_terrace_pre1920\n")
    with pytest.raises(ExposureError, match=_where(p, 3, "typology") + r".*'URM_terrace_pre1920'.*did you mean 'URM_terraced_pre1920'.*'RC_frame'"):
        read_exposure(p, known_typologies=TYPOLOGIES)
    # the same file is fine without a list of known typologies
    assert len(read_exposure(p)) == 2


def test_unknown_typology_in_pairs_names_the_pair_column(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,0.7,Steel,0.3\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "system_2") + ".*unknown typology 'Steel'"):
        read_exposure(p, known_typologies=TYPOLOGIES)


def test_empty_file(tmp_path):
    p = _csv(tmp_path, "")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 1 (the header): the file is empty")):
        read_exposure(p)


def test_header_without_rows(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology\n")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 2 (spreadsheet numbering, header = row 1): no buildings")):
        read_exposure(p)


def test_duplicate_ids_name_both_rows(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology\nb1,246000,596000,RC_frame\nb2,246100,596000,RC_frame\nb1,246200,596000,RC_frame\n")
    where = re.escape(f"{p}, rows 2 and 4 (spreadsheet numbering, header = row 1), column 'id'")
    with pytest.raises(ExposureError, match=where + ": duplicate building id 'b1'"):
        read_exposure(p)


def test_negative_probability(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,1.2,timber_frame,-0.2\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "s_probability_2") + ": negative probability -0.2"):
        read_exposure(p)


def test_system_without_probability(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,1,,\nb2,246100,596000,RC_frame,0.5,timber_frame,\n")
    with pytest.raises(ExposureError, match=_where(p, 3, "s_probability_2") + ": system 'timber_frame' is given without a probability"):
        read_exposure(p)


def test_probability_without_system(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,0.5,,0.5\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "system_2") + ": probability 0.5 is given without a system"):
        read_exposure(p)


def test_same_typology_twice(tmp_path):
    p = _csv(tmp_path, f"{HEADER_PAIRS}\nb1,246000,596000,RC_frame,0.5,RC_frame,0.5\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "system_2") + ": typology 'RC_frame' is listed twice"):
        read_exposure(p)


def test_negative_population(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology,population_inside\nb1,246000,596000,RC_frame,2\nb2,246100,596000,RC_frame,-1\n")
    with pytest.raises(ExposureError, match=_where(p, 3, "population_inside") + ".*negative"):
        read_exposure(p)


@pytest.mark.parametrize("cell", ["1.5", "-2", "A"])
def test_bad_zone(tmp_path, cell):
    p = _csv(tmp_path, f"id,x,y,typology,zone\nb1,246000,596000,RC_frame,{cell}\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "zone")):
        read_exposure(p)


def test_bad_wierde(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology,wierde\nb1,246000,596000,RC_frame,2\n")
    with pytest.raises(ExposureError, match=_where(p, 2, "wierde") + ".*must be 0 or 1"):
        read_exposure(p)


def test_both_typology_and_pairs(tmp_path):
    p = _csv(tmp_path, "id,x,y,typology,system_1,s_probability_1\nb1,246000,596000,RC_frame,RC_frame,1\n")
    with pytest.raises(ExposureError, match=re.escape(f"{p}, row 1 (the header), column 'typology'") + ".*either"):
        read_exposure(p)


def test_blank_lines_keep_spreadsheet_row_numbers(tmp_path):
    # row 3 is blank (ignored); the bad cell is in spreadsheet row 5
    p = _csv(tmp_path, "id,x,y,typology\nb1,246000,596000,RC_frame\n,,,\nb2,246100,596000,RC_frame\nb3,246200,,RC_frame\n")
    with pytest.raises(ExposureError, match=_where(p, 5, "y")):
        read_exposure(p)


def test_file_not_found(tmp_path):
    p = tmp_path / "nope.csv"
    with pytest.raises(ExposureError, match=re.escape(f"{p}: file not found")):
        read_exposure(p)


def test_parquet_without_engine_gives_clear_message(tmp_path, monkeypatch):
    p = tmp_path / "b.parquet"
    p.write_bytes(b"PAR1")

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ExposureError, match=re.escape(str(p)) + ".*needs the optional package pyarrow.*Fix: install it"):
        read_exposure(p)


def test_dataframe_errors_count_records_from_one():
    df = pd.DataFrame({"id": ["a", "b"], "x": [246000.0, np.nan], "y": [596000.0, 596000.0], "typology": ["RC_frame"] * 2})
    with pytest.raises(ExposureError, match=re.escape("<DataFrame>, record 2 (first record = 1), column 'x'")):
        validate_exposure(df)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def test_defaults_and_dtypes(tmp_path):
    p = _csv(tmp_path, "ID , X,Y,Typology\n007,246000.5,596000,RC_frame\n")
    df = read_exposure(p)
    assert list(df.columns) == ["id", "x", "y", "municipality", "population_inside", "wierde", "system_1", "s_probability_1"]
    assert df.loc[0, "id"] == "007"  # text, leading zeros kept
    assert df["x"].dtype == np.float64 and df.loc[0, "x"] == 246000.5
    assert df.loc[0, "municipality"] == ""
    assert np.isnan(df.loc[0, "population_inside"])
    assert df["wierde"].dtype == bool and not df.loc[0, "wierde"]
    assert df.loc[0, "s_probability_1"] == 1.0
    assert df.attrs["source"] == str(p)


def test_semicolon_csv_with_bom_and_optional_columns(tmp_path):
    text = "\ufeffid;x;y;typology;zone;municipality;population_inside;wierde\n" "a;246000;596000;RC_frame;3;Eemsdelta;2.5;1\n" "b;246100;596000;RC_frame;;;;0\n"
    p = _csv(tmp_path, text)
    df = read_exposure(p)
    assert df["zone"].dtype == "Int64"
    assert df["zone"].iloc[0] == 3 and df["zone"].isna().iloc[1]
    assert df["municipality"].tolist() == ["Eemsdelta", ""]
    assert df["population_inside"].iloc[0] == 2.5 and np.isnan(df["population_inside"].iloc[1])
    assert df["wierde"].tolist() == [True, False]


def test_candidates_are_packed_to_the_front(tmp_path):
    p = _csv(
        tmp_path,
        "id,x,y,system_1,s_probability_1,system_2,s_probability_2,system_3,s_probability_3\n"
        "a,246000,596000,,,RC_frame,1,,\n"
        "b,246100,596000,timber_frame,0.25,,0,RC_frame,0.75\n",
    )
    df = read_exposure(p)
    assert [c for c in df.columns if c.startswith("s")] == ["system_1", "s_probability_1", "system_2", "s_probability_2"]
    assert df["system_1"].tolist() == ["RC_frame", "timber_frame"]
    assert df["system_2"].tolist() == ["", "RC_frame"]
    assert df["s_probability_2"].tolist() == [0.0, 0.75]


def test_single_typology_and_pairs_give_same_arrays(tmp_path):
    single = _csv(tmp_path, "id,x,y,typology,zone\na,246000,596000,RC_frame,2\nb,246100,596100,timber_frame,\n", "one.csv")
    pairs = _csv(
        tmp_path,
        f"{HEADER_PAIRS},zone\na,246000,596000,RC_frame,1,,,2\nb,246100,596100,,,timber_frame,1.0,\n",
        "two.csv",
    )
    a = exposure_arrays(read_exposure(single, known_typologies=TYPOLOGIES), TYPOLOGIES)
    b = exposure_arrays(read_exposure(pairs, known_typologies=TYPOLOGIES), TYPOLOGIES)
    for name in ("ids", "x", "y", "zone", "wierde", "municipality", "typology_index", "typology_prob"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.population_inside, b.population_inside)
    assert a.typology_index.tolist() == [[2], [3]]
    assert a.zone.tolist() == [2, -1]


def test_exposure_arrays_sorts_by_index_and_drops_zero_probability():
    df = validate_exposure(
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "x": [246000.0, 246100.0],
                "y": [596000.0, 596000.0],
                "system_1": ["timber_frame", "RC_frame"],
                "s_probability_1": [0.6, 1.0],
                "system_2": ["URM_terraced_pre1920", "timber_frame"],
                "s_probability_2": [0.4, 0.0],
            }
        )
    )
    arr = exposure_arrays(df, TYPOLOGIES)
    assert arr.typology_index.dtype == np.int64 and arr.typology_index.shape == (2, 2)
    assert arr.typology_index.tolist() == [[0, 3], [2, -1]]
    assert arr.typology_prob.tolist() == [[0.4, 0.6], [1.0, 0.0]]
    assert arr.zone.tolist() == [-1, -1]
    assert arr.ids.dtype == object and arr.ids.tolist() == ["a", "b"]
    with pytest.raises(ValueError):
        arr.x[0] = 0.0  # read-only
    with pytest.raises(ExposureError, match="record 1.*system_1.*'timber_frame' is not in the model's typology list"):
        exposure_arrays(df, TYPOLOGIES[:3])


def test_write_read_round_trip(tmp_path):
    df = validate_exposure(
        pd.DataFrame(
            {
                "id": ["a", "b", "c"],
                "x": [246000.1, 246100.25, 250000.0],
                "y": [596000.0, 596000.0, 590000.3],
                "zone": pd.array([1, None, 3], dtype="Int64"),
                "population_inside": [2.5, np.nan, 0.0],
                "wierde": [True, False, False],
                "system_1": ["RC_frame", "timber_frame", "RC_frame"],
                "s_probability_1": [0.55, 1.0, 1.0],
                "system_2": ["timber_frame", "", ""],
                "s_probability_2": [0.45, 0.0, 0.0],
            }
        )
    )
    p = write_exposure(df, tmp_path / "out.csv")
    assert not list(tmp_path.glob("*.tmp-*"))
    back = read_exposure(p)
    pd.testing.assert_frame_equal(back, df)
    assert "b,246100.25,596000.0,,," in p.read_text()  # padding written as empty cells


# --------------------------------------------------------------------------------------------
# Building keys
# --------------------------------------------------------------------------------------------


def test_building_keys_known_value():
    # Computed independently:
    # int.from_bytes(hashlib.blake2b(b"DEMO-000001", digest_size=8).digest(), "little")
    assert building_keys(["DEMO-000001"]).tolist() == [13284060402628935559]
    text = "Loppersum-Wirdumerweg 1 \u00fc"
    expected = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    assert building_keys([text])[0] == expected == 7286455282164808659


def test_building_keys_independent_of_order_and_chunking():
    ids = [f"B{i}" for i in range(200)]
    keys = building_keys(ids)
    assert keys.dtype == np.uint64 and keys.shape == (200,)
    assert len(set(keys.tolist())) == 200
    perm = np.random.default_rng(3).permutation(200)
    np.testing.assert_array_equal(building_keys([ids[i] for i in perm]), keys[perm])
    np.testing.assert_array_equal(np.concatenate([building_keys(ids[:7]), building_keys(ids[7:])]), keys)
    np.testing.assert_array_equal(building_keys(np.array(ids, dtype=object)), keys)
    with pytest.raises(TypeError):
        building_keys([1, 2])


# --- EDB layout: values stripped only where the file can carry padding -----------------------------

_EDB_HEADER = ("bag_building_id,point_x,point_y,main_use,system_1,s_probability_1,system_2,s_probability_2,"
               "community,wiede_flag,sum_pop_in_day,sum_pop_in_night")
_EDB_ROWS = ("0014100000000001,234603.5,572797,woonfunctie,URM3L,0.6,W2,0.4,Súdwest,0,0.5,1",
             "0014100000000002,240000,580000,,RC1L,1,,,Groningen,1,1,2")


@pytest.mark.parametrize("pad", ["", " {} ", "\t{}", "{}\u00a0", "\u2003{}", '"{}"', '" {}"'])
def test_edb_values_read_alike_with_and_without_padding(tmp_path, pad):
    """A clean EDB takes the fast path (no per-value strip); the same file with every value padded
    (spaces, tab, NBSP, em space, quotes) takes the stripping path, and both give the same table."""
    from hra.inputs.edb import _needs_strip, normalise_edb, read_edb

    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join((_EDB_HEADER,) + _EDB_ROWS) + "\n", encoding="utf-8-sig")
    want = read_edb(clean)
    assert not _needs_strip(clean.read_bytes())
    assert want.loc[0, "municipality"] == "Súdwest" and want.loc[1, "wierde"]
    assert want.loc[0, "s_probability_2"] == 0.4 and want.loc[1, "system_2"] == ""
    raw = pd.read_csv(clean, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(normalise_edb(raw, strip=True), want)
    if pad:
        padded = tmp_path / "padded.csv"
        rows = [",".join(pad.format(v) if v else v for v in r.split(",")) for r in _EDB_ROWS]
        padded.write_text("\n".join((_EDB_HEADER,) + tuple(rows)) + "\n", encoding="utf-8")
        assert _needs_strip(padded.read_bytes())
        pd.testing.assert_frame_equal(read_edb(padded), want)
