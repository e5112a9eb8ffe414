"""Lognormal collapse-state fragility and the consequence (fatality) model.

Collapse states CS1..CS3 are nested: CS3 (full collapse) implies CS2 implies CS1. For typology t
and fragility branch f, with IM in g:

    P(CS >= k | IM) = Phi( (ln IM - ln theta_{t,f,k}) / beta_{t,f,k} )

Exclusive states (docs/lpr.md §1): P(CS = k) = P(CS >= k) - P(CS >= k+1), with P(CS >= K+1) = 0.
Where curves cross (different betas), nesting is enforced as P'(CS >= k) = max_{j >= k} P(CS >= j),
so that no exclusive probability is negative (documented deviation; it never binds for the
Groningen V6/V7 FCMs, whose states share one dispersion).

Probability of death of a person at location L (inside, outside) given the IM (Crowley & Pinho
2020, nested-state form):

    P_die,L(IM) = sum_k P(CS = k | IM) Pd_L|k = sum_k P'(CS >= k | IM) (Pd_L|k - Pd_L|k-1),  Pd_L|0 = 0

and the event LPR contribution of a person inside with probability ``presence_inside``:

    LPR_event = presence_inside P_die,in + (1 - presence_inside) (P_die,out + P_direct,out(IM2))

where the optional direct outside term (chimneys/gables falling on a passer-by in the Groningen
FCM) is itself lognormal in a second IM (PGA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from hra.core._numba import jit
from hra.core.logictree import LogicTree, Node

STATES = ("CS1", "CS2", "CS3")


class FragilityError(ValueError):
    """Bad fragility/consequence input; names the file, row/column and the fix."""


def p_exceed(ln_im: np.ndarray, median_g: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """P(CS >= k | IM) = Phi((ln IM - ln median) / beta); a step where beta = 0. [-]"""
    ln_im = np.asarray(ln_im, dtype=float)
    z = ln_im - np.log(median_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(beta) > 0, ndtr(z / np.where(np.asarray(beta) > 0, beta, 1.0)), (z >= 0).astype(float))


def nested(p_exceed_k: np.ndarray) -> np.ndarray:
    """Enforce P(>= k) >= P(>= k+1) along the last axis: P'(>= k) = max_{j >= k} P(>= j)."""
    return np.maximum.accumulate(np.asarray(p_exceed_k)[..., ::-1], axis=-1)[..., ::-1]


def p_death_nested(p_ge, pd) -> np.ndarray:
    """P(death) from state exceedances: ``sum_k P'(>=CS_k) (Pd_k - Pd_(k-1))``, ``Pd_0 = 0``.

    The exceedances are nested first (:func:`nested`), as in the engines' kernels
    (:func:`nest_exceedance`, :func:`death_given_nested`); ``p_ge`` and ``pd`` have the states on
    the last axis (broadcast otherwise). [-]
    """
    p = nested(np.asarray(p_ge, float))
    inc = np.diff(np.asarray(pd, float), axis=-1, prepend=0.0)
    return np.sum(p * inc, axis=-1)


@jit
def nest_exceedance(p):
    """In place, the numba form of :func:`nested` for one building/site: ``p`` (k,) P(CS >= k)."""
    for k in range(p.shape[0] - 2, -1, -1):
        if p[k + 1] > p[k]:
            p[k] = p[k + 1]


@jit
def death_given_nested(p, pd):
    """The numba form of :func:`p_death_nested` for nested ``p`` (k,) and ``pd`` (k,). [-]"""
    d = 0.0
    prev = 0.0
    for k in range(p.shape[0]):
        d += p[k] * (pd[k] - prev)
        prev = pd[k]
    return d


def exclusive(p_exceed_k: np.ndarray) -> np.ndarray:
    """P(CS = k) from P(CS >= k) along the last axis (after nesting)."""
    p = nested(p_exceed_k)
    nxt = np.concatenate([p[..., 1:], np.zeros_like(p[..., :1])], axis=-1)
    return p - nxt


@dataclass(frozen=True)
class FragilityModel:
    """Collapse fragilities and death probabilities of all typologies and branches.

    Arrays: ``median_g``, ``beta`` (n_typologies, n_fragility_branches, n_states);
    ``p_death_inside``, ``p_death_outside`` (n_typologies, n_consequence_branches, n_states);
    optional direct outside-death term on ``direct_imt``: ``direct_median_g``, ``direct_beta``
    (n_typologies, n_consequence_branches), median 0 meaning "no such term".
    """

    typologies: tuple[str, ...]
    imt: str
    median_g: np.ndarray
    beta: np.ndarray
    p_death_inside: np.ndarray
    p_death_outside: np.ndarray
    fragility_node: Node
    consequence_node: Node
    presence_inside: float = 1.0
    states: tuple[str, ...] = STATES
    direct_imt: str | None = None
    direct_median_g: np.ndarray | None = None
    direct_beta: np.ndarray | None = None
    name: str = "custom"
    source_files: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        nt, nf, nk = self.median_g.shape
        if self.beta.shape != (nt, nf, nk):
            raise FragilityError("beta must have the shape of median_g")
        if self.p_death_inside.shape[0] != nt or self.p_death_inside.shape[2] != nk:
            raise FragilityError("p_death_inside must be (n_typologies, n_consequence, n_states)")
        if np.any(self.median_g <= 0) or np.any(self.beta < 0):
            raise FragilityError("fragility medians must be > 0 and betas >= 0")
        for arr, nm in ((self.p_death_inside, "p_death_inside"), (self.p_death_outside, "p_death_outside")):
            if np.any(arr < 0) or np.any(arr > 1):
                raise FragilityError(f"{nm} must lie in [0, 1]")

    @property
    def tree(self) -> LogicTree:
        return LogicTree((self.fragility_node, self.consequence_node))

    @property
    def imts(self) -> tuple[str, ...]:
        return (self.imt,) if self.direct_imt is None else (self.imt, self.direct_imt)

    def typology_index(self, name: str) -> int:
        try:
            return self.typologies.index(name)
        except ValueError:
            raise KeyError(f"unknown typology {name!r}; known: {', '.join(self.typologies[:8])}...") from None

    def p_exceed(self, typology: str, state: str, im_g, branch: int = 0) -> np.ndarray:
        """P(CS >= state | IM = im_g) for one typology and fragility branch. [-]"""
        t = self.typology_index(typology)
        k = self.states.index(state)
        return p_exceed(np.log(im_g), self.median_g[t, branch, k], self.beta[t, branch, k])

    def select(self, typologies: list[str]) -> "FragilityModel":
        """The model restricted to (and ordered as) ``typologies``."""
        idx = [self.typology_index(t) for t in typologies]
        kw = dict(self.__dict__)
        kw.update(
            typologies=tuple(typologies),
            median_g=self.median_g[idx], beta=self.beta[idx],
            p_death_inside=self.p_death_inside[idx], p_death_outside=self.p_death_outside[idx],
            direct_median_g=None if self.direct_median_g is None else self.direct_median_g[idx],
            direct_beta=None if self.direct_beta is None else self.direct_beta[idx],
        )
        return FragilityModel(**kw)


def _row(i: int) -> int:
    return i + 2  # header is line 1


def read_fragility_csv(
    path: str | Path,
    imt: str,
    presence_inside: float = 1.0,
    consequence: list[tuple[float, float]] | None = None,
) -> FragilityModel:
    """Read lognormal fragility curves from CSV.

    Columns: ``typology``, ``state`` (CS1..CS3), ``median_g`` (> 0) [g], ``beta`` (>= 0) [-],
    ``p_death`` (death probability inside given the state) [-]; optional ``p_death_outside`` [-],
    ``branch`` and ``weight`` (fragility branches; weights sum to 1; every typology and state on
    every branch). ``consequence`` = [(factor, weight), ...] scales the death probabilities
    (capped at 1) to make consequence branches.
    """
    path = Path(path)
    if not path.exists():
        raise FragilityError(f"fragility file {path} does not exist; check [fragility] curves")
    try:
        df = pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise FragilityError(f"{path}: the file is empty; it needs columns typology, state, median_g, beta, p_death") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise FragilityError(f"{path}: no data rows; add one row per typology and state")
    for col in ("typology", "state", "median_g", "beta", "p_death"):
        if col not in df.columns:
            raise FragilityError(f"{path}: missing column {col!r}; needed: typology, state, median_g, beta, p_death")
    if "p_death_outside" not in df.columns:
        df["p_death_outside"] = 0.0
    for col in ("median_g", "beta", "p_death", "p_death_outside"):
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            raise FragilityError(f"{path}: row {_row(bad[0])}, column {col!r}: not a number; fix the value")
        df[col] = vals
    checks = [("median_g", df["median_g"] <= 0, "must be > 0"), ("beta", df["beta"] < 0, "must be >= 0"),
              ("p_death", (df["p_death"] < 0) | (df["p_death"] > 1), "must lie in [0, 1]"),
              ("p_death_outside", (df["p_death_outside"] < 0) | (df["p_death_outside"] > 1), "must lie in [0, 1]")]
    for col, mask, what in checks:
        bad = np.flatnonzero(mask.to_numpy())
        if bad.size:
            raise FragilityError(f"{path}: row {_row(bad[0])}, column {col!r}: {df[col].iloc[bad[0]]} {what}")
    df["state"] = df["state"].astype(str).str.strip().str.upper()
    bad = np.flatnonzero(~df["state"].isin(STATES).to_numpy())
    if bad.size:
        raise FragilityError(f"{path}: row {_row(bad[0])}, column 'state': {df['state'].iloc[bad[0]]!r} is not one of {STATES}")
    df["typology"] = df["typology"].astype(str).str.strip()
    if "branch" not in df.columns:
        df["branch"] = "central"
        df["weight"] = 1.0
    elif "weight" not in df.columns:
        raise FragilityError(f"{path}: column 'branch' without column 'weight'; add the branch weights")
    df["branch"] = df["branch"].astype(str)
    branches = list(dict.fromkeys(df["branch"]))
    wb = df.groupby("branch", sort=False)["weight"].agg(["min", "max"])
    if ((wb["max"] - wb["min"]).abs() > 1e-12).any():
        raise FragilityError(f"{path}: column 'weight': a branch has different weights on different rows")
    weights = wb.loc[branches, "min"].to_numpy(float)
    if abs(weights.sum() - 1) > 1e-6:
        raise FragilityError(f"{path}: column 'weight': fragility branch weights sum to {weights.sum():.6g}; they must sum to 1")
    typologies = list(dict.fromkeys(df["typology"]))
    nt, nf, nk = len(typologies), len(branches), len(STATES)
    median = np.full((nt, nf, nk), np.nan)
    beta = np.full((nt, nf, nk), np.nan)
    pd_in = np.full((nt, nf, nk), np.nan)
    pd_out = np.full((nt, nf, nk), np.nan)
    ti = {t: i for i, t in enumerate(typologies)}
    bi = {b: i for i, b in enumerate(branches)}
    ki = {k: i for i, k in enumerate(STATES)}
    seen: dict[tuple[int, int, int], int] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        key = (ti[row.typology], bi[row.branch], ki[row.state])
        if key in seen:
            raise FragilityError(f"{path}: row {_row(i)} repeats typology {row.typology!r}, state {row.state}, branch {row.branch!r} of row {_row(seen[key])}; keep one")
        seen[key] = i
        median[key], beta[key], pd_in[key], pd_out[key] = row.median_g, row.beta, row.p_death, row.p_death_outside
    if np.isnan(median).any():
        t, f, k = np.argwhere(np.isnan(median))[0]
        raise FragilityError(f"{path}: no row for typology {typologies[t]!r}, state {STATES[k]}, branch {branches[f]!r}; every typology needs CS1..CS3 on every branch")
    dec = np.argwhere(np.diff(median, axis=2) < 0)
    if dec.size:
        t, f, k = dec[0]
        raise FragilityError(
            f"{path}: typology {typologies[t]!r}, branch {branches[f]!r}: median_g of {STATES[k]} ({median[t, f, k]:g} g) "
            f"exceeds that of {STATES[k + 1]} ({median[t, f, k + 1]:g} g); the states are nested (CS3 implies CS2 implies "
            "CS1), so the medians must not decrease from CS1 to CS3: check the state column")
    if not (np.allclose(pd_in, pd_in[:, :1]) and np.allclose(pd_out, pd_out[:, :1])):
        raise FragilityError(f"{path}: columns p_death/p_death_outside differ between fragility branches; give them once per typology and state and model their uncertainty with [fragility] consequence")
    return fragility_from_curves(typologies, imt, median, beta, pd_in[:, 0], pd_out[:, 0], branches, weights,
                                 presence_inside, consequence, name=path.stem, source_files=(str(path),))


def fragility_from_curves(
    typologies, imt: str, median_g, beta, p_death_inside, p_death_outside, branches=("central",), weights=(1.0,),
    presence_inside: float = 1.0, consequence: list[tuple[float, float]] | None = None, name: str = "custom",
    source_files: tuple[str, ...] = (),
) -> FragilityModel:
    """A :class:`FragilityModel` from curves held in memory (what :func:`read_fragility_csv` builds
    from its file).

    Parameters
    ----------
    typologies
        Typology names (t,).
    imt
        Intensity measure of the curves, e.g. ``"PGA"`` or ``"AvgSa"``.
    median_g, beta
        Lognormal fragility medians [g] and log-standard deviations [-], (t, f, 3) over
        typology, fragility branch and state CS1..CS3.
    p_death_inside, p_death_outside
        Death probability given the state, inside and outside the building [-], (t, 3).
    branches, weights
        Fragility branch names and weights [-] (f,).
    presence_inside
        Fraction of time a person is inside [-].
    consequence
        ``[(factor, weight), ...]``: consequence branches scaling the death probabilities
        (capped at 1); default one branch with factor 1.

    Examples
    --------
    >>> fm = fragility_from_curves(["URM"], "PGA", [[[0.15, 0.3, 0.6]]], [[[0.5, 0.5, 0.5]]],
    ...                            [[0.01, 0.1, 0.3]], [[0.0, 0.0, 0.0]])
    >>> fm.median_g.shape, fm.p_death_inside.shape
    ((1, 1, 3), (1, 1, 3))
    """
    median_g = np.asarray(median_g, dtype=float)
    beta = np.asarray(beta, dtype=float)
    pd_in = np.asarray(p_death_inside, dtype=float)
    pd_out = np.asarray(p_death_outside, dtype=float)
    consequence = consequence or [(1.0, 1.0)]
    factors = np.array([c for c, _ in consequence], dtype=float)
    cnode = Node("consequence", tuple(f"x{c:g}" for c, _ in consequence), tuple(w for _, w in consequence), tuple(factors))
    fnode = Node("fragility", tuple(branches), tuple(float(w) for w in weights))
    return FragilityModel(
        typologies=tuple(typologies), imt=imt, median_g=median_g, beta=beta,
        p_death_inside=np.minimum(pd_in[:, None, :] * factors[None, :, None], 1.0),
        p_death_outside=np.minimum(pd_out[:, None, :] * factors[None, :, None], 1.0),
        fragility_node=fnode, consequence_node=cnode, presence_inside=presence_inside,
        name=name, source_files=tuple(source_files),
    )
