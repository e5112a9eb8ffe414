"""The persistent table store (issue 11 item 2): hra.integration.tablestore and `hra tables`.

References: a run without the store (``[compute] table_store = false``) is the reference of every
run with it (cold and warm must be bit-identical); table computations are counted with a spy on
:func:`hra.integration.engine.physical_death_tables` (no timing); invalidation is checked on the
keys and on the tables recomputed from a modified copy of the public model tables.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hra
from hra.integration import engine, tablestore
from hra.integration.engine import compute
from hra.integration.tablestore import TMP_PREFIX, TableStore
from tests.helpers import PARAMETRIC, make_config

CELL = (250_000.0, 590_000.0)
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.4, 0.7, 1.0), 0.5, (0.01, 0.08, 0.2)),
          "TIM": ((0.5, 0.9, 1.4), 0.6, (0.005, 0.05, 0.1))}
BUILDINGS = [
    dict(id=f"B{i:03d}", x=CELL[0] + 1500.0 * (i % 5), y=CELL[1] + 1200.0 * (i // 5),
         system_1="URM", s_probability_1=(1.0 if i % 3 else 0.6), system_2=("" if i % 3 else "RC"),
         s_probability_2=(0.0 if i % 3 else 0.4))
    for i in range(12)
]


def small_config(tmp: Path, store, buildings=BUILDINGS, gm=None, run=None, **kw):
    """A parametric case with a b-value x Mmax x fragility x consequence tree (enumerated)."""
    return make_config(
        tmp, cells=[(CELL[0] + 2000 * i, CELL[1] + 1000 * j, 0.05 * (1 + i + j)) for i in range(3) for j in range(2)],
        curves=CURVES, buildings=buildings, m_max=((4.5, 0.6), (5.5, 0.4)), gm=gm,
        b_value=[{"value": 0.9, "weight": 0.5}, {"value": 1.1, "weight": 0.5}],
        frag_branches=[("lower", 0.2, 0.7), ("central", 0.6, 1.0), ("upper", 0.2, 1.4)],
        fragility={"consequence": [{"factor": 0.8, "weight": 0.5}, {"factor": 1.2, "weight": 0.5}]},
        run={"keep_realisations": True, **(run or {})},
        compute={"table_store": store if store is False else str(store)}, **kw)


@pytest.fixture
def spy(monkeypatch):
    """Counts the physical table computations (calls and typologies) of the engine."""
    calls: list[np.ndarray] = []
    real = engine.physical_death_tables

    def counting(gmm, fragility, zone_arg, wierdes, mag, r_nodes, t_sel, keys=None, **kw):
        # the engine computes a zone's tables a group of branches at a time: one record per zone (its first
        # group; with magnitude_table_stride 2 not its inner call at the computed nodes)
        if (keys is None or keys == engine.physical_groups(gmm)[0]) and not isinstance(mag, engine._ComputedNodes):
            calls.append(np.asarray(t_sel).copy())
        return real(gmm, fragility, zone_arg, wierdes, mag, r_nodes, t_sel, keys=keys, **kw)

    monkeypatch.setattr(engine, "physical_death_tables", counting)
    return calls


def assert_same(a, b):
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    if a.realisations is not None:
        np.testing.assert_array_equal(a.realisations, b.realisations)


# -- reuse and bit-identity ----------------------------------------------------------------------


def test_parametric_bit_identical_and_reused(tmp_path, spy):
    store = tmp_path / "store"
    ref = compute(small_config(tmp_path / "a", False))
    assert not store.exists()
    n_ref = len(spy)
    assert n_ref > 0
    cold = compute(small_config(tmp_path / "b", store))
    assert len(spy) == 2 * n_ref  # computed again (empty store) ...
    warm = compute(small_config(tmp_path / "c", store))
    assert len(spy) == 2 * n_ref  # ... and not at all once stored
    assert_same(ref, cold)
    assert_same(ref, warm)
    [entry_set] = TableStore(store).info()
    assert entry_set.entries == 2  # one site (zone-free model) x the typologies present (URM, RC)
    assert entry_set.temporary == 0
    assert entry_set.description["gmm"]["config"]["c0"] == PARAMETRIC["c0"]


def test_options_that_do_not_change_tables_reuse_them(tmp_path, spy):
    """Seed, realisations, quantiles, chunking, rates, b-value weights: same key, nothing recomputed."""
    store = tmp_path / "store"
    compute(small_config(tmp_path / "a", store))
    n = len(spy)
    cfg = small_config(tmp_path / "b", store, realisations=50,
                       run={"seed": 3, "quantiles": [0.1, 0.9]}).with_updates(compute={"chunk_buildings": 5})
    compute(cfg)
    assert len(spy) == n
    assert len(TableStore(store).info()) == 1


@pytest.mark.parametrize("stride", [1, 2])
def test_new_typologies_computes_only_what_is_missing(tmp_path, spy, stride):
    """Entries read and computed in one zone; with ``magnitude_table_stride`` 2 the read entries (the
    computed magnitude nodes) are expanded as read and the computed ones after being stored."""
    store = tmp_path / "store"
    urm_only = [dict(b, system_1="URM", s_probability_1=1.0, system_2="", s_probability_2=0.0) for b in BUILDINGS]
    src = {"magnitude_table_stride": stride}
    cfg_a = small_config(tmp_path / "a", store, buildings=urm_only, source=src)
    typ = engine.prepare(cfg_a).fragility.typologies
    compute(cfg_a)
    assert [[typ[i] for i in t] for t in spy] == [["URM"]]
    spy.clear()
    more = BUILDINGS + [dict(id="T1", x=CELL[0], y=CELL[1], system_1="TIM", s_probability_1=1.0, system_2="",
                             s_probability_2=0.0)]
    with_store = compute(small_config(tmp_path / "b", store, buildings=more, source=src))
    assert [[typ[i] for i in t] for t in spy] == [["RC", "TIM"]]  # URM came from the store
    without = compute(small_config(tmp_path / "c", False, buildings=more, source=src))
    # the same numbers; only the grouping of the typologies in one BLAS product differs
    np.testing.assert_allclose(with_store.mean, without.mean, rtol=1e-12)
    np.testing.assert_allclose(with_store.realisations, without.realisations, rtol=1e-12, atol=0)
    assert TableStore(store).info()[0].entries == 3


# -- invalidation ----------------------------------------------------------------------------------


def _key(cfg):
    prep = engine.prepare(cfg)
    return tablestore.model_key(tablestore.model_description(
        prep.gmm, prep.fragility, prep.magnitude.nodes, prep.distance_nodes_km, cfg, prep.files))


@pytest.mark.parametrize("change", [
    dict(gm=dict(PARAMETRIC, c0=-4.9)),
    dict(gm=dict(PARAMETRIC, truncation_sigma=3.0)),
    dict(source={"distance_nodes": 60}),
    dict(m_max=((4.5, 0.6), (6.0, 0.4))),
])
def test_changed_option_changes_key_and_is_recomputed(tmp_path, spy, change):
    store = tmp_path / "store"
    base = small_config(tmp_path / "a", store)
    compute(base)
    n = len(spy)
    kw = dict(change)
    m_max = kw.pop("m_max", None)
    other = small_config(tmp_path / "b", store, **kw) if m_max is None else make_config(
        tmp_path / "b", cells=[(CELL[0], CELL[1], 0.1)], curves=CURVES, buildings=BUILDINGS, m_max=m_max,
        b_value=[{"value": 0.9, "weight": 0.5}, {"value": 1.1, "weight": 0.5}],
        frag_branches=[("lower", 0.2, 0.7), ("central", 0.6, 1.0), ("upper", 0.2, 1.4)],
        fragility={"consequence": [{"factor": 0.8, "weight": 0.5}, {"factor": 1.2, "weight": 0.5}]},
        compute={"table_store": str(store)})
    assert _key(other) != _key(base)
    compute(other)
    assert len(spy) == 2 * n  # nothing stale reused
    assert len(TableStore(store).info()) == 2


def test_changed_fragility_table_or_presence_changes_key(tmp_path, spy):
    store = tmp_path / "store"
    base = small_config(tmp_path / "a", store)
    compute(base)
    n = len(spy)
    curves = dict(CURVES, RC=((0.4, 0.7, 1.05), 0.5, (0.01, 0.08, 0.2)))  # one median changed
    other = make_config(tmp_path / "b", cells=[(CELL[0], CELL[1], 0.1)], curves=curves, buildings=BUILDINGS,
                        m_max=((4.5, 0.6), (5.5, 0.4)), b_value=[{"value": 0.9, "weight": 0.5}, {"value": 1.1, "weight": 0.5}],
                        frag_branches=[("lower", 0.2, 0.7), ("central", 0.6, 1.0), ("upper", 0.2, 1.4)],
                        fragility={"consequence": [{"factor": 0.8, "weight": 0.5}, {"factor": 1.2, "weight": 0.5}]},
                        compute={"table_store": str(store)})
    assert _key(other) != _key(base)
    compute(other)
    assert len(spy) == 2 * n
    presence = base.with_updates(fragility={"presence_inside": 0.9})
    assert _key(presence) not in (_key(base), _key(other))


def test_changed_model_table_changes_key_and_values(tmp_path):
    """A copy of the public model tables with one GMM-V7 median coefficient changed."""
    from fragility.groningen import load_fcm
    from hra.gmm.groningen_v7 import GroningenV7
    from hra.inputs import modeldata as md
    from hra.inputs.source import magnitude_bins

    src = md.model_dir_or_skip()
    copy = tmp_path / "res"
    shutil.copytree(src, copy)
    f = copy / "V7" / "gmpe_medians_NS_B_20211010_v7.csv"
    lines = f.read_text().splitlines()
    head = lines[0].split(",")
    col = head.index("m0_level2")  # the constant of the central median branch, every period
    for i in range(1, len(lines)):
        row = lines[i].split(",")
        row[col] = repr(float(row[col]) + 0.05)
        lines[i] = ",".join(row)
    f.write_text("\n".join(lines) + "\n")

    fm = load_fcm("fcm-v7", src).to_fragility_model(0.99)
    mag = magnitude_bins(np.array([1.0]), np.array([5.0]), 1.5, 0.5)
    r = np.exp(np.linspace(np.log(3.0), np.log(30.0), 12))
    gmms = [GroningenV7(src, rupture="point", quad_step=0.5, n_rrup=4),
            GroningenV7(copy, rupture="point", quad_step=0.5, n_rrup=4, verify=False)]
    keys = [tablestore.model_key(tablestore.model_description(g, fm, mag.nodes, r)) for g in gmms]
    assert keys[0] != keys[1]
    assert gmms[0].file_checksums != gmms[1].file_checksums
    zone = int(gmms[0].zones[0])
    t = np.array([fm.typologies.index(fm.typologies[0])])
    tabs = [engine.physical_death_tables(g, fm, zone, [False], mag, r, t)[0] for g in gmms]
    k = next(k for k in tabs[0] if k[0] == 1)  # a table of the central median branch
    assert not np.array_equal(tabs[0][k], tabs[1][k])
    # through the store: the entries of the first key are not read for the second
    store = TableStore(tmp_path / "store")
    handles = [tablestore.StoreHandle(store, kk) for kk in keys]
    a = engine._stored_death_tables(handles[0], gmms[0], fm, zone, zone, [False], mag, r, t)
    b = engine._stored_death_tables(handles[1], gmms[1], fm, zone, zone, [False], mag, r, t)
    assert store.stats.written == 2 and store.stats.read == 0
    np.testing.assert_array_equal(a[0][k], tabs[0][k])
    np.testing.assert_array_equal(b[0][k], tabs[1][k])


# -- concurrency and interrupted writers -------------------------------------------------------------


def _tables(seed=0):
    """Tables at the store's precision (the engine rounds its tables to 16 significant bits, float32
    values, before storing: ``kernels.round_table``)."""
    from hra.integration.kernels import round_table

    rng = np.random.default_rng(seed)
    return {(i, j): round_table(rng.random((2, 1, 5, 4))).astype(np.float64) for i in range(2) for j in range(3)}


def test_entries_are_float32_and_unrounded_tables_are_refused(tmp_path):
    """The store keeps float32 (half the bytes) of 16 significant bits; a float64 table not at that
    precision - float32's full 24 bits, or more - is refused with an error naming the entry (it would
    break "store = no store, to the bit")."""
    import zarr

    store = TableStore(tmp_path)
    tabs = _tables(3)
    assert store.write("k", 1, False, "URM", tabs)
    arr = zarr.open_group(str(store.entry_path("k", 1, False, "URM")), mode="r")["death"]
    assert arr.dtype == np.float32
    got = store.read("k", 1, False, "URM")
    assert all(got[k].dtype == np.float64 and np.array_equal(got[k], tabs[k]) for k in tabs)
    bad = {k: v + 1e-12 for k, v in _tables(4).items()}
    with pytest.raises(ValueError, match=r"z1-w0/RC.*not at the store's precision"):
        store.write("k", 1, False, "RC", bad)
    f32 = {k: np.random.default_rng(5).random(v.shape, dtype=np.float32).astype(np.float64) for k, v in tabs.items()}
    with pytest.raises(ValueError, match=r"z1-w0/RC.*16 significant bits"):
        store.write("k", 1, False, "RC", f32)
    assert not store.entry_path("k", 1, False, "RC").exists()
    assert not [p for p in (tmp_path / "k" / "z1-w0").iterdir() if p.name.startswith(TMP_PREFIX)]


def test_lost_race_keeps_one_valid_entry(tmp_path, monkeypatch):
    """The other writer renames its entry in place between our write and our rename."""
    store = TableStore(tmp_path)
    theirs, ours = _tables(1), _tables(2)
    real_rename = os.rename
    done = []

    def rename_after_the_other(src, dst):
        if not done:
            done.append(True)
            assert TableStore(tmp_path).write("k", 3, True, "URM", theirs)  # the other process wins
        return real_rename(src, dst)

    monkeypatch.setattr(tablestore.os, "rename", rename_after_the_other)
    assert store.write("k", 3, True, "URM", ours) is False  # no error: the entry is there
    monkeypatch.setattr(tablestore.os, "rename", real_rename)
    got = store.read("k", 3, True, "URM")
    assert got.keys() == theirs.keys() and all(np.array_equal(got[k], theirs[k]) for k in theirs)
    assert store.stats.raced == 1
    assert not [p for p in (tmp_path / "k" / "z3-w1").iterdir() if p.name.startswith(TMP_PREFIX)]


def _write_many(root: str, barrier, n: int, out) -> None:
    store = TableStore(root)
    barrier.wait()
    out.put([store.write("key", 1, False, f"T{i}", _tables(i)) for i in range(n)])


def test_two_processes_write_the_same_entries(tmp_path):
    n = 30
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), barrier, n, out)) for _ in range(2)]
    for p in procs:
        p.start()
    a, b = out.get(timeout=120), out.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(x or y for x, y in zip(a, b))  # every entry written by one of them ...
    store = TableStore(tmp_path)
    for i in range(n):  # ... valid, and equal to what both wrote
        got = store.read("key", 1, False, f"T{i}")
        ref = _tables(i)
        assert all(np.array_equal(got[k], ref[k]) for k in ref)
    site = tmp_path / "key" / "z1-w0"
    assert sorted(p.name for p in site.iterdir()) == sorted(f"T{i}" for i in range(n))  # no leftovers


def _write_and_hang(root: str) -> None:
    def hang(*_a, **_k):
        time.sleep(600)

    tablestore.os.rename = hang  # the process is killed before the rename
    TableStore(root).write("key", 2, False, "URM", _tables())


def test_killed_writer_leaves_no_entry_and_is_cleaned(tmp_path):
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_write_and_hang, args=(str(tmp_path),))
    proc.start()
    site = tmp_path / "key" / "z2-w0"
    deadline = time.time() + 60
    while time.time() < deadline:
        tmps = [p for p in site.iterdir() if p.name.startswith(TMP_PREFIX)] if site.is_dir() else []
        if tmps and (tmps[0] / "death" / "zarr.json").is_file() and (tmps[0] / "branch" / "zarr.json").is_file():
            break
        time.sleep(0.05)
    proc.kill()
    proc.join()
    assert tmps, "the writer never got to its temporary folder"
    store = TableStore(tmp_path)
    assert store.read("key", 2, False, "URM") is None  # readers ignore it
    [info] = store.info()
    assert info.entries == 0 and info.temporary == 1
    # a new writer is not disturbed by the leftover
    assert store.write("key", 2, False, "URM", _tables())
    assert store.read("key", 2, False, "URM") is not None
    # clear --older-than leaves fresh temporaries (a writer may be busy) and removes old ones
    assert store.clear(older_than_days=30) == (0, 0)
    assert tmps[0].exists()
    old = time.time() - 2 * tablestore.TMP_GRACE_S
    os.utime(tmps[0], (old, old))
    n, freed = store.clear(older_than_days=30)
    assert n == 0 and freed > 0 and not tmps[0].exists()
    assert store.info()[0].entries == 1


def test_read_marks_an_entry_used_at_most_once_per_mark_interval(tmp_path, monkeypatch):
    """A counted read sets the entry's modification time (``clear --older-than`` keeps it) where the last
    mark is older than ``USED_MARK_S``, and writes nothing where it is newer (a metadata write waits for the
    journal); an uncounted read never marks it."""
    store = TableStore(tmp_path)
    assert store.write("k", 1, False, "URM", _tables()) and store.write("k", 2, False, "URM", _tables())
    marks = []
    real = os.utime
    monkeypatch.setattr(os, "utime", lambda p, *a, **k: (marks.append(Path(p).parent.name), real(p, *a, **k))[1])

    def read(*args, **kw):
        out = store.read(*args, **kw)
        store.flush_marks()
        return out

    assert read("k", 1, False, "URM") is not None and marks == []  # written just now: fresh
    old = time.time() - 2 * 86400.0
    for zone in (1, 2):
        real(store.entry_path("k", zone, False, "URM"), (old, old))
    assert read("k", 1, False, "URM", count=False) is not None and marks == []
    assert read("k", 1, False, "URM") is not None and marks == ["z1-w0"]
    assert time.time() - store.entry_path("k", 1, False, "URM").stat().st_mtime < tablestore.USED_MARK_S
    assert read("k", 1, False, "URM") is not None and marks == ["z1-w0"]  # marked: not again
    n, _ = store.clear(older_than_days=1)
    assert n == 1 and store.entry_path("k", 1, False, "URM").is_dir() and not store.entry_path("k", 2, False, "URM").exists()


def test_used_marks_are_set_after_the_reads_by_the_run_and_by_clear(tmp_path, monkeypatch):
    """A read only queues its entry's "used" mark (a metadata write waits for the journal behind the reads
    the disk has queued); the marks are set once the reads are done: by the engine at the end of its run,
    by ``clear`` before it looks at ages (so it keeps an entry read just before), each entry once. A mark of
    an entry removed meanwhile fails quietly (counted)."""
    store = TableStore(tmp_path)
    old = time.time() - 2 * 86400.0
    for zone in (1, 2, 3):
        assert store.write("k", zone, False, "URM", _tables())
        os.utime(store.entry_path("k", zone, False, "URM"), (old, old))
    tablestore.MARKS.flush()  # (marks an earlier test of this process may have left queued)
    marks = []
    real = os.utime
    monkeypatch.setattr(os, "utime", lambda p, *a, **k: (marks.append(Path(p).parent.name), real(p, *a, **k))[1])
    done0, failed0 = tablestore.MARKS.done, tablestore.MARKS.failed
    for _ in range(2):
        assert store.read("k", 1, False, "URM") is not None
    assert store.read("k", 2, False, "URM") is not None
    assert marks == [] and len(tablestore.MARKS) == 3  # queued, not set
    assert time.time() - store.entry_path("k", 1, False, "URM").stat().st_mtime > 86400.0
    shutil.rmtree(store.entry_path("k", 2, False, "URM"))  # removed before its mark is set
    n, _ = store.clear(older_than_days=1)  # sets the marks first: keeps zone 1, removes zone 3
    assert marks == ["z1-w0", "z2-w0"] and len(tablestore.MARKS) == 0
    assert n == 1
    assert store.entry_path("k", 1, False, "URM").is_dir() and not store.entry_path("k", 3, False, "URM").exists()
    assert (tablestore.MARKS.done - done0, tablestore.MARKS.failed - failed0) == (1, 1)


def test_a_run_marks_the_entries_it_read_at_its_end(tmp_path, monkeypatch):
    """The engine sets the queued marks once its reads are done: after a warm run every entry it read is
    marked used, and nothing is left queued."""
    store = tmp_path / "store"
    compute(small_config(tmp_path / "a", store))
    [info] = TableStore(store).info()
    entries = [e for e in (store / info.key).glob("z*/*") if e.is_dir()]
    assert entries
    old = time.time() - 2 * 86400.0
    for e in entries:
        os.utime(e, (old, old))
    marks = []
    real = os.utime
    monkeypatch.setattr(os, "utime", lambda p, *a, **k: (marks.append(Path(p)), real(p, *a, **k))[1])
    compute(small_config(tmp_path / "b", store))
    assert len(tablestore.MARKS) == 0
    assert sorted(marks) == sorted(entries)  # each once
    assert all(time.time() - e.stat().st_mtime < tablestore.USED_MARK_S for e in entries)


def _stale_read_task(store_root, result):
    """In a forked child: a zone task (``engine._zone_table_task``) whose tables are one stale entry's read."""
    store = TableStore(store_root)
    engine.zone_tables = lambda *a: store.read("k", 1, False, "URM")  # (the child's copy of the module)
    result.put(engine._zone_table_task(((), 0)) is not None)


def test_a_table_task_in_a_worker_process_sets_its_marks_at_its_end(tmp_path):
    """A table task that runs in a worker process sets the marks of the entries it read at its end: a
    worker may end without running exit hooks (a forked ``multiprocessing`` process ends with ``os._exit``),
    so marks left queued there would be lost."""
    store = TableStore(tmp_path)
    assert store.write("k", 1, False, "URM", _tables())
    old = time.time() - 2 * 86400.0
    os.utime(store.entry_path("k", 1, False, "URM"), (old, old))
    ctx = mp.get_context("fork")
    result = ctx.Queue()
    child = ctx.Process(target=_stale_read_task, args=(tmp_path, result))
    child.start()
    assert result.get(timeout=60) is True  # the task read the entry
    child.join(60)
    assert child.exitcode == 0
    assert time.time() - store.entry_path("k", 1, False, "URM").stat().st_mtime < tablestore.USED_MARK_S


def test_worker_processes_mark_the_entries_they_read(tmp_path):
    """With worker processes (``executor = "processes"``: a local dask cluster) the zone tasks read the
    store there, and the entries are marked used after the run (each task sets its marks at its end)."""
    store = tmp_path / "store"
    compute(small_config(tmp_path / "a", store))
    [info] = TableStore(store).info()
    entries = [e for e in (store / info.key).glob("z*/*") if e.is_dir()]
    old = time.time() - 2 * 86400.0
    for e in entries:
        os.utime(e, (old, old))
    cfg = small_config(tmp_path / "b", store)
    compute(cfg.with_updates(compute={"executor": "processes", "workers": 2}))
    assert len(tablestore.MARKS) == 0  # nothing read (nor queued) in this process
    assert entries and all(time.time() - e.stat().st_mtime < tablestore.USED_MARK_S for e in entries)


def test_partial_entry_from_a_killed_writer_is_ignored_by_a_run(tmp_path, spy):
    store = tmp_path / "store"
    ref = compute(small_config(tmp_path / "a", store))
    [info] = TableStore(store).info()
    site = store / info.key / "z0-w0"
    # simulate: a writer killed half-way through an entry (only a truncated temporary folder left)
    half = site / f"{TMP_PREFIX}URM-4242-deadbeef"
    shutil.copytree(site / "URM", half)
    for chunk in (half / "death").glob("c.*"):  # the chunk files (keys c.<branch>.0...)
        chunk.unlink()
    shutil.rmtree(site / "URM")  # and the entry itself never made it
    n = len(spy)
    again = compute(small_config(tmp_path / "b", store))
    assert len(spy) == n + 1  # URM recomputed, RC read
    assert_same(ref, again)
    assert TableStore(store).info()[0].temporary == 1
    removed, _ = TableStore(store).clear()
    assert removed == 2
    assert not any(store.iterdir())  # entries, temporaries and the emptied key folder are gone


def test_unreadable_entry_is_recomputed(tmp_path, spy):
    store = tmp_path / "store"
    ref = compute(small_config(tmp_path / "a", store))
    [info] = TableStore(store).info()
    shutil.rmtree(store / info.key / "z0-w0" / "RC" / "death")  # damaged by hand, not by a writer
    n = len(spy)
    again = compute(small_config(tmp_path / "b", store))
    assert len(spy) == n + 1
    assert_same(ref, again)
    assert TableStore(store).read(info.key, 0, False, "RC") is not None  # replaced by a valid entry


# -- configuration ------------------------------------------------------------------------------------


def test_store_disabled(tmp_path, monkeypatch, spy):
    env_store = tmp_path / "env-store"
    monkeypatch.setenv("HRA_TABLE_STORE", str(env_store))
    cfg = small_config(tmp_path / "a", False)
    assert tablestore.store_for_config(cfg) is None
    compute(cfg)
    compute(cfg)
    assert not env_store.exists()
    assert len(spy) == 2
    monkeypatch.setenv("HRA_TABLE_STORE", "off")
    assert tablestore.store_for_config(cfg.with_updates(compute={"table_store": None})) is None


def test_default_location(tmp_path, monkeypatch):
    from platformdirs import user_cache_dir

    cfg = small_config(tmp_path / "a", False).with_updates(compute={"table_store": None})
    monkeypatch.setenv("HRA_TABLE_STORE", str(tmp_path / "s"))
    assert tablestore.store_for_config(cfg).root == tmp_path / "s"
    monkeypatch.delenv("HRA_TABLE_STORE")
    assert tablestore.default_store_path() == Path(user_cache_dir("groningen-hra")) / "tables"
    # relative paths in the config are relative to the config's folder
    rel = cfg.with_updates(compute={"table_store": "tables"})
    assert tablestore.store_for_config(rel).root == cfg.base_dir / "tables"


def test_config_rejects_true(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        small_config(tmp_path / "a", False).with_updates(compute={"table_store": True})


# -- demo model and V7 preset -----------------------------------------------------------------------


@pytest.mark.slow
def test_demo_model_bit_identical(tmp_path, spy):
    cfg = hra.demo_config(n_buildings=15, seed=4, directory=tmp_path / "demo", realisations=30, years=(2025,), workers=1)
    cfg = cfg.with_updates(ground_motion={"quadrature_points": 6}, compute={"progress": False})
    ref = compute(cfg.with_updates(compute={"table_store": False}))
    n = len(spy)
    store = str(tmp_path / "store")
    cold = compute(cfg.with_updates(compute={"table_store": store}))
    warm = compute(cfg.with_updates(compute={"table_store": store}))
    assert len(spy) == 2 * n
    assert_same(ref, cold)
    assert_same(ref, warm)


@pytest.mark.parametrize("exact_mean", [False, True])
def test_zone_tables_bit_identical_both_mean_paths(tmp_path, exact_mean):
    """Demo GMM (12 physical branches): the large-tree path sums the tree mean over the branches,
    so their order must not depend on whether the tables were read or computed."""
    cfg = hra.demo_config(n_buildings=15, seed=4, directory=tmp_path / "demo", realisations=30, years=(2025,), workers=1)
    cfg = cfg.with_updates(ground_motion={"quadrature_points": 4}, compute={"table_store": False})
    prep = engine.prepare(cfg)
    sel = engine.select_realisations(prep)
    _, t_lists = engine.table_rows(prep)
    sizes, weights = engine.model_factors(prep)
    zone, wierde = prep.sites[0]
    t = t_lists[0][:3]
    args = (prep.gmm, prep.fragility, zone, [wierde], prep.magnitude, prep.distance_nodes_km, [t], sel.combo_model,
            sizes, weights, prep.median_map, exact_mean)
    ref = engine.zone_tables(*args)
    handle = tablestore.StoreHandle(TableStore(tmp_path / "store"), "k")
    cold = engine.zone_tables(*args, store=handle)
    warm = engine.zone_tables(*args, store=handle)
    assert handle.store.stats.written == len(t) and handle.store.stats.read == len(t)
    for other in (cold, warm):
        np.testing.assert_array_equal(ref[0][0], other[0][0])
        np.testing.assert_array_equal(ref[0][1], other[0][1])
    # read with work buffers shared from call to call (a run's zones, BufferPool): the tables read into the
    # previous call's memory, also with fewer typologies (larger buffers, stale values beyond) and again more
    pool = engine.BufferPool()
    few = args[:6] + ([t[:2]],) + args[7:]
    ref_few = engine.zone_tables(*few)
    for a, r in ((args, ref), (few, ref_few), (args, ref)):
        got = engine.zone_tables(*a, store=handle, pool=pool)
        np.testing.assert_array_equal(r[0][0], got[0][0])
        np.testing.assert_array_equal(r[0][1], got[0][1])
    assert len(pool._free) == 1 and any(k.startswith("stream") for k in pool._free[0])


@pytest.mark.slow
def test_v7_preset_bit_identical(tmp_path, spy, monkeypatch):
    from hra.config import load_config
    from hra.inputs import modeldata as md

    md.model_dir_or_skip()
    d = tmp_path / "v7"
    hra.demo_config(n_buildings=200, seed=2, directory=d, model="groningen-v7")
    import pandas as pd

    b = pd.read_csv(d / "buildings.csv", keep_default_na=False)
    wierde = b["wierde"].astype(str).isin(["1", "True"])
    single = b["s_probability_1"].astype(float) == 1.0  # one typology candidate: a small table stage
    zone = b.loc[wierde, "zone"].iloc[0]
    pick = pd.concat([b[wierde & (b["zone"] == zone)].head(1), b[~wierde & single & (b["zone"] == zone)].head(2),
                      b[~wierde & single & (b["zone"] != zone)].head(1)])
    assert len(pick) == 4
    pick.to_csv(d / "buildings.csv", index=False)
    cfg = load_config(d / "run.toml").with_updates(
        run={"years": [2025], "realisations": 20},
        source={"distance_nodes": 24, "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
        ground_motion={"quadrature": "fast", "rupture": "point"},
        compute={"workers": 1, "progress": False},
    )
    quadratures = []  # the R_rup rules are computed only where some table is (not in a warm run)
    real_warm = engine.condtables.warm_rrup_cache
    monkeypatch.setattr(engine.condtables, "warm_rrup_cache", lambda *a: quadratures.append(1) or real_warm(*a))
    ref = compute(cfg.with_updates(compute={"table_store": False}))
    n = len(spy)
    store = tmp_path / "store"
    cold = compute(cfg.with_updates(compute={"table_store": str(store)}))
    assert len(quadratures) == 2
    warm = compute(cfg.with_updates(compute={"table_store": str(store)}))
    assert len(spy) == 2 * n and len(quadratures) == 2
    assert_same(ref, cold)
    assert_same(ref, warm)
    [info] = TableStore(store).info()
    prep = engine.prepare(cfg)
    _, t_lists = engine.table_rows(prep)
    by_zone: dict[int, list[int]] = {}
    for i, (z, _) in enumerate(prep.sites):
        by_zone.setdefault(z, []).append(i)
    # each site of a zone gets the typologies of the whole zone (computed together anyway)
    assert info.entries == sum(len(idx) * len(set().union(*(set(t_lists[i]) for i in idx))) for idx in by_zone.values())
    assert len(by_zone) == 2 and len(prep.sites) == 3
    assert info.description["gmm"]["file_checksums"] == prep.gmm.file_checksums != {}
    assert info.description["gmm"]["config"]["quadrature"] == "fast"
    # the option changes the key
    std = cfg.with_updates(ground_motion={"quadrature": "standard"})
    assert _key(std) != _key(cfg)


# -- CLI ------------------------------------------------------------------------------------------------


def _toml_config(tmp: Path, store: Path, stride: int = 1) -> Path:
    import tomli_w

    cfg = small_config(tmp, store)
    data = {
        "run": {"years": [2025], "realisations": "all", "keep_realisations": True},
        "source": {"rates": "rates.csv", "magnitude": {"b_value": [{"value": 0.9, "weight": 0.5}, {"value": 1.1, "weight": 0.5}],
                                                       "m_max": [{"value": 4.5, "weight": 0.6}, {"value": 5.5, "weight": 0.4}]},
                   **({"magnitude_table_stride": stride} if stride != 1 else {})},
        "ground_motion": dict(PARAMETRIC),
        "exposure": {"buildings": "buildings.csv"},
        "fragility": {"curves": "fragility.csv", "consequence": [{"factor": 0.8, "weight": 0.5}, {"factor": 1.2, "weight": 0.5}]},
        "compute": {"workers": 1, "table_store": str(store)},
    }
    assert cfg.base_dir == tmp
    (tmp / "run.toml").write_text(tomli_w.dumps(data))
    return tmp / "run.toml"


def test_cli_build_with_stride_2_stores_the_computed_nodes_a_run_expands(tmp_path, spy):
    """``magnitude_table_stride = 2``: ``hra tables build`` writes the entries at the computed magnitude
    nodes (without expanding them), a run then computes nothing and gives the bits of a run without a
    store, and ``hra tables info`` says what the entries hold."""
    from typer.testing import CliRunner

    from hra.cli.main import app
    from hra.config import load_config
    from hra.integration import magnitudes

    runner = CliRunner()
    store = tmp_path / "store"
    path = _toml_config(tmp_path / "cfg", store, stride=2)
    res = runner.invoke(app, ["tables", "build", str(path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 (site, typology) entries, 2 computed now" in res.output
    cfg = load_config(path)
    prep = engine.prepare(cfg)
    m_c = magnitudes.computed_nodes(prep.gmm, prep.magnitude).size
    assert m_c < prep.magnitude.nodes.size
    [entry_set] = TableStore(store).info()
    for entry in (store / entry_set.key).glob("z*/*"):
        tabs = TableStore(store).read(entry_set.key, *prep.sites[0], entry.name)
        assert {d.shape[-2] for d in tabs.values()} == {m_c}, entry
    n = len(spy)
    warm = compute(cfg)
    assert len(spy) == n  # the run reads everything
    assert_same(warm, compute(cfg.with_updates(compute={"table_store": False})))
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert res.exit_code == 0 and "magnitude_table_stride 2: entries hold the computed nodes" in res.output


def test_cli_build_info_clear(tmp_path, spy):
    from typer.testing import CliRunner

    from hra.cli.main import app
    from hra.config import load_config

    runner = CliRunner()
    store = tmp_path / "store"
    path = _toml_config(tmp_path / "cfg", store)
    res = runner.invoke(app, ["tables", "build", str(path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 (site, typology) entries, 2 computed now" in res.output
    res = runner.invoke(app, ["tables", "build", str(path), "--all-zones", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "3 (site, typology) entries, 1 computed now" in res.output  # TIM added, URM and RC kept
    n = len(spy)
    compute(load_config(path))
    assert len(spy) == n  # the run reads everything
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "1 model key(s), 3 entries" in res.output and "parametric" in res.output
    res = runner.invoke(app, ["tables", "clear", "--store", str(store), "--older-than", "1"])
    assert res.exit_code == 0 and "removed 0 entries" in res.output
    res = runner.invoke(app, ["tables", "clear", "--store", str(store)])
    assert res.exit_code == 0 and "removed 3 entries" in res.output
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert "0 model key(s), 0 entries" in res.output


def test_stale_keys_are_listed_warned_and_cleared_alone(tmp_path, caplog):
    """A model key written by another table format (or hra version) is never read by this version: `info`
    marks it, a run that writes tables warns about it, and `clear --stale` removes it and nothing else."""
    import json
    import logging

    from typer.testing import CliRunner

    from hra.cli.main import app
    from hra.config import load_config
    from hra.integration.tablestore import TABLE_FORMAT_VERSION, is_stale
    from hra.outputs import package_version

    runner = CliRunner()
    store = tmp_path / "store"
    path = _toml_config(tmp_path / "cfg", store)
    assert runner.invoke(app, ["tables", "build", str(path), "--no-progress"]).exit_code == 0
    (current,) = [p for p in store.iterdir() if p.is_dir()]
    desc = json.loads((current / "model.json").read_text())
    assert not is_stale(desc)
    assert is_stale({**desc, "table_format_version": TABLE_FORMAT_VERSION - 1})
    assert is_stale({**desc, "package_version": package_version() + ".old"})
    assert not is_stale({})  # nothing known: never called stale
    # a former format's key: a copy of the entries under another key, its model.json saying format - 1
    old = store / ("0" * 32)
    shutil.copytree(current, old)
    (old / "model.json").write_text(json.dumps({**desc, "table_format_version": TABLE_FORMAT_VERSION - 1}))
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert res.output.count("stale: this version never reads it") == 1 and "2 model key(s), 4 entries" in res.output
    assert "; 1 stale (" in res.output
    # a run that writes tables says so (the usual moment: the first run after an upgrade)
    shutil.rmtree(current)
    with caplog.at_level(logging.WARNING, logger="hra"):
        compute(load_config(path))
    assert "1 model key(s) written by another table format" in caplog.text and "clear --stale" in caplog.text
    res = runner.invoke(app, ["tables", "clear", "--store", str(store), "--stale"])
    assert res.exit_code == 0 and "removed 2 entries" in res.output, res.output
    assert not old.exists() and current.is_dir() and len(list(current.iterdir())) > 1  # the current key is kept
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert "1 model key(s), 2 entries" in res.output and "never reads" not in res.output


def test_cli_build_without_store_is_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    from hra.cli.main import app

    path = _toml_config(tmp_path / "cfg", tmp_path / "store")
    path.write_text(path.read_text().replace(f'table_store = "{tmp_path / "store"}"', "table_store = false"))
    res = CliRunner().invoke(app, ["tables", "build", str(path), "--no-progress"])
    assert res.exit_code == 2
    assert "table_store = false" in res.output


def test_a_run_that_fills_the_store_says_how_much_and_how_to_clean(tmp_path, monkeypatch, caplog):
    """The store is on by default in the user's cache: a run that adds more than
    ``engine.STORE_WARN_BYTES`` says how many bytes it added (the size of the entries on disk) and
    how to look at and clean the store; a warm run adds nothing and says nothing."""
    store = tmp_path / "store"
    monkeypatch.setattr(engine, "STORE_WARN_BYTES", 1000)
    with caplog.at_level("WARNING", logger="hra"):
        compute(small_config(tmp_path / "a", store))
    [msg] = [r.getMessage() for r in caplog.records if "added" in r.getMessage()]
    on_disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file() and f.name != "model.json")
    assert f"added {on_disk / 1e9:.1f} GB" in msg and "hra tables clear" in msg and "table_store = false" in msg
    assert on_disk > 1000
    caplog.clear()
    with caplog.at_level("WARNING", logger="hra"):
        compute(small_config(tmp_path / "b", store))
    assert not [r for r in caplog.records if "added" in r.getMessage()]


def test_entry_written_by_groups_and_read_by_branches(tmp_path):
    """An entry is filled a group of branches at a time (one chunk per branch) and read for a subset
    of its branches; it appears only when complete, and an incomplete one is never renamed into place."""
    store = TableStore(tmp_path)
    tabs = _tables(3)
    keys = sorted(tabs)
    w = store.writer("k", 1, False, "URM", keys, tabs[keys[0]].shape)
    w.put({k: tabs[k] for k in keys[:3]})
    assert store.read("k", 1, False, "URM") is None  # not there until committed
    w.put({k: tabs[k] for k in keys[3:]})
    assert w.commit() and store.stats.written == 1
    part = store.read("k", 1, False, "URM", branches=[keys[4], keys[1]])
    assert list(part) == [keys[1], keys[4]] and all(np.array_equal(part[k], tabs[k]) for k in part)
    assert store.read("k", 1, False, "URM", branches=[(9, 9)]) is None  # a missing branch: unreadable, removed
    w = store.writer("k", 1, False, "RC", keys, tabs[keys[0]].shape)
    w.put({keys[0]: tabs[keys[0]]})
    with pytest.raises(ValueError, match="never written"):
        w.commit()
    assert store.read("k", 1, False, "RC") is None
    assert not [p for p in (tmp_path / "k" / "z1-w0").iterdir() if p.name.startswith(TMP_PREFIX)]


def test_chunk_files_read_directly_equal_zarr_and_stay_fresh(tmp_path, monkeypatch):
    """Entries are written and read as chunk files (zarr v3 layout checked from the array's metadata)
    with the same values as through zarr both ways, a branch that zarr did not write (all zeros) included; a
    layout other than the writer's is read through zarr; an entry written anew is not served from
    the per-process cache of the old one."""
    import zarr

    store = TableStore(tmp_path)
    tabs = _tables(5)
    tabs[(1, 2)] = np.zeros_like(tabs[(1, 2)])  # zarr skips chunks equal to the fill value
    assert store.write("k", 2, False, "URM", tabs)
    path = store.entry_path("k", 2, False, "URM")
    arr = zarr.open_group(str(path), mode="r")["death"]
    assert tablestore._direct_layout(path / "death", arr.shape, arr.dtype) is not None
    direct = store.read("k", 2, False, "URM", [(1, 2), (0, 1)])
    stored = store.read("k", 2, False, "URM", [(0, 1)], as_stored=True)
    monkeypatch.setattr(tablestore, "_direct_layout", lambda *a: None)
    via_zarr = TableStore(tmp_path).read("k", 2, False, "URM", [(1, 2), (0, 1)])  # chunk files written by us
    assert TableStore(tmp_path).write("k", 2, False, "RC", tabs)  # chunks written by zarr
    monkeypatch.undo()
    zarr_written = store.read("k", 2, False, "RC")  # ... read from the chunk files
    assert all(np.array_equal(zarr_written[k], tabs[k]) for k in tabs)
    # the entries opened from their metadata and chunk files as zarr opens them (else through zarr)
    for nm in ("URM", "RC"):
        grp = zarr.open_group(str(store.entry_path("k", 2, False, nm)), mode="r")
        attrs, branch, shape, layout = tablestore._open_direct(store.entry_path("k", 2, False, nm))
        assert attrs == dict(grp.attrs) and attrs["typology"] == nm and shape == grp["death"].shape
        assert branch.dtype == np.int64 and np.array_equal(branch, grp["branch"][...]) and layout is not None
    monkeypatch.setattr(tablestore, "_open_direct", lambda *a: None)
    again = TableStore(tmp_path).read("k", 2, False, "URM", [(1, 2), (0, 1)])
    monkeypatch.undo()
    assert all(np.array_equal(again[k], direct[k]) for k in direct)
    assert direct.keys() == via_zarr.keys() == {(1, 2), (0, 1)}
    assert all(np.array_equal(direct[k], via_zarr[k]) and np.array_equal(direct[k], tabs[k]) for k in direct)
    assert stored[(0, 1)].dtype == np.float32 and np.array_equal(stored[(0, 1)], tabs[(0, 1)])
    assert not direct[(1, 2)].any()
    # a chunk file missing from an entry written here: a damaged entry, removed and computed again
    [first] = (path / "death").glob("c.0.*")  # one file per chunk, no folders (CHUNK_KEY_ENCODING)
    first.rename(tmp_path / "moved")
    assert TableStore(tmp_path).read("k", 2, False, "URM") is None and not path.exists()
    # another layout (two branches per chunk): not this module's, read through zarr
    other = tmp_path / "other"
    a = zarr.open_group(str(other), mode="w").create_array("death", shape=(4, 2, 3), chunks=(2, 2, 3), dtype="float32")
    assert tablestore._direct_layout(other / "death", a.shape, a.dtype) is None
    assert tablestore._open_direct(other) is None
    # zarr's default chunk keys (c/<branch>/0/...) with this module's chunks: read from the files too
    slash = tmp_path / "slash"
    vals = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 7
    b = zarr.open_group(str(slash), mode="w").create_array(
        "death", shape=vals.shape, chunks=(1, 3, 4), dtype="float32", compressors=tablestore._compressor())
    b[:] = vals
    lay = tablestore._direct_layout(slash / "death", b.shape, b.dtype)
    assert lay == ((3, 4), 48, "/") and (slash / "death" / "c" / "1" / "0" / "0").is_file()
    assert np.array_equal(tablestore._read_chunk(slash / "death", 1, lay, True), vals[1])
    # written anew with other values: the new entry is read, not the cached one
    new = _tables(6)
    assert store.write("k", 2, False, "URM", new)
    got = store.read("k", 2, False, "URM")
    assert all(np.array_equal(got[k], new[k]) for k in new)


def test_read_into_given_arrays(tmp_path, monkeypatch):
    """``read(out=...)`` decodes each branch straight into the given float32 arrays (views into a
    larger table, as the engine's (t, f, c, m, r) tables) with the values ``read`` returns, a branch
    that zarr left out (zeros) and the zarr path included; a chunk whose Blosc header gives another
    size, or arrays of another shape than the entry's, make the entry unreadable (removed, computed again);
    arrays of another type are refused."""
    store = TableStore(tmp_path)
    tabs = _tables(7)
    tabs[(1, 2)] = np.zeros_like(tabs[(1, 2)])
    assert store.write("k", 3, False, "URM", tabs)
    keys = [(0, 1), (1, 2)]
    big = np.full((2, 4) + tabs[keys[0]].shape, np.nan, dtype=np.float32)  # (typology, branch, f, c, m, r)
    got = store.read("k", 3, False, "URM", keys, out={k: big[1, n] for n, k in enumerate(keys)})
    assert all(np.shares_memory(got[k], big) and np.array_equal(got[k], tabs[k]) for k in keys)
    assert np.isnan(big[0]).all() and np.isnan(big[1, 2:]).all()  # nothing else written
    monkeypatch.setattr(tablestore, "_direct_layout", lambda *a: None)  # through zarr: the same
    big2 = np.full_like(big, np.nan)
    got = TableStore(tmp_path).read("k", 3, False, "URM", keys, out={k: big2[0, n] for n, k in enumerate(keys)})
    assert all(np.array_equal(got[k], tabs[k]) for k in keys)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="C-contiguous float32"):
        store.read("k", 3, False, "URM", keys, out={k: np.zeros(tabs[k].shape) for k in keys})
    assert store.read("k", 3, False, "URM", keys, out={k: np.zeros((2, 1, 5, 3), np.float32) for k in keys}) is None
    assert not store.entry_path("k", 3, False, "URM").exists()
    # a chunk whose header says another size (a damaged or foreign file): never decoded into the arrays
    assert store.write("k", 3, False, "RC", tabs)
    path = store.entry_path("k", 3, False, "RC")
    [chunk] = (path / "death").glob("c.0.*")
    raw = bytearray(chunk.read_bytes())
    raw[4:8] = (int.from_bytes(raw[4:8], "little") + 4).to_bytes(4, "little")
    chunk.write_bytes(bytes(raw))
    dest = np.zeros(tabs[(0, 0)].shape, np.float32)
    assert TableStore(tmp_path).read("k", 3, False, "RC", [(0, 0)], out={(0, 0): dest}) is None and not path.exists()


def test_chunks_are_decoded_without_the_interpreter_lock_and_checked_for_their_length(tmp_path, monkeypatch):
    """``_read_chunk`` decodes through c-blosc's ``blosc_decompress_ctx`` (ctypes, which lets go of the
    interpreter's lock: the other worker runs meanwhile) to the values numcodecs gives (the fallback); a
    chunk file cut short, or with bytes after its frame (the header's compressed size is not the file's),
    makes the entry unreadable (removed, computed again): never decoded past its bytes."""
    assert tablestore._blosc_decompress_ctx() is not None  # numcodecs carries c-blosc with its symbols
    store = TableStore(tmp_path)
    tabs = _tables(8)
    assert store.write("k", 4, False, "URM", tabs)
    got = store.read("k", 4, False, "URM")
    monkeypatch.setattr(tablestore, "_blosc_decompress_ctx", lambda: None)
    again = TableStore(tmp_path).read("k", 4, False, "URM")
    monkeypatch.undo()
    assert got.keys() == again.keys() == tabs.keys()
    assert all(np.array_equal(got[k], tabs[k]) and np.array_equal(again[k], tabs[k]) for k in tabs)
    for typ, edit in (("cut", lambda b: b[:-5]), ("long", lambda b: b + bytes(3))):
        assert store.write("k", 4, False, typ, tabs)
        path = store.entry_path("k", 4, False, typ)
        [chunk] = (path / "death").glob("c.0.*")
        chunk.write_bytes(edit(chunk.read_bytes()))
        assert TableStore(tmp_path).read("k", 4, False, typ) is None and not path.exists()


#: Files of a stored entry besides its chunk files: zarr.json of the group, of ``branch`` and of ``death``,
#: and ``branch``'s one chunk (what a read opens before the chunks: the read-ahead asks for them too)
ENTRY_METADATA_FILES = 4


def test_prefetch_asks_for_every_chunk_file_of_the_zones(tmp_path, monkeypatch):
    """``prefetch`` hints the page cache for every file (the metadata, then each chunk file: one per GMM
    branch) of every entry of the zones asked (both wierde variants), nothing for other zones or a missing
    key, and reads stay the same."""
    store = TableStore(tmp_path)
    tabs = _tables(5)
    for zone, wierde, typ in ((1, False, "URM"), (1, True, "URM"), (1, False, "RC"), (2, False, "URM")):
        assert store.write("k", zone, wierde, typ, tabs)
    seen = []
    real = os.posix_fadvise

    def spy_advise(fd, off, n, adv):
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), adv))
        return real(fd, off, n, adv)

    monkeypatch.setattr(os, "posix_fadvise", spy_advise)
    assert store.prefetch("k", [1]) == 3 * (len(tabs) + ENTRY_METADATA_FILES)
    assert all(adv == os.POSIX_FADV_WILLNEED for _, adv in seen)
    sites = [Path(f) for f in store.site_folders("k", [1])]
    assert sorted(p for p, _ in seen) == sorted(str(f) for site in sites for f in site.rglob("*") if f.is_file())
    for site in sites:  # per site folder: every entry's metadata before the first chunk file
        kinds = ["chunk" if Path(p).parent.name == "death" and Path(p).name.startswith("c.") else "meta"
                 for p, _ in seen if Path(p).is_relative_to(site)]
        assert kinds == sorted(kinds, key=lambda k: k == "chunk") and kinds.count("meta") % ENTRY_METADATA_FILES == 0
    assert store.prefetch("k", [3]) == 0 and store.prefetch("other", [1, 2]) == 0
    got = store.read("k", 1, True, "URM")
    assert all(np.array_equal(got[k], tabs[k]) for k in tabs)
    assert store.prefetch("k", [1, 2], stop=lambda: True) == 0  # asked to stop: nothing more


def _until(cond, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_read_ahead_reads_each_group_in_order_at_most_one_ahead_of_the_run(tmp_path, monkeypatch):
    """``ReadAhead`` asks for the groups one after the other, never a group more than ``ahead`` past the
    one the run has reached (the first at once), skips the empty ones and stops when closed."""
    at = [-1]
    calls = []

    def will_need(folders, stop=None):
        calls.append(([Path(f).name for f in folders], at[0]))
        return len(folders)

    monkeypatch.setattr(tablestore.pagecache, "will_need", will_need)
    ra = tablestore.ReadAhead(TableStore(tmp_path), "k", [[4, 1], [], [7], [2], [9], [3]], ahead=1, process=False)
    ra.start()
    assert _until(lambda: ra.done == [0])
    time.sleep(0.05)
    assert calls == [(["z4-w0", "z4-w1", "z1-w0", "z1-w1"], -1)] and ra.done == [0]  # group 1 waits for group 0
    at[0] = 0
    ra.reached(0)
    assert _until(lambda: ra.done == [0, 1])  # group 1 is empty: no call; group 2 waits for group 1
    time.sleep(0.05)
    assert len(calls) == 1 and ra.done == [0, 1]
    at[0] = 3
    ra.reached(3)  # the run skipped ahead: groups 2 to 4 are read, in order; group 5 waits
    assert _until(lambda: ra.done == [0, 1, 2, 3, 4])
    time.sleep(0.05)
    assert [c[0][0] for c in calls] == ["z4-w0", "z7-w0", "z2-w0", "z9-w0"] and all(c[1] == 3 for c in calls[1:])
    assert ra.asked == [0, 2, 3, 4] and ra.files == [4, 2, 2, 2]
    ra.reached(2)  # never backwards
    ra.close(wait=True)
    assert ra.done == [0, 1, 2, 3, 4] and len(calls) == 4  # closed before group 5 was allowed


def test_read_ahead_reads_further_while_the_groups_ahead_fit_the_byte_budget(tmp_path, monkeypatch):
    """With ``sizes`` and ``budget_bytes`` groups past the ``ahead`` ones are read too, in order, while the
    groups read ahead of the run (after the group it is at) hold at most the budget; the ``ahead`` ones
    always (a group larger than the budget included)."""
    calls = []

    def will_need(folders, stop=None):
        calls.append(Path(folders[0]).name)
        return len(folders)

    monkeypatch.setattr(tablestore.pagecache, "will_need", will_need)
    with pytest.raises(ValueError, match="2 group sizes for 5 groups"):
        tablestore.ReadAhead(TableStore(tmp_path), "k", [[1], [2], [3], [4], [5]], sizes=[1, 2])
    ra = tablestore.ReadAhead(TableStore(tmp_path), "k", [[1], [2], [3], [4], [5]], ahead=1, process=False,
                              sizes=[3, 1, 1, 2, 5], budget_bytes=2.5).start()
    assert _until(lambda: ra.done == [0])  # group 0 (3 > 2.5: one ahead anyway); 0 + 1: 4 > 2.5
    time.sleep(0.05)
    assert ra.done == [0]
    ra.reached(0)  # ahead of group 0: group 1 (one ahead), group 2 (1 + 1 <= 2.5); 1 + 1 + 2 > 2.5
    assert _until(lambda: ra.done == [0, 1, 2])
    time.sleep(0.05)
    assert ra.done == [0, 1, 2]
    ra.reached(2)  # group 3 (one ahead); 2 + 5 > 2.5
    assert _until(lambda: ra.done == [0, 1, 2, 3])
    time.sleep(0.05)
    assert ra.done == [0, 1, 2, 3]
    ra.reached(3)
    assert _until(lambda: ra.done == [0, 1, 2, 3, 4])
    ra.close(wait=True)
    assert calls == ["z1-w0", "z2-w0", "z3-w0", "z4-w0", "z5-w0"]


def test_read_ahead_wait_asked_returns_once_the_group_is_asked_or_the_reading_ended(tmp_path, monkeypatch):
    """``wait_asked(g)`` returns True once every file of group g has been asked for, False at its timeout
    before, and False at once where the reading never started or has ended (closed, or past its last
    group): a run never waits for a read-ahead that will not come."""
    import threading

    release = threading.Event()

    def will_need(folders, stop=None):
        if Path(folders[0]).name == "z2-w0":
            release.wait(10)
        return len(folders)

    monkeypatch.setattr(tablestore.pagecache, "will_need", will_need)
    ra = tablestore.ReadAhead(TableStore(tmp_path), "k", [[1], [2], [3]], ahead=1, process=False)
    t = time.perf_counter()
    assert ra.wait_asked(0) is False and time.perf_counter() - t < 1  # not started: no wait
    ra.start()
    assert ra.wait_asked(0, timeout=10) is True
    assert ra.wait_asked(1, timeout=0.1) is False  # group 1 waits for the run to reach group 0
    ra.reached(0)
    assert ra.wait_asked(1, timeout=0.1) is False  # asked for, not yet done
    release.set()
    assert ra.wait_asked(1, timeout=10) is True and ra.done == [0, 1]
    ra.reached(1)
    assert ra.wait_asked(2, timeout=10) is True
    ra._thread.join(10)
    t = time.perf_counter()
    assert ra.wait_asked(5) is False and time.perf_counter() - t < 1  # past the last group: ended
    closed = tablestore.ReadAhead(TableStore(tmp_path), "k", [[1], [2]], ahead=0, process=False).start()
    assert closed.wait_asked(0, timeout=0.1) is False  # ahead 0: not before the run reaches it
    threading.Timer(0.2, closed.close).start()
    t = time.perf_counter()
    assert closed.wait_asked(0) is False and time.perf_counter() - t < 5  # closed while waiting


def test_read_ahead_closed_while_reading_stops_at_the_next_folder(tmp_path, monkeypatch):
    """A ``ReadAhead`` closed while it reads (in its own thread) stops before the next site folder."""
    import threading

    entered, release = threading.Event(), threading.Event()
    seen = []

    def will_need(folders, stop=None):
        for f in folders:
            if stop():
                break
            seen.append(Path(f).name)
            entered.set()
            release.wait(10)
        return len(seen)

    monkeypatch.setattr(tablestore.pagecache, "will_need", will_need)
    ra = tablestore.ReadAhead(TableStore(tmp_path), "k", [[1, 2], [4]], ahead=5, process=False).start()
    assert entered.wait(10)
    ra.close()
    release.set()
    ra._thread.join(10)
    assert not ra._thread.is_alive() and seen == ["z1-w0"] and ra.done == []


def test_read_ahead_child_process_asks_for_every_chunk_file(tmp_path):
    """The child process (``pagecache`` run as a script) answers each group with the number of files of
    its zones' entries (metadata and one chunk per GMM branch, both wierde variants), 0 for zones not
    stored; a closed ``ReadAhead`` stops it."""
    store = TableStore(tmp_path)
    tabs = _tables(5)
    for zone, wierde, typ in ((1, False, "URM"), (1, True, "URM"), (1, False, "RC"), (2, False, "URM"), (3, True, "RC")):
        assert store.write("k", zone, wierde, typ, tabs)
    ra = tablestore.ReadAhead(store, "k", [[1], [], [2, 3], [8], [1]], ahead=1).start()
    ra.reached(3)
    assert _until(lambda: ra.done == [0, 1, 2, 3, 4])
    per_entry = len(tabs) + ENTRY_METADATA_FILES
    assert ra._child is not None and ra.files == [3 * per_entry, 2 * per_entry, 0, 3 * per_entry]
    ra._thread.join(10)
    assert ra._child.returncode == 0  # ended at the end of its input
    ra.close(wait=True)
    # closed while waiting for the run: the child is stopped and the thread ends
    ra = tablestore.ReadAhead(store, "k", [[1], [2]], ahead=0).start()
    ra.reached(0)
    assert _until(lambda: ra.done == [0])
    ra.close(wait=True)
    assert not ra._thread.is_alive() and ra.done == [0] and ra._child.returncode is not None


def test_pagecache_script_answers_one_line_per_request(tmp_path):
    """``pagecache.main``: one JSON list of site folders per input line, one count per answer line (a line
    that is not JSON counts 0 files), :func:`chunk_files` lists the ``death/c...`` files only and
    :func:`site_files` the others (metadata) apart."""
    import io

    from hra.integration import pagecache

    store = TableStore(tmp_path)
    tabs = _tables(4)
    assert store.write("k", 5, False, "URM", tabs) and store.write("k", 5, False, "RC", tabs)
    folders = store.site_folders("k", [5, 6])
    files = pagecache.chunk_files(folders[0])
    assert len(files) == 2 * len(tabs) and all(Path(f).parent.name == "death" and Path(f).name.startswith("c")
                                               for f in files)
    # an entry with zarr's default chunk keys: death/c/<g>/0/0 (files in folders under c/)
    other = Path(folders[1]) / "RC" / "death"
    for g in range(3):
        (other / "c" / str(g) / "0").mkdir(parents=True)
        (other / "c" / str(g) / "0" / "0").write_bytes(b"x")
    (other / "zarr.json").write_text("{}")
    assert sorted(Path(f).relative_to(other).as_posix() for f in pagecache.chunk_files(folders[1])) == [
        f"c/{g}/0/0" for g in range(3)]
    meta, chunks = pagecache.site_files(folders[0])
    assert sorted(chunks) == sorted(files) and len(meta) == 2 * ENTRY_METADATA_FILES
    assert {Path(f).relative_to(folders[0]).as_posix().split("/", 1)[1] for f in meta} == {
        "zarr.json", "branch/zarr.json", "branch/c/0/0", "death/zarr.json"}
    assert pagecache.site_files(folders[1]) == ([str(other / "zarr.json")], pagecache.chunk_files(folders[1]))
    assert pagecache.site_files(str(tmp_path / "nowhere")) == ([], [])
    n = 2 * (len(tabs) + ENTRY_METADATA_FILES) + 3 + 1
    assert pagecache.will_need(folders) == n
    out = io.StringIO()
    assert pagecache.main(io.StringIO(json.dumps(folders) + "\n\nnot json\n" + json.dumps(folders[1:]) + "\n"), out) == 0
    assert out.getvalue().split() == [str(n), "0", "4"]


def test_streaming_read_drops_each_chunk_from_the_page_cache(tmp_path, monkeypatch):
    """``read(..., drop=True)`` gives the same tables and advises DONTNEED on each chunk file once read."""
    store = TableStore(tmp_path)
    tabs = _tables(6)
    assert store.write("k", 1, False, "URM", tabs)
    advised = []
    real = os.posix_fadvise

    def spy_advise(fd, off, n, adv):
        advised.append(adv)
        return real(fd, off, n, adv)

    monkeypatch.setattr(os, "posix_fadvise", spy_advise)
    plain = store.read("k", 1, False, "URM")
    assert advised == []
    got = store.read("k", 1, False, "URM", drop=True)
    assert advised == [os.POSIX_FADV_DONTNEED] * len(tabs)
    assert all(np.array_equal(got[k], plain[k]) and np.array_equal(got[k], tabs[k]) for k in tabs)


# -- the store's disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
def test_estimate_counts_the_missing_entries_and_their_raw_bytes(tmp_path, stride):
    """:func:`engine.store_bytes_needed` before a cold run: as many entries as the run writes, and
    bytes = their float32 arrays' bytes x ``STORE_COMPRESSION`` (the arrays' shapes read back from the
    entries: with ``magnitude_table_stride`` 2 the computed magnitude nodes only); 0 before the warm run."""
    import zarr

    store = tmp_path / "store"
    cfg = small_config(tmp_path / "a", store, source={"magnitude_table_stride": stride})
    prep = engine.prepare(cfg)
    handle = tablestore.handle_for(prep, TableStore(store))
    n, need = engine.store_bytes_needed(prep, handle)
    st = TableStore(store)
    compute(cfg.with_updates(compute={"table_store": str(store)}), prep=prep)
    entries = [p for p in (store / handle.key).glob("z*/*") if p.is_dir()]
    assert n == len(entries) > 0
    raw = sum(4 * int(np.prod(zarr.open_group(str(p), mode="r")["death"].shape)) for p in entries)
    assert need == pytest.approx(raw * tablestore.STORE_COMPRESSION, rel=1e-12)
    assert engine.store_bytes_needed(prep, tablestore.handle_for(prep, st)) == (0, 0)
    # the free space of the disk the store's folder is (or will be) on
    assert TableStore(tmp_path / "not" / "yet").free_bytes() == pytest.approx(shutil.disk_usage(tmp_path).free, rel=0.01)


def test_tables_that_would_not_fit_are_not_stored(tmp_path, monkeypatch, caplog, spy):
    """Where the new entries would leave less than ``STORE_RESERVE_BYTES`` free, the run stores none
    (a warning names the fix) and gives the results of a run without the store; the entries already
    there are still read."""
    ref = compute(small_config(tmp_path / "ref", False))
    store = tmp_path / "store"
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: tablestore.STORE_RESERVE_BYTES + 10)
    with caplog.at_level("WARNING", logger="hra"):
        res = compute(small_config(tmp_path / "a", store))
    assert_same(res, ref)
    [msg] = [r.getMessage() for r in caplog.records if "are not stored" in r.getMessage()]
    assert "free space" in msg and "table_store = false" in msg
    assert not [p for p in store.rglob("z*") if p.is_dir()] and not list(store.rglob(f"{TMP_PREFIX}*"))
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: 10**15)
    compute(small_config(tmp_path / "b", store))  # stored
    spy.clear()
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: 0)
    caplog.clear()
    with caplog.at_level("WARNING", logger="hra"):
        assert_same(compute(small_config(tmp_path / "c", store)), ref)
    assert spy == [] and "are not stored" not in caplog.text  # nothing new to store: read, no warning


def test_a_build_that_would_not_fit_is_refused_before_computing(tmp_path, monkeypatch, spy):
    """``hra tables build`` (:func:`hra.integration.tablebuild.build`) estimates its missing entries first (as a run does,
    :func:`tablestore.entry_bytes`) and refuses, computing nothing, where they would leave less than
    ``STORE_RESERVE_BYTES`` free: a usage error naming the need, the free space and the fix. With the
    entries there, nothing is missing and the same disk is fine."""
    from typer.testing import CliRunner

    from hra.cli.main import app

    store = tmp_path / "store"
    path = _toml_config(tmp_path / "cfg", store)
    prep = engine.prepare(small_config(tmp_path / "cfg", store))
    per = tablestore.entry_bytes(prep.gmm, prep.fragility, prep.magnitude, prep.distance_nodes_km)
    # two entries (URM and RC at the one site): 2 x per entry does not fit, 1 x would
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: tablestore.STORE_RESERVE_BYTES + 1.5 * per)
    res = CliRunner().invoke(app, ["tables", "build", str(path), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "the 2 missing entries need" in res.output and "nothing was computed" in res.output
    assert "--store" in res.output
    assert spy == [] and not [p for p in store.rglob("z*/*") if p.is_dir()]
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: tablestore.STORE_RESERVE_BYTES + 2.5 * per)
    assert CliRunner().invoke(app, ["tables", "build", str(path), "--no-progress"]).exit_code == 0
    monkeypatch.setattr(TableStore, "free_bytes", lambda self: 0)
    res = CliRunner().invoke(app, ["tables", "build", str(path), "--no-progress"])
    assert res.exit_code == 0 and "0 computed now" in res.output  # nothing missing: no check to fail


def test_a_full_disk_stops_the_writes_and_not_the_run(tmp_path, monkeypatch, caplog):
    """A write that finds the disk full (ENOSPC) ends the store's writes in this process with one
    warning (the case's second entry is not tried: one chunk write in all, where every entry would try
    one), the run finishes with the results of a run without the store, and no partial entry is left;
    the next run stores its entries."""
    import errno

    ref = compute(small_config(tmp_path / "ref", False))
    store = tmp_path / "store"
    real = tablestore._write_chunk
    calls = []

    def full_disk(death_dir, i, layout, data):
        calls.append(i)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tablestore, "_write_chunk", full_disk)
    with caplog.at_level("WARNING", logger="hra"):
        assert_same(compute(small_config(tmp_path / "a", store)), ref)
    full = [r.getMessage() for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full) == 1 and "table_store = false" in full[0] and "cannot write" not in caplog.text
    assert len(calls) == 1
    assert not [p for p in store.rglob("z*/*") if p.is_dir()]
    assert not list(store.rglob(f"{TMP_PREFIX}*"))
    monkeypatch.setattr(tablestore, "_write_chunk", real)
    assert_same(compute(small_config(tmp_path / "b", store)), ref)
    assert len([p for p in store.rglob("z*/*") if p.is_dir()]) == 2
