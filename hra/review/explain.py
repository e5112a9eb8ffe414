"""Explain one building's LPR: disaggregation of its logic-tree mean and per-node sensitivities.

:func:`explain` recomputes a building from the config of a run (no stored realisations needed)
with the engine's own model objects and table functions (:func:`hra.chain.prepare`,
:func:`hra.integration.engine.physical_death_tables`, :class:`hra.integration.engine.EngineDeath`,
:meth:`hra.inputs.source.MagnitudeBins.bin_terms`, :func:`hra.integration.kernels.distance_histogram`)
and splits its mean LPR of one year

* by magnitude bin, and by magnitude bin x hypocentral-distance bin (``magnitude``,
  ``magnitude_distance``; a source cell's share goes to the bin of its centre's hypocentral
  distance, whatever distance nodes its rate is interpolated over);
* by source cell (``source_cell``: the 10 largest cells with their share and epicentral
  distance, the rest in one row);
* by typology candidate (``typology``), by collapse state (``state``: CS1..CS3 and the direct
  outside term of chimneys, which has no collapse state) and by where the person is
  (``inside_outside``: inside, outside next to the building, chimney);

each of these sums to ``lpr_mean`` (to rounding), and gives per logic-tree node the mean LPR
conditional on each branch (``node:<name>``; these do not sum to anything). For the magnitude-
dependent median weights w(M) of GMM V7 the ``node:gmm_median`` rows are the physical branches
fixed at every magnitude.

How the split is exact
----------------------
The engine's mean is ``sum_j p_j sum_r Hbar[r] Qbar[t_j, r]`` with ``Hbar`` the building's rate
per distance node (source branches weighted) and ``Qbar`` the tree-mean death probability per
event, integrated over magnitude. ``H`` is a sum over source cells, so the cell split is exact;
``Qbar`` is a weighted sum of magnitude integrals, each a sum of per-bin terms
(:meth:`~hra.inputs.source.MagnitudeBins.bin_terms`), so the magnitude split is exact. The death
probability is linear in the death probabilities per collapse state and in the presence inside,
so it is computed once for every part (state k inside, state k outside, chimney) with the same
ground-motion work (the parts as extra consequence columns). The log-linear magnitude interpolation
within a bin is not additive, so each bin's integral of the total is shared among the parts in
proportion to their own bin integrals (a factor that differs from 1 by the magnitude-discretisation
error only).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fragility.lognormal import FragilityModel
from hra.chain import MedianMap, Prepared, prepare
from hra.config import Config
from hra.core.logictree import LogicTree, Node
from hra.integration import condtables

#: Hypocentral-distance bin edges of the magnitude x distance split. [km]
DISTANCE_EDGES_KM = (0.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, math.inf)
#: Source cells listed one by one in the ``source_cell`` split.
TOP_CELLS = 10
#: Split names, in the order of :attr:`Explanation.splits`.
SPLITS = ("magnitude", "magnitude_distance", "source_cell", "typology", "state", "inside_outside")


class ExplainError(ValueError):
    """A building or run that cannot be explained; the message says what to fix."""


@dataclass
class Explanation:
    """The explanation of one building in one year.

    Attributes
    ----------
    building
        Building id.
    year
        Calendar year explained. [yr]
    lpr_mean
        Logic-tree mean LPR of the building in that year, recomputed. [yr^-1]
    splits
        Split name -> rows ``{"label": str, "lpr": float [yr^-1], ...}``. ``magnitude``,
        ``magnitude_distance``, ``source_cell``, ``typology``, ``state`` and ``inside_outside``
        each sum to ``lpr_mean``; ``node:<name>`` rows give the mean LPR conditional on each
        branch of that node and the branch ``weight`` (their weighted sum is ``lpr_mean``, except
        for ``gmm_median`` with magnitude-dependent weights w(M), whose rows carry the nominal
        weights of the model's tree).
    profile
        The risk profile (:func:`hra.policy.profiles.assign_profiles`, rule ``besluit-2019``) and
        the statistic, year and value that decide it (keys ``profile``, ``decisive_statistic``,
        ``decisive_year``, ``decisive_value``, ``threshold``, ``explanation``) and the building's
        ``lpr_mean``, ``lpr_p50``, ``lpr_p90`` per year (dicts year -> value). Where the run's years
        cannot decide a profile (e.g. no year in the long horizon), ``profile`` is ``None``, the
        explanation says why and the decisive year is the year of the highest mean LPR.
    """

    building: str
    year: int
    lpr_mean: float
    splits: dict[str, list[dict[str, Any]]]
    profile: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``hra explain --json`` shape: ``{"building", "year", "lpr_mean", "splits"}``."""
        return {"building": self.building, "year": int(self.year), "lpr_mean": float(self.lpr_mean),
                "splits": {k: [dict(r) for r in v] for k, v in self.splits.items()}}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def split(self, name: str):
        """One split as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.splits[name])

    def tornado(self) -> list[dict[str, Any]]:
        """Per node: the lowest and highest conditional mean and their branches, the widest first."""
        rows = []
        for name, r in self.splits.items():
            if not name.startswith("node:") or len(r) < 2:
                continue
            lo = min(r, key=lambda x: x["lpr"])
            hi = max(r, key=lambda x: x["lpr"])
            rows.append(dict(node=name[5:], low=lo["lpr"], low_branch=lo["label"], high=hi["lpr"],
                             high_branch=hi["label"], range=hi["lpr"] - lo["lpr"]))
        return sorted(rows, key=lambda x: -x["range"])


# ------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------


def explain(cfg_or_run, building_ids: str | Sequence[str], year: int | None = None,
            rule: str = "besluit-2019") -> "Explanation | list[Explanation]":
    """Explain the mean LPR of buildings (see the module docstring for the splits).

    Parameters
    ----------
    cfg_or_run
        A :class:`hra.config.Config`, a TOML config path, a risk Dataset written by ``hra run``
        (or its ``.zarr`` / ``.nc`` path): the building is recomputed from the run's config as
        recorded in its provenance (``config_resolved``; else the ``config_file`` it names).
    building_ids
        One building id (returns one :class:`Explanation`) or a sequence (returns a list).
    year
        Year to explain [yr]; default: the year that decides the building's risk profile.
    rule
        Risk-profile rule (:func:`hra.policy.profiles.load_rule`).

    Returns
    -------
    Explanation or list of Explanation
        Per building: ``lpr_mean`` [yr^-1] of the year, ``splits`` (name -> rows with ``label`` and
        ``lpr`` [yr^-1]; every split but the ``node:`` ones sums to ``lpr_mean``) and ``profile`` (the
        statistic and year deciding the risk profile); ``to_dict()`` gives the ``hra explain --json``
        shape.

    Examples
    --------
    >>> import hra
    >>> cfg = hra.demo_config(n_buildings=50, realisations=20, years=(2025,))  # doctest: +SKIP
    >>> e = hra.explain(cfg, "DEMO-000001")  # doctest: +SKIP
    >>> sorted(e.to_dict())  # doctest: +SKIP
    ['building', 'lpr_mean', 'splits', 'year']
    """
    cfg, ds = _config_of(cfg_or_run)
    single = isinstance(building_ids, str)
    ids = [building_ids] if single else [str(b) for b in building_ids]
    if not ids:
        raise ExplainError("no building id given; give at least one")
    prep = prepare(cfg)
    out = [_explain_one(prep, bid, year, ds, rule) for bid in ids]
    return out[0] if single else out


def _config_of(obj) -> tuple[Config, Any]:
    import xarray as xr

    from hra.config import load_config

    if isinstance(obj, Config):
        return obj, None
    if isinstance(obj, (str, Path)) and Path(obj).suffix == ".toml":
        return load_config(obj), None
    if isinstance(obj, (str, Path)):
        from hra.policy.profiles import open_risk

        p = Path(obj)
        if not p.exists():
            raise ExplainError(f"run {p} does not exist; give the .zarr/.nc output of `hra run` (or a config .toml)")
        ds = open_risk(p)
        where = str(p)
    elif isinstance(obj, xr.Dataset):
        ds, where = obj, "the risk Dataset"
    else:
        raise ExplainError(f"cannot explain from a {type(obj).__name__}; give a Config, a config .toml or a run (.zarr/.nc)")
    return run_config(ds, where), ds


def run_config(ds, where: str = "the risk Dataset") -> Config:
    """The config of a run, from its provenance (``config_resolved``, else the ``config_file``)."""
    from hra.config import load_config

    try:
        prov = json.loads(ds.attrs["provenance"])
    except (KeyError, ValueError):
        raise ExplainError(f"{where} has no readable provenance attribute; it is not the output of `hra run`") from None
    if prov.get("config_resolved"):
        return Config.model_validate(prov["config_resolved"])
    path = prov.get("config_file")
    if path and Path(path).is_file():
        return load_config(path)
    raise ExplainError(
        f"{where} records neither the resolved config nor an existing config file (config_file = {path!r}); "
        "rerun it with this version of hra, or pass the run's Config (hra.explain(cfg, ...))")


# ------------------------------------------------------------------------------------------
# one building
# ------------------------------------------------------------------------------------------


def _explain_one(prep: Prepared, bid: str, year: int | None, ds, rule: str) -> Explanation:
    b = prep.buildings
    where = np.flatnonzero(np.asarray(b.ids, dtype=str) == bid)
    if where.size == 0:
        raise ExplainError(f"building {bid!r} is not in the exposure {prep.cfg.exposure.buildings}; check the id")
    i = int(where[0])
    profile = _profile(prep, i, ds, rule)
    years = [int(y) for y in prep.years]
    if year is None:
        year = int(profile["decisive_year"])
    if int(year) not in years:
        raise ExplainError(f"year {year} is not a year of this run ({', '.join(map(str, years))}); use one of those")
    yi = years.index(int(year))
    d = BuildingDisaggregation.compute(prep, i)
    return d.explanation(bid, yi, int(year), profile)


def _profile(prep: Prepared, i: int, ds, rule: str) -> dict[str, Any]:
    """Risk profile of building i: from the run's Dataset, else from the engine run for it alone."""
    import xarray as xr

    from hra.policy.profiles import ProfileError, assign_profiles

    bid = str(prep.buildings.ids[i])
    if ds is not None and bid in set(np.asarray(ds["building_id"].values, dtype=str)):
        j = int(np.flatnonzero(np.asarray(ds["building_id"].values, dtype=str) == bid)[0])
        one = ds.isel(building=[j])
    else:
        one = building_run(prep, i)
    keep = [v for v in one.data_vars if str(v).startswith("lpr_") and set(one[v].dims) == {"building", "year"}]
    one = xr.Dataset({v: one[v] for v in keep}, coords={c: one[c] for c in ("building_id", "x_rd", "y_rd", "year")},
                     attrs=one.attrs)
    try:
        row = assign_profiles(one, rule).iloc[0]
        out = {k: (row[k].item() if hasattr(row[k], "item") else row[k])
               for k in ("profile", "decisive_statistic", "decisive_year", "decisive_value", "threshold", "explanation")}
    except ProfileError as exc:  # e.g. too few years for the long horizon: no profile, say why
        j = int(np.argmax(one["lpr_mean"].values[0]))
        out = dict(profile=None, decisive_statistic="lpr_mean", decisive_year=int(one["year"].values[j]),
                   decisive_value=float(one["lpr_mean"].values[0, j]), threshold=None,
                   explanation=f"no risk profile: {exc}; the year shown is the year of the highest mean LPR")
    for v in ("lpr_mean", "lpr_p50", "lpr_p90"):
        if v in one:
            out[v] = {int(y): float(x) for y, x in zip(one["year"].values, one[v].values[0])}
    return out


def single_building(prep: Prepared, i: int) -> Prepared:
    """``prep`` restricted to building i (its site only): the engine gives it exactly the values of
    the full run (results do not depend on the other buildings)."""
    b = prep.buildings
    arr = b.arrays
    sub = {f.name: (getattr(arr, f.name)[i:i + 1] if isinstance(getattr(arr, f.name), np.ndarray) else getattr(arr, f.name))
           for f in dataclasses.fields(arr)}
    arrays = dataclasses.replace(arr, **sub)
    from hra.chain import Buildings

    one = Buildings(arrays, b.zone[i:i + 1].copy(), b.keys[i:i + 1].copy())
    site = prep.sites[int(prep.site_index[i])]
    return dataclasses.replace(prep, buildings=one, sites=[site], site_index=np.zeros(1, dtype=np.int64))


def building_run(prep: Prepared, i: int):
    """The risk Dataset of building i alone, computed by the engine (in-process)."""
    import hra.outputs as outputs
    from hra.integration.engine import compute

    cfg = prep.cfg.with_updates(compute={"workers": 1, "executor": "synchronous", "progress": False})
    one = single_building(prep, i)
    res = compute(cfg, progress=False, prep=one)
    b = one.buildings
    return outputs.build_dataset(ids=b.ids, x=b.x, y=b.y, years=one.years, mean=res.mean,
                                 quantiles={q: res.quantiles[:, :, k] for k, q in enumerate(cfg.run.quantiles)},
                                 prov={"config_sha256": cfg.sha256()})


# ------------------------------------------------------------------------------------------
# the disaggregation
# ------------------------------------------------------------------------------------------


def part_fragility(fr: FragilityModel) -> tuple[FragilityModel, int]:
    """``fr`` with each consequence branch c split into P = 2K + 1 parts (columns c * P + p):
    p < K the death inside in state p only, K <= p < 2K outside in state p - K only, p = 2K the
    direct (chimney) term only. Death per event is linear in these, so the parts sum to the total."""
    T, C, K = fr.p_death_inside.shape
    P = 2 * K + 1
    pin = np.zeros((T, C, P, K))
    pout = np.zeros((T, C, P, K))
    for k in range(K):
        pin[:, :, k, k] = fr.p_death_inside[:, :, k]
        pout[:, :, K + k, k] = fr.p_death_outside[:, :, k]
    kw: dict[str, Any] = dict(p_death_inside=pin.reshape(T, C * P, K), p_death_outside=pout.reshape(T, C * P, K),
                              consequence_node=Node("consequence", tuple(f"c{c}p{p}" for c in range(C) for p in range(P)),
                                                    tuple([1.0 / (C * P)] * (C * P))))
    if fr.direct_median_g is not None:
        dm = np.zeros((T, C, P))
        dm[:, :, 2 * K] = fr.direct_median_g
        kw["direct_median_g"] = dm.reshape(T, C * P)
        kw["direct_beta"] = np.repeat(np.asarray(fr.direct_beta)[:, :, None], P, axis=2).reshape(T, C * P)
    return dataclasses.replace(fr, **kw), P


def _rounded_total(d: np.ndarray, n_f: int, n_c: int, n_parts: int) -> np.ndarray:
    """A physical table of :func:`part_fragility`'s parts (t, f, c * P, m, r) summed over its parts and
    rounded to the tables' precision (:func:`hra.integration.kernels.round_table`): the table the run
    computes with the whole fragility model (the same value to the bit, unless the sum lies within
    float64 rounding of a half step of 16 significant bits), (t, f, c, m, r) float64."""
    from hra.integration.kernels import round_table

    T = d.shape[0]
    s = d.reshape((T, n_f, n_c, n_parts) + d.shape[3:]).sum(axis=3)
    return round_table(s).astype(np.float64)


def _alloc(total: np.ndarray, parts: np.ndarray, axis: int) -> np.ndarray:
    """Share ``total`` among ``parts`` (along ``axis``) in proportion to them."""
    s = parts.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, parts * (np.expand_dims(total, axis) / np.where(s > 0, s, 1.0)), 0.0)


@dataclass
class BuildingDisaggregation:
    """Everything the explanation of one building needs, for all years.

    ``qsplit[j, p, r, m]``: tree-mean death probability per event of candidate j split by part p
    (:func:`part_fragility`), distance node r and magnitude bin m; ``hist_cell[c, r, y, s]``: the
    building's rate per distance node from source cell c; ``cond[name]``: (labels, weights,
    conditional means (n_branches, y)).
    """

    prep: Prepared
    index: int
    candidates: np.ndarray  # (J,) typology index
    prob: np.ndarray  # (J,)
    qsplit: np.ndarray  # (J, P, R, M)
    n_states: int
    cells: np.ndarray  # (c,) indices of the cells in range
    hist_cell: np.ndarray  # (c, R, Y, S)
    cond: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]

    @classmethod
    def compute(cls, prep: Prepared, i: int) -> "BuildingDisaggregation":
        from hra.integration import magnitudes
        from hra.integration.engine import EngineDeath, model_factors, physical_death_tables

        b = prep.buildings
        ti, tp = b.typology_index[i], b.typology_prob[i]
        ok = (ti >= 0) & (tp > 0)
        cand, prob = np.asarray(ti[ok], np.int64), np.asarray(tp[ok], float)
        zone, wierde = prep.sites[int(prep.site_index[i])]
        t_sel = np.unique(cand)
        rows = np.searchsorted(t_sel, cand)
        fr_parts, P = part_fragility(prep.fragility)
        mag, r_nodes = prep.magnitude, prep.distance_nodes_km
        (nb, nx, G, F, C), (wb, wx, wg, wf, wc) = model_factors(prep)
        # the parts as computed (not rounded); the run's tables are their sums rounded to the tables'
        # precision, as the engine rounds its own (the explanation's totals are the run's, and the
        # parts share them in proportion)
        death = physical_death_tables(prep.gmm, fr_parts, zone, [bool(wierde)], mag, r_nodes, t_sel, rounded=False,
                                      expand=False)
        totals = [{k: _rounded_total(d, F, C, P) for k, d in death[0].items()}]
        plan = magnitudes.gmm_plan(prep.gmm, mag.nodes, getattr(mag, "table_stride", 1))
        if plan is not None:  # the run's tables: the computed nodes' rounded totals interpolated (and rounded)
            death = [{k: magnitudes.expand(d, plan, rounded=False) for k, d in death[0].items()}]
            totals = [{k: magnitudes.expand(d, plan, rounded=True) for k, d in totals[0].items()}]
        ed = EngineDeath(prep.gmm, prep.median_map, death, mag.nodes.size)
        ed_tot = EngineDeath(prep.gmm, prep.median_map, totals, mag.nodes.size)
        K = len(prep.fragility.states)
        exact_mean = prep.cfg.run.realisations == "all" or prep.model_tree.n_combinations <= 20_000

        def split_of(dd: np.ndarray, total: np.ndarray) -> np.ndarray:
            """(t, f, C*P, m, r) parts and their (t, f, C, m, r) total -> weighted (t, P, r, bins) with
            the bins' totals shared among the parts."""
            T = dd.shape[0]
            dd = dd.reshape(T, F, C, P, mag.nodes.size, -1)  # last: distance (x azimuth) nodes
            tot = mag.bin_terms(np.moveaxis(total, 3, -1))  # (b, x, t, f, c, r, bins)
            parts = mag.bin_terms(np.moveaxis(dd, 4, -1))  # (b, x, t, f, c, p, r, bins)
            return np.einsum("bxtfcprm,b,x,f,c->tprm", _alloc(tot, parts, 5), wb, wx, wf, wc)

        if exact_mean:
            qsplit = sum(wg[ge] * split_of(ed.death(0, ge), ed_tot.death(0, ge)) for ge in range(G))
        else:
            qsplit = split_of(ed.tree_mean(0), ed_tot.tree_mean(0))
        qsplit = qsplit[rows]  # (J, P, R, M)
        cells, hist_cell = cell_histograms(prep, i)
        cond = conditional_means(prep, totals, rows, prob, 1, hist_cell.sum(axis=0))
        return cls(prep, i, cand, prob, qsplit, K, cells, hist_cell, cond)

    # -- assembly ------------------------------------------------------------------------

    def explanation(self, bid: str, yi: int, year: int, profile: dict[str, Any]) -> Explanation:
        prep = self.prep
        w_s = np.asarray(prep.rates.branch_weights, float)
        hbar = np.einsum("crs,s->r", self.hist_cell[:, :, yi, :], w_s)  # (R,)
        # (J, P, R, M) weighted by the rates and candidate probabilities
        contrib = self.qsplit * hbar[None, None, :, None] * self.prob[:, None, None, None]
        total = float(contrib.sum())
        K = self.n_states
        splits: dict[str, list[dict[str, Any]]] = {}
        nodes = prep.magnitude.nodes
        by_m = contrib.sum(axis=(0, 1, 2))
        splits["magnitude"] = [dict(label=f"{nodes[m]:.2f}-{nodes[m + 1]:.2f}", lpr=float(by_m[m]), m_lo=float(nodes[m]),
                                    m_hi=float(nodes[m + 1])) for m in range(by_m.size)]
        # by the hypocentral distance of each source cell's centre: a cell's whole share goes to its
        # distance bin, whichever distance nodes its rate is interpolated over (two with the linear
        # rule, four with signed weights with the cubic one, [source] distance_interpolation)
        b = prep.buildings
        bx, by = float(b.x[self.index]), float(b.y[self.index])
        d_epi_km = np.hypot(prep.rates.x[self.cells] - bx, prep.rates.y[self.cells] - by) / 1000.0  # (c,)
        r_cell = np.sqrt(d_epi_km ** 2 + prep.cfg.source.depth_km ** 2)
        dbin = np.searchsorted(np.asarray(DISTANCE_EDGES_KM), r_cell, side="right") - 1
        h_cell = np.einsum("crs,s->cr", self.hist_cell[:, :, yi, :], w_s)  # (c, R)
        q_rm = np.einsum("jprm,j->rm", self.qsplit, self.prob)  # (R, M)
        by_cm = h_cell @ q_rm  # (c, M): summed over the cells, the magnitude split (to rounding)
        rows = []
        for m in range(by_m.size):
            for k in np.unique(dbin):
                v = float(by_cm[dbin == k, m].sum())
                if v == 0.0:
                    continue
                lo, hi = DISTANCE_EDGES_KM[k], DISTANCE_EDGES_KM[k + 1]
                hi_s = f"{hi:g}" if math.isfinite(hi) else ">"
                rows.append(dict(label=f"{nodes[m]:.2f}-{nodes[m + 1]:.2f} x R {lo:g}-{hi_s} km", lpr=v,
                                 m_lo=float(nodes[m]), m_hi=float(nodes[m + 1]), r_lo_km=float(lo),
                                 r_hi_km=float(hi) if math.isfinite(hi) else None))
        splits["magnitude_distance"] = rows
        # source cells: the cell's rate per node times the building's mean table per node
        per_cell = h_cell @ q_rm.sum(axis=1)  # (c,)
        order = np.argsort(-per_cell, kind="stable")
        rows = []
        for c in order[:TOP_CELLS]:
            ci = int(self.cells[c])
            cx, cy = float(prep.rates.x[ci]), float(prep.rates.y[ci])
            rows.append(dict(label=f"cell ({cx:.0f}, {cy:.0f})", lpr=float(per_cell[c]),
                             share=float(per_cell[c] / total) if total > 0 else 0.0, x_rd=cx, y_rd=cy,
                             distance_km=float(d_epi_km[c])))
        rest = order[TOP_CELLS:]
        if rest.size:
            v = float(per_cell[rest].sum())
            rows.append(dict(label=f"other {rest.size} cells", lpr=v, share=v / total if total > 0 else 0.0,
                             x_rd=None, y_rd=None, distance_km=None))
        splits["source_cell"] = rows
        typs = prep.fragility.typologies
        by_j = contrib.sum(axis=(1, 2, 3))
        splits["typology"] = [dict(label=typs[int(t)], lpr=float(v), probability=float(p))
                              for t, v, p in zip(self.candidates, by_j, self.prob)]
        by_p = contrib.sum(axis=(0, 2, 3))  # (P,)
        states = prep.fragility.states
        splits["state"] = ([dict(label=states[k], lpr=float(by_p[k] + by_p[K + k])) for k in range(K)]
                           + [dict(label="chimney (no collapse state)", lpr=float(by_p[2 * K]))])
        splits["inside_outside"] = [dict(label="inside", lpr=float(by_p[:K].sum())),
                                    dict(label="outside", lpr=float(by_p[K:2 * K].sum())),
                                    dict(label="chimney", lpr=float(by_p[2 * K]))]
        for name, (labels, weights, vals) in self.cond.items():
            splits[f"node:{name}"] = [dict(label=lab, lpr=float(v[yi]), weight=float(w))
                                      for lab, w, v in zip(labels, weights, vals)]
        return Explanation(bid, year, total, splits, profile)


def cell_histograms(prep: Prepared, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The building's rate per distance node from each source cell in range (the engine's kernel
    one cell at a time): cell indices (c,) and rates (c, R, Y, S) [yr^-1]; with a strike model R is
    (distance node, relative-azimuth node) flattened, as in the tables."""
    from hra.integration import kernels
    from hra.integration.engine import strike_mean_deg

    src = prep.cfg.source
    rg = prep.rates
    r = prep.distance_nodes_km
    bx, by = float(prep.buildings.x[i]), float(prep.buildings.y[i])
    d_km = np.hypot(rg.x - bx, rg.y - by) / 1000.0
    near = np.flatnonzero(d_km <= src.max_distance_km + src.cell_size_m / 1000.0)
    Y, S = rg.rate.shape[1], rg.rate.shape[2]
    rates = np.ascontiguousarray(rg.rate.reshape(rg.rate.shape[0], -1))
    n_a = condtables.n_azimuth(prep.gmm)
    n_rows = condtables.n_azimuth_rows(prep.gmm)
    harmonic = condtables.azimuth_harmonics(prep.gmm) > 0
    out = np.zeros((near.size, r.size * n_rows, Y * S))
    for n, c in enumerate(near):
        kernels.distance_azimuth_histogram_k(
            bx, by, rg.x[c:c + 1], rg.y[c:c + 1], rates[c:c + 1], src.depth_km, float(math.log(r[0])),
            float(math.log(r[1] / r[0])), r.size, n_rows, 1, strike_mean_deg(prep.gmm), harmonic,
            src.max_distance_km, src.cell_size_m, src.subcell_radius_km * 1000.0, src.subcell_divisions, out[n],
            src.distance_interpolation == "cubic")
    if harmonic:  # the engine's harmonic rows as weights of the azimuth nodes of the physical tables:
        # sum_k h_k (P q)_k = sum_a (P' h)_a q_a
        proj = condtables.azimuth_projection(prep.gmm)  # (K, A)
        out = np.einsum("ka,crkv->crav", proj, out.reshape(near.size, r.size, n_rows, Y * S))
    return near, out.reshape(near.size, r.size * n_a, Y, S)


def combination_values(prep: Prepared, death, median_map: MedianMap | None, cand_rows: np.ndarray,
                       prob: np.ndarray, n_parts: int, hist: np.ndarray) -> tuple[LogicTree, np.ndarray]:
    """Mean-over-candidates LPR of every (source, b, Mmax, engine-GMM nodes..., fragility,
    consequence) combination: the tree (of those nodes) and values (Y, *node sizes)."""
    from hra.integration.engine import EngineDeath

    mag = prep.magnitude
    ed = EngineDeath(prep.gmm, median_map, death, mag.nodes.size)
    F = prep.fragility.fragility_node.size
    C = prep.fragility.consequence_node.size
    vals = []
    for ge in range(ed.n):
        d = ed.death(0, ge)
        T = d.shape[0]
        d = d.reshape(T, F, C, n_parts, mag.nodes.size, -1).sum(axis=3)
        q = mag.integrate(np.moveaxis(d, 3, -1))[:, :, cand_rows]  # (b, x, j, f, c, r)
        vals.append(np.einsum("bxjfcr,rys,j->ysbxfc", q, hist, prob))
    v = np.stack(vals, axis=4)  # (y, s, b, x, g, f, c)
    gsizes = [n.size for n in ed.tree.nodes]
    v = v.reshape(v.shape[:4] + tuple(gsizes) + v.shape[5:])
    tree = LogicTree((prep.rates.node, prep.b_node, prep.m_max_node)) + ed.tree + prep.fragility.tree
    return tree, v


def _conditional(tree: LogicTree, v: np.ndarray) -> dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
    """Per node: mean over the other nodes (their weights) for each branch: (Y, branches)."""
    out = {}
    n = len(tree.nodes)
    for a, node in enumerate(tree.nodes):
        x = v
        for o in range(n - 1, -1, -1):  # contract the other axes (axis 0 is the year)
            if o == a:
                continue
            x = np.tensordot(x, tree.nodes[o].weight_array, axes=([o + 1], [0]))
        out[node.name] = (node.labels, node.weight_array, x.T)  # (branches, Y)
    return out


def conditional_means(prep: Prepared, death, rows: np.ndarray, prob: np.ndarray, n_parts: int,
                      hist: np.ndarray) -> dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
    """The mean LPR conditional on each branch of every node (all years): node -> (labels,
    weights, values (branches, Y)). ``death``: the building's physical tables with ``n_parts``
    parts per consequence branch; ``rows``: table row of each candidate; ``hist`` (R, Y, S)."""
    tree, v = combination_values(prep, death, prep.median_map, rows, prob, n_parts, hist)
    cond = _conditional(tree, v)
    mm = prep.median_map
    if mm is not None:  # physical median branches, each fixed at every magnitude
        med = prep.gmm.tree.node(mm.node)
        K = mm.mix.shape[2]
        vals = []
        for k in range(K):
            fixed = MedianMap.build(np.eye(K)[np.full(prep.magnitude.nodes.size, k)], "realisation", mm.node)
            t_k, v_k = combination_values(prep, death, fixed, rows, prob, n_parts, hist)
            x = v_k
            for o in range(len(t_k.nodes) - 1, -1, -1):
                x = np.tensordot(x, t_k.nodes[o].weight_array, axes=([o + 1], [0]))
            vals.append(x)
        cond[mm.node] = (med.labels, med.weight_array, np.array(vals))  # nominal weights (w(M) varies)
    # keep the order of the run's tree
    order = [n.name for n in prep.tree.nodes] + ([mm.node] if mm is not None and mm.node not in prep.tree.names else [])
    return {k: cond[k] for k in order if k in cond}

