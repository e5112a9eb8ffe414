"""Hazard-map benchmark: mean hazard on a node grid over the field with the full GMM V7 tree.

The case is the V7 demo (:func:`hra.demo_config` with ``model="groningen-v7"``: 2 source branches,
6 Mmax branches, the full V7 tree with 46 virtual median branches for w(M), finite ruptures,
standard quadrature), one year, the mean curves of ``--imt`` (default PGA, SA(0.3), SA(1)) at
:func:`hra.integration.hazard.hazard_grid` nodes (``--spacing-m``, default 1000 m: every node of the
source box inside the V6 zonation). Target: ~2,000 sites, 3 IMs, <= 10 min on 2 cores.

The work is one table per (site-response zone, IM), shared by all sites of the zone, plus a
cheap per-site contraction. ``--max-sites N`` keeps the first N nodes (sorted by zone, so that
whole zones are timed); the script prints the number of nodes and zones of the full grid, the
wall-clock and CPU (process) time of the subset, the time per (zone, IM) table and per site, and
the extrapolation to the full grid: ``zones x IMs x table + sites x IMs x site`` (1 process;
tables of different zones are independent, so 2 processes halve it). On a machine shared with
other jobs the CPU time is the better measure: the last line charges all CPU time of the subset
to its (zone, IM) tables and extrapolates that (with ``[compute] workers`` > 1 the tables run on
the executor's threads, whose summed task times exceed the wall clock). That charges the once-per-run
setup (the model, the rates, the strike model's R_rup quadratures: seconds) to every table; the
marginal estimate charges it once: after an untimed warm-up (compilation, imports) the script also
runs the first two zones alone, and ``(CPU(subset) - CPU(2 zones)) / (tables(subset) - tables(2
zones))`` is the CPU of one more (zone, IM) table with its sites; the full grid is then the setup
plus tables x that (``--no-marginal`` skips these runs).

Usage::

    python benchmarks/hazard_map.py --max-sites 200          # subset, extrapolated
    python benchmarks/hazard_map.py --imt PGA --max-sites 50 # check (minutes)
    python benchmarks/hazard_map.py --imt PGA,SA(0.3) --max-sites 30

Needs the public model tables (``$HRA_MODEL_DIR``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacing-m", type=float, default=1000.0)
    ap.add_argument("--imt", action="append", default=None)
    ap.add_argument("--max-sites", type=int, default=None)
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--no-marginal", action="store_true", help="skip the warm-up and the two-zone run")
    args = ap.parse_args()
    imts = [i for a in args.imt for i in a.split(",")] if args.imt else ["PGA", "SA(0.3)", "SA(1)"]

    import hra
    from hra.chain import make_gmm
    from hra.integration.hazard import hazard_curves, hazard_grid, site_zones

    with tempfile.TemporaryDirectory() as d:
        cfg = hra.demo_config(50, seed=1, directory=d, model="groningen-v7")
        grid = hazard_grid(cfg, args.spacing_m, args.year)
        gmm = make_gmm(cfg)
        grid["zone"] = site_zones(cfg, gmm, grid["x"].to_numpy(), grid["y"].to_numpy())
        grid = grid.sort_values(["zone", "id"], kind="stable").reset_index(drop=True)
        n_sites, n_zones = len(grid), grid["zone"].nunique()
        sub = grid if args.max_sites is None else grid.iloc[: args.max_sites]
        print(f"grid: {n_sites} nodes at {args.spacing_m:g} m in {n_zones} zones; timing {len(sub)} sites "
              f"in {sub['zone'].nunique()} zones, IMs {imts}")
        if not args.no_marginal:
            # warm-up (untimed): numba compilation / cache loading and lazy imports, paid once per process
            hazard_curves(cfg, sub.iloc[:1], imts=imts[:1], levels_g=[0.01, 0.1], quantiles=[], years=[args.year],
                          progress=False)
            # the first two zones: each run pays the same per-run setup (the model, the rates, the
            # R_rup quadratures), so the difference to the whole subset is the cost of its other tables
            first = sub[sub["zone"].isin(sub["zone"].unique()[:2])]
            c1 = time.process_time()
            hazard_curves(cfg, first, imts=imts, quantiles=[], years=[args.year], progress=False)
            cpu_first = time.process_time() - c1
        t0, c0 = time.perf_counter(), time.process_time()
        hc = hazard_curves(cfg, sub, imts=imts, quantiles=[], years=[args.year], progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        import json

        tab = json.loads(hc.attrs["provenance"])["timings_s"]["tables"]
        n_tab = sub["zone"].nunique() * len(imts)
        per_tab = tab / n_tab
        per_site = max(wall - tab, 0.0) / (len(sub) * len(imts))
        cpu_share = cpu / wall if wall > 0 else 1.0
        est = n_zones * len(imts) * per_tab + n_sites * len(imts) * per_site
        print(f"subset: wall {wall:.1f} s, CPU {cpu:.1f} s (CPU/wall {cpu_share:.2f}); tables {tab:.1f} s "
              f"= {per_tab:.2f} s per (zone, IM); {per_site * 1000:.1f} ms per (site, IM)")
        print(f"full grid, 1 process: {est:.0f} s wall at this load, {est * cpu_share:.0f} s CPU "
              f"(~{est * cpu_share / 2:.0f} s on 2 dedicated cores)")
        # the measure that holds on a shared machine and with the executor's threads: all CPU time
        # of the subset (tables, sites, the once-per-run setup: model, rates, R_rup quadratures)
        # charged to its (zone, IM) tables
        cpu_tab = cpu / n_tab
        est_cpu = n_zones * len(imts) * cpu_tab
        print(f"CPU per (zone, IM), everything included: {cpu_tab:.2f} s; full grid ({n_zones} zones x "
              f"{len(imts)} IMs): {est_cpu:.0f} s CPU, ~{est_cpu / 2:.0f} s on 2 cores")
        n_first = first["zone"].nunique() * len(imts) if not args.no_marginal else n_tab
        if not args.no_marginal and n_tab > n_first:
            # the setup once, not once per table: setup + tables x marginal CPU per table (its sites included)
            marginal = (cpu - cpu_first) / (n_tab - n_first)
            setup = max(cpu - n_tab * marginal, 0.0)
            for label, zones in ((f"this grid ({n_zones} zones)", n_zones), ("~2,000-node field grid (~150 zones)", 150)):
                total = setup + zones * len(imts) * marginal
                print(f"marginal CPU per (zone, IM): {marginal:.2f} s (2 zones: {cpu_first:.1f} s CPU), per-run setup "
                      f"{setup:.1f} s; {label} x {len(imts)} IMs: {total:.0f} s CPU, ~{total / 2 / 60:.1f} min on 2 cores")

if __name__ == "__main__":
    main()
