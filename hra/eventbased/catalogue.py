"""Stochastic event sets (synthetic earthquake catalogues) from the source model.

For every calendar year ``y`` of the run and every logic-tree realisation ``r`` (one branch per
node: source-rate model, b-value, Mmax, ...), the event set holds a catalogue of
``years_per_realisation`` **simulated years**, each a replica of year ``y``'s rates:

* **occurrence**: the number of events with M >= m_min in source cell ``c`` over the replicas is
  Poisson with mean ``rate[c, y, s_r] * T`` (``T`` = simulated years of the realisation), each
  event falls in a replica year drawn uniformly (this is the same as independent Poisson counts
  per replica year);
* **magnitude**: the truncated Gutenberg-Richter law of the realisation's b-value and Mmax
  branches (:func:`hra.inputs.source.truncated_gr_cdf`), drawn by inversion, continuous in M:

      M = m_min - log10(1 - u (1 - 10^{-b (Mmax - m_min)})) / b,    u ~ U(0, 1);

* **epicentre**: uniform within the cell (``location="uniform"``, default) or at its centre
  (``location="centre"``, the point-source idealisation that OpenQuake point sources use);
* **depth**: fixed (``[source] depth_km``, default) or a discrete distribution
  ``[(depth_km, weight), ...]``.

Determinism: the catalogue of ``(year, realisation)`` is drawn from its own generator,
``np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSE_EVENTS, year, r)))``, in a
fixed order (counts, replica year, magnitude, x, y, depth), and sorted by (replica year, cell,
draw order). It depends on nothing else: neither on the other years or realisations in the set,
nor on how later stages chunk the events (tests/test_events.py checks both).

Event ids are ``year * 10**13 + realisation * 10**8 + i`` with ``i`` the row within the
(year, realisation) catalogue, so an event keeps its id in any subset of years/realisations.

Each event stands for an annual rate of ``weight_r / T`` in calendar year ``y``
(:meth:`EventSet.event_rate`), where ``weight_r`` is the realisation's weight (``1/N`` for ``N``
Monte-Carlo draws of the tree, the product of branch weights for an enumeration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from hra.core.logictree import PURPOSE_EVENTS, LogicTree, Realisations

#: Factor of the event ids: ``year * YEAR_FACTOR + realisation * REAL_FACTOR + i``.
YEAR_FACTOR = 10**13
REAL_FACTOR = 10**8

EVENT_COLUMNS = ("event_id", "year", "realisation", "sim_year", "magnitude", "x", "y", "depth_km", "cell")


class EventSetError(ValueError):
    """Bad event-set request; the message says what to change."""


def truncated_gr_sample(u: np.ndarray, b_value: float, m_min: float, m_max: float) -> np.ndarray:
    """Magnitudes of the truncated Gutenberg-Richter law by inversion of its CDF.

    Parameters
    ----------
    u : uniforms in [0, 1). [-]
    b_value : GR b-value. [-]
    m_min, m_max : truncation magnitudes. [-]
    """
    beta = b_value * np.log(10.0)
    span = -np.expm1(-beta * (m_max - m_min))  # 1 - 10^{-b (Mmax - m_min)}
    return m_min - np.log1p(-np.asarray(u, float) * span) / beta


def event_stream(seed: int, year: int, realisation: int) -> np.random.Generator:
    """The generator of the catalogue of (year, realisation)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PURPOSE_EVENTS, int(year), int(realisation))))


def _depth_spec(depth) -> tuple[np.ndarray, np.ndarray]:
    if np.isscalar(depth):
        d = np.array([float(depth)])
        w = np.array([1.0])
    else:
        pairs = list(depth)
        d = np.array([float(p[0]) for p in pairs])
        w = np.array([float(p[1]) for p in pairs])
    if d.size == 0 or np.any(d <= 0) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
        raise EventSetError(f"depth must be a depth > 0 km or [(depth_km, weight), ...] with weights summing to 1; got {depth!r}")
    return d, w / w.sum()


def simulate_catalogue(rng: np.random.Generator, cell_x: np.ndarray, cell_y: np.ndarray, cell_rate: np.ndarray,
                       n_years: int, b_value: float, m_min: float, m_max: float, cell_size_m: float,
                       location: str = "uniform", depth=3.0) -> dict[str, np.ndarray]:
    """One catalogue of ``n_years`` replica years (pure function of the generator state).

    Parameters
    ----------
    rng : the generator (see :func:`event_stream`).
    cell_x, cell_y : cell centres. [m, EPSG:28992]
    cell_rate : annual rate of M >= m_min events per cell. [yr^-1]
    n_years : number of replica years. [yr]
    b_value, m_min, m_max : truncated GR parameters. [-]
    cell_size_m : cell side. [m]
    location : "uniform" (epicentre uniform in the cell) or "centre".
    depth : hypocentral depth [km], or [(depth_km, weight), ...].

    Returns
    -------
    dict of arrays ``sim_year``, ``magnitude``, ``x``, ``y`` [m], ``depth_km``, ``cell``,
    sorted by (sim_year, cell, draw order).
    """
    if location not in ("uniform", "centre"):
        raise EventSetError(f"location must be 'uniform' or 'centre', got {location!r}")
    d_val, d_w = _depth_spec(depth)
    counts = rng.poisson(np.asarray(cell_rate, float) * n_years)
    cell = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    n = cell.size
    sim_year = rng.integers(0, n_years, size=n, dtype=np.int64)
    mag = truncated_gr_sample(rng.random(n), b_value, m_min, m_max)
    if location == "uniform":
        dx = (rng.random(n) - 0.5) * cell_size_m
        dy = (rng.random(n) - 0.5) * cell_size_m
    else:
        dx = np.zeros(n)
        dy = np.zeros(n)
    if d_val.size == 1:
        dep = np.full(n, d_val[0])
    else:
        dep = d_val[np.minimum(np.searchsorted(np.cumsum(d_w), rng.random(n), side="right"), d_val.size - 1)]
    order = np.lexsort((np.arange(n), cell, sim_year))
    return {
        "sim_year": sim_year[order], "magnitude": mag[order], "x": (cell_x[cell] + dx)[order],
        "y": (cell_y[cell] + dy)[order], "depth_km": dep[order], "cell": cell[order],
    }


@dataclass(frozen=True)
class EventSet:
    """Catalogues per calendar year and logic-tree realisation.

    Attributes
    ----------
    events
        Table with columns :data:`EVENT_COLUMNS`: ``event_id`` (int64), ``year`` (calendar year),
        ``realisation`` (index into ``realisations``), ``sim_year`` (replica year 0..T-1),
        ``magnitude`` [-], ``x``, ``y`` [m, EPSG:28992], ``depth_km`` [km], ``cell`` (source cell).
    years
        Calendar years. 
    realisations
        The logic-tree realisations (all nodes of the run's tree).
    years_per_realisation
        Simulated (replica) years ``T`` of each realisation and calendar year. [yr]
    seed, m_min, location, depth
        As given.
    expected_counts
        Expected number of events per (year index, realisation): ``sum_c rate * T``.
    """

    events: pd.DataFrame
    years: np.ndarray
    realisations: Realisations
    years_per_realisation: int
    seed: int
    m_min: float
    location: str = "uniform"
    depth: object = 3.0
    expected_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def n_years_simulated(self) -> int:
        """Simulated years per calendar year over all realisations. [yr]"""
        return int(self.years_per_realisation * self.realisations.n)

    @property
    def n_events(self) -> int:
        return int(len(self.events))

    def event_rate(self) -> np.ndarray:
        """Annual rate represented by each event in its calendar year: ``weight_r / T``. [yr^-1]"""
        r = self.events["realisation"].to_numpy(np.int64)
        return self.realisations.weight[r] / float(self.years_per_realisation)

    def select(self, year: int | None = None, realisation: int | None = None) -> pd.DataFrame:
        ev = self.events
        mask = np.ones(len(ev), dtype=bool)
        if year is not None:
            mask &= ev["year"].to_numpy() == year
        if realisation is not None:
            mask &= ev["realisation"].to_numpy() == realisation
        return ev[mask]

    def branch_table(self) -> pd.DataFrame:
        """Branch label of every node per realisation (one row per realisation), with its weight."""
        rows = {n.name: [n.labels[i] for i in self.realisations.index[:, j]] for j, n in enumerate(self.realisations.nodes)}
        df = pd.DataFrame(rows)
        df.insert(0, "realisation", np.arange(self.realisations.n))
        df["weight"] = self.realisations.weight
        return df

    def to_xarray(self):
        """The event table as an xarray Dataset on dim ``event`` (CF attributes, RD New)."""
        import xarray as xr

        ev = self.events
        units = {"event_id": ("1", "event identifier: year*1e13 + realisation*1e8 + row"),
                 "year": ("1", "calendar year whose rates the event replicates"),
                 "realisation": ("1", "logic-tree realisation index"),
                 "sim_year": ("1", "simulated (replica) year within the realisation"),
                 "magnitude": ("1", "moment/local magnitude as in the source model"),
                 "x": ("m", "epicentre x (RD New, EPSG:28992)"), "y": ("m", "epicentre y (RD New, EPSG:28992)"),
                 "depth_km": ("km", "hypocentral depth"), "cell": ("1", "source cell index")}
        data = {}
        for col in EVENT_COLUMNS:
            u, ln = units[col]
            data[col] = ("event", ev[col].to_numpy(), {"units": u, "long_name": ln})
        ds = xr.Dataset(data)
        ds = ds.set_coords(["event_id"])
        ds.attrs.update({"title": "Stochastic event set", "Conventions": "CF-1.10", "crs": "EPSG:28992 (Amersfoort / RD New)",
                         "seed": int(self.seed), "years_per_realisation": int(self.years_per_realisation),
                         "n_realisations": int(self.realisations.n), "m_min": float(self.m_min),
                         "location": self.location, "depth_km": str(self.depth)})
        return ds

    def to_csv(self, path) -> None:
        """Write the event table (one row per event) as CSV, for replay by other tools."""
        self.events.to_csv(path, index=False, float_format="%.6f")


def _branch(real: Realisations, name: str, r: int) -> int:
    names = [n.name for n in real.nodes]
    return int(real.index[r, names.index(name)]) if name in names else 0


def simulate_events(rates, b_values: Sequence[float], m_max_values: Sequence[float], m_min: float, cell_size_m: float,
                    realisations: Realisations, years_per_realisation: int, seed: int, *, location: str = "uniform",
                    depth=3.0, years: Sequence[int] | None = None) -> EventSet:
    """Simulate the catalogues of every calendar year and realisation.

    Parameters
    ----------
    rates : :class:`hra.inputs.source.RateGrid` (rates per cell, year and source branch). [yr^-1]
    b_values, m_max_values : branch values of the ``b_value`` and ``m_max`` nodes. [-]
    m_min : lower magnitude of the rates. [-]
    cell_size_m : source cell side. [m]
    realisations : logic-tree realisations whose nodes include ``source``, ``b_value`` and
        ``m_max`` (missing nodes mean branch 0).
    years_per_realisation : replica years per realisation and calendar year. [yr]
    seed : run seed.
    location, depth : see :func:`simulate_catalogue`.
    years : calendar years to simulate (default: all years of ``rates``).
    """
    T = int(years_per_realisation)
    if T < 1:
        raise EventSetError(f"years_per_realisation must be >= 1, got {years_per_realisation}")
    if realisations.n >= YEAR_FACTOR // REAL_FACTOR:
        raise EventSetError(f"at most {YEAR_FACTOR // REAL_FACTOR - 1} realisations per event set")
    all_years = [int(y) for y in rates.years]
    years = all_years if years is None else [int(y) for y in years]
    for y in years:
        if y not in all_years:
            raise EventSetError(f"year {y} has no rates; available: {all_years}")
    frames = []
    expected = np.zeros((len(years), realisations.n))
    for iy, year in enumerate(years):
        y_idx = all_years.index(year)
        for r in range(realisations.n):
            s = _branch(realisations, "source", r)
            b = float(b_values[_branch(realisations, "b_value", r)])
            mx = float(m_max_values[_branch(realisations, "m_max", r)])
            cell_rate = rates.rate[:, y_idx, s]
            expected[iy, r] = cell_rate.sum() * T
            cat = simulate_catalogue(event_stream(seed, year, r), rates.x, rates.y, cell_rate, T, b, m_min, mx,
                                     cell_size_m, location, depth)
            n = cat["magnitude"].size
            if n >= REAL_FACTOR:
                raise EventSetError(f"{n} events in one (year, realisation) catalogue; use fewer simulated years per realisation")
            df = pd.DataFrame({"event_id": np.int64(year) * YEAR_FACTOR + np.int64(r) * REAL_FACTOR + np.arange(n, dtype=np.int64),
                               "year": np.full(n, year, dtype=np.int64), "realisation": np.full(n, r, dtype=np.int64), **cat})
            frames.append(df[list(EVENT_COLUMNS)])
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    return EventSet(events, np.asarray(years, dtype=np.int64), realisations, T, int(seed), float(m_min), location,
                    depth, expected)


def tree_realisations(tree: LogicTree, realisations: int | str | Realisations, seed: int) -> Realisations:
    """Realisations of ``tree``: ``"all"`` (enumeration), an int (Monte-Carlo draws with the same
    streams as the integration engine, :meth:`LogicTree.sample`), or given explicitly."""
    if isinstance(realisations, Realisations):
        names = [n.name for n in realisations.nodes]
        if names != list(tree.names):
            raise EventSetError(f"realisations are over nodes {names}, the run's tree has {list(tree.names)}")
        return realisations
    return tree.realisations(realisations, seed)


def fixed_realisation(tree: LogicTree, **branches: int | str) -> Realisations:
    """One realisation with chosen branches (index or label per node name; others: the heaviest).

    >>> from hra.core.logictree import Node, LogicTree
    >>> t = LogicTree((Node("m_max", ("4.5", "5.5"), (0.6, 0.4)),))
    >>> fixed_realisation(t, m_max="5.5").index.tolist()
    [[1]]
    """
    idx = []
    for node in tree.nodes:
        v = branches.pop(node.name, None)
        if v is None:
            idx.append(int(np.argmax(node.weight_array)))
        elif isinstance(v, str):
            idx.append(node.labels.index(v))
        else:
            if not 0 <= int(v) < node.size:
                raise EventSetError(f"branch {v} out of range for node {node.name!r} ({node.size} branches)")
            idx.append(int(v))
    if branches:
        raise EventSetError(f"unknown node(s) {sorted(branches)}; the tree has {list(tree.names)}")
    return Realisations(tree.nodes, np.array([idx], dtype=np.int64), np.ones(1), False)


def event_set_for(prep, n_years_simulated: int, realisations: int | str | Realisations = 1, seed: int | None = None,
                  location: str = "uniform", depth=None, years: Sequence[int] | None = None) -> EventSet:
    """Event set of a prepared run (:func:`hra.chain.prepare` or anything with ``rates``,
    ``magnitude``/``b_node``/``m_max_node`` and ``cfg``) over its full logic tree.

    ``n_years_simulated`` simulated years per calendar year are split evenly over the
    realisations (it must be a multiple of their number).
    """
    cfg = prep.cfg
    from hra.chain import require_rate_grid

    require_rate_grid(cfg, "the event-based engine (hra events)")
    seed = cfg.run.seed if seed is None else int(seed)
    real = tree_realisations(prep.tree, realisations, seed)
    if n_years_simulated < real.n or n_years_simulated % real.n:
        raise EventSetError(f"n_years_simulated = {n_years_simulated} must be a positive multiple of the number of "
                            f"realisations ({real.n})")
    depth = cfg.source.depth_km if depth is None else depth
    return simulate_events(prep.rates, prep.b_node.values or (1.0,), prep.m_max_node.values, cfg.source.m_min,
                           cfg.source.cell_size_m, real, n_years_simulated // real.n, seed, location=location,
                           depth=depth, years=years)
