"""Zones computed in groups (issue #12: the whole field within the memory target).

The tables of the selected model combinations take ``8 x R x (combinations + branches)`` bytes per
(site, typology) row: ~20 MB for the field case (2,592 distance x azimuth x basis rows, ~940
combinations), ~100 GB for 160 zones. ``[compute] table_memory_gb`` bounds what a run holds at once:
:func:`hra.integration.engine.zone_groups` splits the zones into groups that fit, and
:func:`hra.integration.engine.compute` computes each group's tables, then its buildings, then
frees them. The reference for the results is the run with every zone in one group (the former
path): per-building results depend only on the building and the (site, typology) tables, so they
must be equal to the bit whatever the grouping, the chunk size or the workers.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

from pathlib import Path

import numpy as np
import pytest

import hra
from hra.core.fileio import KILL_ENV
from hra.integration import engine
from tests.test_faults import _env, _toml


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo region (8 zones), 600 buildings, 2 years, 50 realisations kept, a table store of its own."""
    store = tmp_path_factory.mktemp("store")
    cfg = hra.demo_config(n_buildings=600, realisations=50, years=(2025, 2026)).with_updates(
        run={"keep_realisations": True},
        compute={"workers": 1, "progress": False, "table_store": str(store), "resume": False})
    prep = engine.prepare(cfg)
    return cfg, prep, engine.select_realisations(prep)


def _zone_bytes(prep, sel) -> dict[int, int]:
    _, t_lists = engine.table_rows(prep)
    out: dict[int, int] = {}
    for i, (z, _) in enumerate(prep.sites):
        out[int(z)] = out.get(int(z), 0) + len(t_lists[i]) * engine.table_bytes_per_row(prep, sel)
    return out


def test_zone_groups_partition_the_zones_within_the_budget(demo):
    cfg, prep, sel = demo
    size = _zone_bytes(prep, sel)
    zones = sorted(size)
    assert len(zones) == 8
    # bytes per row by hand: 48 distance nodes (the default) x (combinations + 1 source column) x 8 bytes
    assert engine.table_bytes_per_row(prep, sel) == 8 * 48 * (sel.combo_model.size + 1)
    assert engine.zone_groups(prep, sel, sum(size.values())) == [zones]  # everything fits: one group
    biggest = max(size.values())
    for budget, workers in [(1.0, 1), (biggest, 2), (2.5 * biggest, 1), (3.5 * biggest, 2), (5 * biggest, 4)]:
        groups = engine.zone_groups(prep, sel, budget, workers)
        flat = [z for g in groups for z in g]
        assert sorted(flat) == zones and len(flat) == len(set(flat))  # a partition
        for g in groups:
            assert len(g) <= workers or sum(size[z] for z in g) <= budget
        per = len(groups[0])
        assert all(len(g) == per for g in groups[:-1])
        fit = max(1, int(budget // biggest))
        assert per == (max(fit - fit % workers, workers) if workers > 1 else fit)  # >= 1 zone per worker
        # largest zones first
        assert [size[z] for z in flat] == sorted((size[z] for z in flat), reverse=True)


@pytest.mark.parametrize("budget_gb,chunk,workers", [(1e-9, 2000, 1), (1e-9, 37, 2), (None, 71, 2)])
def test_results_do_not_depend_on_the_zone_groups(demo, monkeypatch, budget_gb, chunk, workers):
    cfg, prep, sel = demo
    ref = engine.compute(cfg, prep=prep)
    size = _zone_bytes(prep, sel)
    if budget_gb is None:  # three zones' worth: groups of 2 zones with 2 workers
        budget_gb = 3 * max(size.values()) / 1e9
    calls = []
    real = engine.build_tables

    def recording(prep_, sel_, ex=None, store=None, zones=None, pool=None, q_slot=0, started=None):
        tabs = real(prep_, sel_, ex, store, zones=zones, pool=pool, q_slot=q_slot, started=started)
        calls.append((zones, tabs.q.nbytes + tabs.qbar.nbytes, tabs.q.__array_interface__["data"][0], tabs.q.nbytes,
                      threading.current_thread().name))
        return tabs

    monkeypatch.setattr(engine, "build_tables", recording)
    # a grouped run reads the store as a stream (each chunk dropped from the page cache once read) and
    # asks for each group's chunk files ahead (a hint)
    from hra.integration.tablestore import TableStore

    from hra.integration import tablestore

    drops, made = [], []
    real_read = TableStore.read

    def read(self, *a, **kw):
        drops.append(kw.get("drop", False))
        return real_read(self, *a, **kw)

    class ReadAhead(tablestore.ReadAhead):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)
            self.waited = []

        def wait_asked(self, g, timeout=None):
            got = super().wait_asked(g, timeout)
            self.waited.append((g, got, g in self.done))
            return got

    monkeypatch.setattr(TableStore, "read", read)
    monkeypatch.setattr(tablestore, "ReadAhead", ReadAhead)
    got = engine.compute(cfg.with_updates(compute={"table_memory_gb": budget_gb, "chunk_buildings": chunk,
                                                   "workers": workers}), prep=prep)
    # with 2 threads a group's tables are computed while the group before runs its buildings (in a thread
    # of their own): two groups' tables at once, half the budget each
    overlap = workers > 1
    budget = budget_gb * 1e9 / (2 if overlap else 1)
    groups = engine.zone_groups(prep, sel, budget, workers)
    assert len(groups) > 1 and [c[0] for c in calls] == groups  # each group's tables once, in order
    assert [c[4] == "MainThread" for c in calls] == [True] + [not overlap] * (len(groups) - 1)
    assert drops and all(drops)
    # one read-ahead, closed by the run, that asked for every group once, in the run's order (one group ahead)
    [ra] = made
    ra.close(wait=True)
    assert ra.asked == list(range(len(groups))) and ra.groups == groups
    # each group's tables started once the read-ahead had asked for its files (ReadAhead.wait_asked)
    assert ra.waited == [(g, True, True) for g in range(len(groups))]
    # ... and further ahead while the groups read ahead hold at most the table memory budget: each group's
    # bytes estimated as its entries times entry_bytes, the entries counted here on disk (the reference)
    assert ra.budget == budget_gb * 1e9
    handle = tablestore.handle_for(prep, tablestore.store_for_config(cfg))
    per_entry = tablestore.entry_bytes(prep.gmm, prep.fragility, prep.magnitude, prep.distance_nodes_km)
    on_disk = [sum(len([e for e in Path(f).iterdir() if e.is_dir()]) for f in handle.store.site_folders(handle.key, g)
                   if Path(f).is_dir()) for g in groups]
    assert all(n > 0 for n in on_disk)
    np.testing.assert_allclose(ra.sizes, [n * per_entry for n in on_disk], rtol=1e-12)
    for zones, nbytes, *_ in calls:  # never more than the budget at once (one zone per worker may exceed it)
        assert nbytes == sum(size[z] for z in zones)
        assert len(zones) <= workers or nbytes <= budget
    # each group's q in the memory of the group's before it (one buffer of the run's pool, two with the next
    # group's tables beside the buildings; largest groups first)
    k = 2 if overlap else 1
    assert all(c[3] <= calls[i % k][3] and c[2] == calls[i % k][2] for i, c in enumerate(calls[k:], k))
    assert len({c[2] for c in calls}) == k
    for a, b in [(got.mean, ref.mean), (got.quantiles, ref.quantiles), (got.realisations, ref.realisations),
                 (got.realisation_weight, ref.realisation_weight)]:
        np.testing.assert_array_equal(a, b)
    assert ref.mean.max() > 0


def test_a_stuck_read_ahead_delays_a_group_at_most_the_wait_limit(demo, monkeypatch, caplog):
    """A read-ahead that never gets past its first group (a stuck child, a stalled disk) is a hint that
    failed: each later group's tables wait at most ``engine.READ_AHEAD_WAIT_S`` for it, then read their
    files themselves, say so, and give the same results."""
    from hra.integration import tablestore

    cfg, prep, sel = demo
    ref = engine.compute(cfg, prep=prep)
    budget_gb = 3 * max(_zone_bytes(prep, sel).values()) / 1e9
    groups = engine.zone_groups(prep, sel, budget_gb * 1e9 / 2, 2)
    assert len(groups) > 2
    release = threading.Event()
    real_ask = tablestore.ReadAhead._ask

    def stuck(self, zones):
        if zones != groups[0]:
            release.wait(60)
        return real_ask(self, zones)

    monkeypatch.setattr(tablestore.ReadAhead, "_ask", stuck)
    monkeypatch.setattr(engine, "READ_AHEAD_WAIT_S", 0.2)
    out = {}
    run = threading.Thread(target=lambda: out.setdefault("r", engine.compute(
        cfg.with_updates(compute={"table_memory_gb": budget_gb, "workers": 2}), prep=prep)))
    try:
        with caplog.at_level(logging.INFO, logger="hra"):
            run.start()
            run.join(50)
        assert not run.is_alive(), "the run waited for a stuck read-ahead"
    finally:
        release.set()
        run.join(60)
    got = out["r"]
    assert sum("not asked for after 0 s" in r.getMessage() for r in caplog.records) == len(groups) - 1
    np.testing.assert_array_equal(got.mean, ref.mean)
    np.testing.assert_array_equal(got.quantiles, ref.quantiles)


@pytest.mark.parametrize("when", ["before its tasks", "in its tasks"])
def test_a_failing_next_group_raises_its_error(demo, monkeypatch, when):
    """With 2 threads the next group's tables are computed in a helper thread beside the buildings; an
    error there (before its zone tasks are queued, or in them) ends the run with that error instead of
    a run that waits for the helper forever."""
    cfg, prep, sel = demo
    budget_gb = 3 * max(_zone_bytes(prep, sel).values()) / 1e9
    groups = engine.zone_groups(prep, sel, budget_gb * 1e9 / 2, 2)
    assert len(groups) > 2
    real = engine.build_tables
    real_task = engine._zone_table_task

    def failing(prep_, sel_, ex=None, store=None, zones=None, pool=None, q_slot=0, started=None):
        if zones == groups[1] and when == "before its tasks":
            raise ValueError("boom before")
        return real(prep_, sel_, ex, store, zones=zones, pool=pool, q_slot=q_slot, started=started)

    def failing_task(task):
        if task[0][2] == groups[1][0] and when == "in its tasks":
            raise ValueError("boom in")
        return real_task(task)

    monkeypatch.setattr(engine, "build_tables", failing)
    monkeypatch.setattr(engine, "_zone_table_task", failing_task)
    out: list = []

    def run():
        try:
            engine.compute(cfg.with_updates(compute={"table_memory_gb": budget_gb, "workers": 2,
                                                     "chunk_buildings": 71, "table_store": False}), prep=prep)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "the run waits for a failed helper"
    assert len(out) == 1 and isinstance(out[0], ValueError) and str(out[0]).startswith("boom")


def test_a_killed_grouped_run_resumes_without_the_finished_groups_tables(tmp_path, caplog, monkeypatch):
    """One zone per group, chunks of 50 of 300 buildings; killed (kill -9) after 4 chunks were saved. The
    rerun reads them, computes only the tables of groups with chunks left and equals an
    uninterrupted run."""
    cfg = hra.demo_config(n_buildings=300, directory=tmp_path, realisations=20, years=(2025,))
    out = tmp_path / "out"
    out.mkdir()
    compute = {"workers": 1, "chunk_buildings": 50, "progress": False, "table_store": False, "table_memory_gb": 1e-9}
    toml = _toml(cfg, tmp_path / "run.toml", compute,
                 {"path": str(out / "risk.zarr"), "overwrite": True})
    proc = subprocess.run([sys.executable, "-m", "hra.cli", "run", str(toml)], env=_env(**{KILL_ENV: "chunk-4"}),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert len(list((out / ".risk.zarr.partial").glob("chunk-*.npz"))) == 4

    loaded = hra.load_config(toml)
    prep = engine.prepare(loaded)
    sel = engine.select_realisations(prep)
    groups = engine.zone_groups(prep, sel, 1.0)
    index = [engine.chunk_index(prep, 50, g) for g in groups]
    done_groups = 0
    n = 0
    for g in index:  # groups whose chunks are all among the first 4
        if n + len(g) <= 4:
            done_groups += 1
        n += len(g)
    assert done_groups >= 1  # (else the test would not test the skip)
    calls = []
    real = engine.build_tables

    def counting(*a, **kw):
        calls.append(kw.get("zones"))
        return real(*a, **kw)

    monkeypatch.setattr(engine, "build_tables", counting)
    caplog.set_level(logging.INFO, logger="hra")
    resumed = hra.run(loaded, progress=False)
    n_chunks = sum(len(g) for g in index)
    assert f"resuming: 4 of {n_chunks} building chunks done" in caplog.text
    assert calls == groups[done_groups:]
    whole = hra.run(loaded.with_updates(compute={"resume": False, "table_memory_gb": 100.0}), progress=False, write=False)
    for name in ("lpr_mean", "lpr_p50", "lpr_p90"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


@pytest.mark.parametrize("workers", [1, 2])
def test_stage_cpu_seconds_count_every_task_on_every_thread(demo, monkeypatch, workers):
    """``timings["tables_cpu_s"]`` / ``["buildings_cpu_s"]`` against a known cost: each zone task and each
    building chunk first burns 30 ms of its thread's CPU, so each stage's count is at least its tasks x 30 ms
    (a thread's tasks left out, or one stage's counted as the other's, fails), and the two together are at
    most the process's CPU time over the run (a task counted twice fails)."""
    cfg, prep, sel = demo
    burn_s = 0.03
    n = {"tables": 0, "buildings": 0}
    real_zone, real_chunk = engine.zone_tables, engine.run_chunk

    def burn(stage):
        n[stage] += 1
        t = time.thread_time()
        while time.thread_time() - t < burn_s:
            pass

    def zone_tables(*a, **kw):
        burn("tables")
        return real_zone(*a, **kw)

    def run_chunk(*a, **kw):
        burn("buildings")
        return real_chunk(*a, **kw)

    monkeypatch.setattr(engine, "zone_tables", zone_tables)
    monkeypatch.setattr(engine, "run_chunk", run_chunk)
    # (warm_kernels calls run_chunk once to compile it: preparation, not a building chunk; the fixture's run
    # has compiled the kernels already)
    monkeypatch.setattr(engine, "warm_kernels", lambda dtype=None: None)
    size = _zone_bytes(prep, sel)
    budget_gb = 3 * max(size.values()) / 1e9  # zone groups: several table stages, several building passes
    c0 = time.process_time()
    got = engine.compute(cfg.with_updates(compute={"table_memory_gb": budget_gb, "chunk_buildings": 53,
                                                   "workers": workers}), prep=prep)
    process_cpu = time.process_time() - c0
    tim = got.timings
    assert n["tables"] == len(size) and n["buildings"] >= 4 * workers  # every zone; several chunks per worker
    assert tim["tables_cpu_s"] >= n["tables"] * burn_s
    assert tim["buildings_cpu_s"] >= n["buildings"] * burn_s
    assert tim["tables_cpu_s"] + tim["buildings_cpu_s"] <= process_cpu + 0.01


def test_kernel_compilation_counts_as_preparation_not_as_the_building_pass(demo, monkeypatch):
    """The building pass's kernels are compiled (or loaded from numba's cache) before the table stage
    (``warm_kernels``: ~70 s from a new install); ``timings["prepare_s"]`` holds that time, not
    ``["buildings_s"]``: a 1.5 s ``warm_kernels`` is in the first, and the second is shorter than it."""
    cfg, prep, sel = demo
    real = engine.warm_kernels

    def slow_warm_kernels(dtype=np.float64):
        time.sleep(1.5)
        real(dtype)

    monkeypatch.setattr(engine, "warm_kernels", slow_warm_kernels)
    tim = engine.compute(cfg, prep=prep).timings
    assert tim["prepare_s"] >= 1.5
    assert tim["buildings_s"] < 1.5
    assert tim["total_s"] >= tim["prepare_s"] + tim["tables_s"] + tim["buildings_s"] - 1e-6


def test_group_store_bytes_count_every_typology_of_a_zone_at_each_of_its_sites(monkeypatch):
    """``_group_store_bytes`` (the read-ahead's byte budget): a zone task stores every typology of its zone
    at each of its sites (with and without wierde), so a group's entries are, by hand: zone 5, typologies
    {0, 1, 2} at 2 sites = 6; zone 7, 1 typology at 1 site = 1; a zone without sites 0; an empty group 0."""
    from types import SimpleNamespace

    prep = SimpleNamespace(sites=[(5, False), (5, True), (7, False)], gmm=None, fragility=None, magnitude=None,
                           distance_nodes_km=None)
    monkeypatch.setattr(engine, "table_rows",
                        lambda p, zones=None: (None, [np.array([0, 2]), np.array([1]), np.array([3])]))
    monkeypatch.setattr(engine, "entry_bytes", lambda *a: 10.0)
    assert engine._group_store_bytes(prep, [[5], [7, 9], []]) == [60.0, 10.0, 0.0]
