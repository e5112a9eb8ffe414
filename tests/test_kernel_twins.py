"""A plain-numpy twin of each numba kernel (numbagg's ``COMPARISONS`` idea).

One table ``TWINS`` of (kernel, twin, inputs); one parametrised test asserts that each kernel
equals its twin. The twins are written from the kernels' docstrings with numpy/scipy only
(vectorised formulas, ``np.interp``, the inverted-CDF quantile by ``np.searchsorted``,
``scipy.stats.poisson.ppf``), never by calling the kernel's helpers. Kernels that draw from the
random streams (``pair_damage``, ``event_damage``, ``field_values``, ``damage_listed``) are left
out: their distributions are tested in ``tests/test_eventrisk.py``; ``chunk_lpr`` is twinned in
its two deterministic modes (typology mixture; epistemic typology, enumerated tree).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.special import exprel, ndtr, ndtri
from scipy.stats import poisson

from fragility import lognormal as fl
from hra.eventbased import kernels as ek
from hra.integration import kernels as ik

RNG = np.random.default_rng(20261204)


# -- fragility nesting ---------------------------------------------------------------------------


def _crossing_exceedances():
    return RNG.uniform(0, 1, size=(20, 3))  # unsorted on purpose: nesting binds


def k_nest(p):
    out = p.copy()
    for row in out:
        fl.nest_exceedance(row)
    return out


def t_nest(p):  # P'(>= k) = max_{j >= k} P(>= j), by brute force
    return np.array([[row[k:].max() for k in range(row.size)] for row in p])


def _death_inputs():
    p = t_nest(_crossing_exceedances())
    pd = np.sort(RNG.uniform(0, 1, size=(20, 3)), axis=1)
    return p, pd


def k_death(p, pd):
    return np.array([fl.death_given_nested(p[i], pd[i]) for i in range(p.shape[0])])


def t_death(p, pd):  # sum_k P(CS = k) Pd_k with exclusive P(CS = k) = P'(>= k) - P'(>= k+1)
    excl = p - np.concatenate([p[:, 1:], np.zeros((p.shape[0], 1))], axis=1)
    return np.sum(excl * pd, axis=1)


# -- integration kernels -------------------------------------------------------------------------


def _mixture(n_m=3, n_r=4, n_q=5):
    mean = RNG.normal(-2.0, 1.0, size=(n_m, n_r, n_q))
    sd = RNG.uniform(0.2, 0.8, size=(n_m, n_r, n_q))
    weight = RNG.uniform(0, 1, size=(n_m, n_r, n_q))
    weight[0, 0, 1] = 0.0
    return mean, sd, weight / weight.sum(-1, keepdims=True)


def _death_table_inputs():
    mean, sd, weight = _mixture()
    ln_median = np.log(np.array([[[0.1, 0.11, 0.3], [0.08, 0.15, 0.3]]]))  # (t=1, f=2, k=3)
    beta = np.array([[[0.9, 0.05, 0.2], [0.5, 0.5, 0.5]]])  # crossing curves in the first branch: nesting binds
    pd_in = np.array([[[0.0, 0.01, 0.2], [0.0, 0.02, 0.4]]])  # (t, c=2, k)
    pd_out = 0.5 * pd_in
    return mean, sd, weight, ln_median, beta, pd_in, pd_out, 0.9


def k_death_table(mean, sd, weight, ln_median, beta, pd_in, pd_out, presence):
    n_t, n_f, n_k = ln_median.shape
    pexc = np.empty((n_t, n_f, n_k) + mean.shape[:2])
    death = np.empty((n_t, n_f, pd_in.shape[1]) + mean.shape[:2])
    ik.death_table(mean, sd, weight, ln_median, beta, pd_in, pd_out, presence, pexc, death)
    return pexc, death


def t_death_table(mean, sd, weight, ln_median, beta, pd_in, pd_out, presence):
    # P(CS >= k) = sum_q w_q Phi((mean_q - ln theta) / sqrt(sd_q^2 + beta^2)); axes (t, f, k, m, r, q)
    s = np.sqrt(sd[None, None, None] ** 2 + beta[..., None, None, None] ** 2)
    raw = np.sum(weight * ndtr((mean[None, None, None] - ln_median[..., None, None, None]) / s), axis=-1)
    p = np.flip(np.maximum.accumulate(np.flip(raw, axis=2), axis=2), axis=2)  # nested over k
    inc_in = np.diff(pd_in, axis=-1, prepend=0.0)  # (t, c, k)
    inc_out = np.diff(pd_out, axis=-1, prepend=0.0)
    d_in = np.einsum("tfkmr,tck->tfcmr", p, inc_in)
    d_out = np.einsum("tfkmr,tck->tfcmr", p, inc_out)
    return p, presence * d_in + (1 - presence) * d_out


def _expectation_inputs():
    mean, sd, weight = _mixture()
    return mean, sd, weight, np.array([math.log(0.05), math.log(0.2), -np.inf]), np.array([0.4, 0.0, 0.3])  # beta 0: a step; -inf: none


def k_expectation(mean, sd, weight, ln_median, beta):
    out = np.empty((ln_median.size,) + mean.shape[:2])
    ik.lognormal_expectation(mean, sd, weight, ln_median, beta, out)
    return out


def t_expectation(mean, sd, weight, ln_median, beta):
    s = np.sqrt(sd[None] ** 2 + beta[:, None, None, None] ** 2)
    with np.errstate(invalid="ignore"):
        out = np.sum(weight * ndtr((mean[None] - ln_median[:, None, None, None]) / s), axis=-1)
    return np.where(np.isfinite(ln_median)[:, None, None], out, 0.0)


def _histogram_k_inputs():
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    rates = RNG.uniform(0, 1e-3, size=(cx.size, 3 * 4))  # n_k = 3 basis functions x 4 values
    return 4300.0, 3700.0, cx.ravel(), cy.ravel(), rates, 3.0, math.log(3.0), 0.05, 60, 3, 12.0, 1000.0, 1500.0, 4


def k_histogram_k(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_radius, n_sub):
    hist = np.zeros((n_r * n_k, rates.shape[1] // n_k))
    ik.distance_histogram_k(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_radius, n_sub, hist)
    return hist


def t_histogram_k(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_radius, n_sub):
    # basis function k's rates go to rows r * n_k + k: the one-basis twin per k, interleaved
    n_v = rates.shape[1] // n_k
    out = np.zeros((n_r * n_k, n_v))
    for k in range(n_k):
        out[k::n_k] = t_histogram(bx, by, cx, cy, rates[:, k * n_v:(k + 1) * n_v], depth, ln_r0, dln, n_r, r_max,
                                  cell, sub_radius, n_sub)
    return out


def _histogram_inputs():
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    rates = RNG.uniform(0, 1e-3, size=(cx.size, 6))
    return 4300.0, 3700.0, cx.ravel(), cy.ravel(), rates, 3.0, math.log(3.0), 0.05, 60, 12.0, 1000.0, 1500.0, 4


def k_histogram(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, r_max, cell, sub_radius, n_sub):
    hist = np.zeros((n_r, rates.shape[1]))
    ik.distance_histogram(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, r_max, cell, sub_radius, n_sub, hist)
    return hist


def t_histogram(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, r_max, cell, sub_radius, n_sub):
    # every (sub-)cell's rate shared linearly in ln R between the two neighbouring nodes
    hist = np.zeros((n_r, rates.shape[1]))
    for c, x, y, r, share in _source_points(bx, by, cx, cy, depth, r_max, cell, sub_radius, n_sub):
        u = min(max((math.log(r) - ln_r0) / dln, 0.0), n_r - 1)
        i = min(int(u), n_r - 2)
        f = u - i
        hist[i] += (1 - f) * rates[c] * share
        hist[i + 1] += f * rates[c] * share
    return hist


def _source_points(bx, by, cx, cy, depth, r_max, cell, sub_radius, n_sub):
    """(cell, x, y, R_hyp [km], share of the cell's rate) of every (sub-)cell within r_max of the
    building: cells nearer than sub_radius split into n_sub x n_sub equal sub-cells."""
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * cell
    for c in range(cx.size):
        near = n_sub > 1 and (cx[c] - bx) ** 2 + (cy[c] - by) ** 2 < sub_radius**2
        pts = [(cx[c] + ox, cy[c] + oy) for ox in offsets for oy in offsets] if near else [(cx[c], cy[c])]
        for x, y in pts:
            r = math.sqrt(((x - bx) ** 2 + (y - by) ** 2) * 1e-6 + depth**2)
            if r <= r_max:
                yield c, x, y, r, 1.0 / len(pts)


def _histogram_az_inputs():
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    rates = RNG.uniform(0, 1e-3, size=(cx.size, 2 * 3))  # n_k = 2 basis functions x 3 values
    return 4300.0, 3700.0, cx.ravel(), cy.ravel(), rates, 3.0, math.log(3.0), 0.05, 60, 5, 2, -30.0, False, 12.0, 1000.0, 1500.0, 4


def _histogram_harmonic_inputs():
    args = list(_histogram_az_inputs())
    args[9], args[12] = 3, True  # 3 harmonic rows
    return tuple(args)


def k_histogram_az(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_a, n_k, strike, harmonic, r_max, cell, sub_radius,
                   n_sub, cubic=False):
    hist = np.zeros((n_r * n_a * n_k, rates.shape[1] // n_k))
    ik.distance_azimuth_histogram_k(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_a, n_k, strike, harmonic, r_max,
                                    cell, sub_radius, n_sub, hist, cubic)
    return hist


def _cubic_weights(ln_r, ln_r0, dln, n_r):
    """Weights of the n_r nodes in the polynomial through the 4 nodes around ln R (3 in the end
    intervals), by fitting each node's unit vector (np.polyfit) and evaluating it there."""
    u = min(max((ln_r - ln_r0) / dln, 0.0), n_r - 1.0)
    i = min(int(u), n_r - 2)
    nodes = (np.arange(0, 3) if i == 0 else np.arange(n_r - 3, n_r) if i == n_r - 2 else np.arange(i - 1, i + 3))
    w = np.zeros(n_r)
    for j in nodes:
        w[j] = np.polyval(np.polyfit(nodes.astype(float), (nodes == j).astype(float), nodes.size - 1), u)
    return w


def t_histogram_az(bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_a, n_k, strike, harmonic, r_max, cell, sub_radius,
                   n_sub, cubic=False):
    # each (sub-)cell's rate shared bilinearly: np.interp weights in ln R times in the folded azimuth
    # (nodes), or times cos(2 a az) in row a (harmonics); cubic: polynomial weights in ln R
    n_v = rates.shape[1] // n_k
    hist = np.zeros((n_r, n_a, n_k, n_v))
    ln_nodes, a_nodes = ln_r0 + dln * np.arange(n_r), np.linspace(0.0, 90.0, n_a)
    for c, x, y, r, share in _source_points(bx, by, cx, cy, depth, r_max, cell, sub_radius, n_sub):
        a = np.mod(strike - np.degrees(np.arctan2(bx - x, by - y)), 180.0)  # site seen from the source
        a = min(a, 180.0 - a)
        wr = (_cubic_weights(math.log(r), ln_r0, dln, n_r) if cubic
              else np.array([np.interp(math.log(r), ln_nodes, e) for e in np.eye(n_r)]))
        wa = (np.cos(2.0 * np.arange(n_a) * np.radians(a)) if harmonic
              else np.array([np.interp(a, a_nodes, e) for e in np.eye(n_a)]))
        hist += np.einsum("r,a,kv->rakv", wr, wa, rates[c].reshape(n_k, n_v)) * share
    return hist.reshape(n_r * n_a * n_k, n_v)


def _histogram_one_azimuth_inputs():
    """No azimuth axis (the distance_histogram_k path), near cells in sub-cells, the last nodes reached
    (r_max beyond the grid: the end intervals' quadratic weights)."""
    args = list(_histogram_az_inputs())
    args[8], args[9], args[13] = 30, 1, 20.0  # 30 nodes of 0.05 from 3 km: up to 13.4 km < r_max 20 km
    return tuple(args)


# -- the histogram's geometry (parts of distance_azimuth_histogram_k, also twinned alone) ----------

_GEO = np.random.default_rng(20261205)  # its own stream: the inputs above keep their draws


def _geometry_histogram_inputs(bx, by, n_r, dln, n_a, harmonic, n_sub):
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    rates = _GEO.uniform(0, 1e-3, size=(cx.size, 2 * 3))
    return (bx, by, cx.ravel(), cy.ravel(), rates, 3.0, math.log(3.0), dln, n_r, n_a, 2, 37.0, harmonic, 12.0, 1000.0,
            1500.0, n_sub, True)


def _cos_2az_inputs():
    dx, dy = _GEO.uniform(-5000.0, 5000.0, size=(2, 300))
    dx[:3], dy[2:5] = 0.0, 0.0  # due north/south, due east/west, and d = 0 (atan2(0, 0) = 0)
    return dx, dy, np.array([-30.0, 0.0, 45.0, 137.0, -95.0])


def k_cos_2az(dx, dy, strikes):
    out = np.empty((strikes.size, dx.size))
    for i, s in enumerate(strikes):
        c, sn = math.cos(2.0 * math.radians(s)), math.sin(2.0 * math.radians(s))
        out[i] = [ik._cos_2az(x, y, x * x + y * y, c, sn) for x, y in zip(dx, dy)]
    return 2.0 + out  # + 2: the relative tolerance bounds the absolute error of the cosine


def t_cos_2az(dx, dy, strikes):  # the folded relative azimuth by trigonometry, as the site sees the cell
    a = np.mod(strikes[:, None] - np.degrees(np.arctan2(dx, dy))[None], 180.0)
    a = np.minimum(a, 180.0 - a)
    return 2.0 + np.cos(2.0 * np.radians(a))


def _rule_inputs():
    return np.concatenate([_GEO.uniform(0.0, 30_000.0, 400), [0.0, 1000.0, 11_600.0, 29_000.0]]), 3.0, math.log(3.0)


_RULE_GRIDS = ((3, 0.5), (4, 0.4), (30, 0.05))  # (n_r, dln): n_r = 3 and 4 reach both end intervals


def k_rule(d_m, depth, ln_r0, r_max=12.0):
    out = []
    for n_r, dln in _RULE_GRIDS:
        for cubic in (False, True):
            n_slot = ik._rule_n_slot(n_r, cubic)
            w = np.zeros((d_m.size, n_r))
            for j, d in enumerate(d_m):
                i0, *ws = ik._rule_slots(*ik._node_fraction(d * d, depth, ln_r0, dln, n_r, r_max), n_r, n_slot)
                if i0 >= 0:
                    w[j, i0:i0 + n_slot] += ws[:n_slot]
            out.append(1.0 + w)  # + 1: the relative tolerance bounds the absolute error of the weights
    return tuple(out)


def t_rule(d_m, depth, ln_r0, r_max=12.0):  # np.interp weights, or the polynomial (polyfit) ones
    out = []
    for n_r, dln in _RULE_GRIDS:
        ln_nodes = ln_r0 + dln * np.arange(n_r)
        for cubic in (False, True):
            w = np.zeros((d_m.size, n_r))
            for j, d in enumerate(d_m):
                r = math.sqrt(d * d * 1e-6 + depth**2)
                if r <= r_max:
                    w[j] = (_cubic_weights(math.log(r), ln_r0, dln, n_r) if cubic
                            else [np.interp(math.log(r), ln_nodes, e) for e in np.eye(n_r)])
            out.append(1.0 + w)
    return tuple(out)


def _quantile_inputs():
    v = RNG.normal(size=40)
    w = RNG.integers(0, 5, size=40).astype(float)
    return v, w, np.array([0.0, 0.1, 0.5, 0.9, 1.0])


def k_quantiles(v, w, probs):
    out = np.empty(probs.size)
    ik.weighted_quantiles(v, w, v.size, probs, np.empty(v.size, dtype=np.int64), out)
    return out


def _quantile_step_inputs(n, n_distinct, seed):
    """Integer weights (exact sums: cumulative weights that land on p * total exactly) with zeros,
    ties among n_distinct values, unsorted probabilities at both ends (their own generator: the
    shared RNG's draws of the later entries stay as they were)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, n_distinct, size=n) * 0.25 if n_distinct else rng.lognormal(-12, 1.5, size=n)
    w = rng.integers(0, 4, size=n).astype(float)
    w[0] = 1.0
    return v, w, np.array([0.9, 0.5, 0.1, 0.0, 1.0, 0.5])


def k_select(v, w, probs):
    out = np.empty(probs.size)
    ik._select_quantiles(v, w, v.size, probs, np.empty(v.size), np.empty(v.size), out)
    return out


def k_sorted_quantiles(v, w, probs):
    out = np.empty(probs.size)
    ik._sorted_quantiles(v, w, v.size, probs, out)
    return out


def t_quantiles(v, w, probs):
    """min{v : F(v) >= p} (numpy's ``inverted_cdf``), with the kernels' relative tolerance of 1e-12 on the
    cumulative weight so that a quantile that falls exactly on a step does not move by rounding."""
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    idx = np.searchsorted(cum, np.asarray(probs) * cum[-1] * (1 - 1e-12), side="left")
    return v[order][np.minimum(idx, v.size - 1)]


def _density_inputs():
    mean = RNG.normal(0.0, 1.0, size=(4, 3))
    sd = RNG.uniform(0.1, 0.6, size=(4, 3))
    sd[1, 2] = 0.001  # below h / 4: deposited on the two nearest nodes
    weight = RNG.uniform(0, 1, size=(4, 3))
    return mean, sd, weight, -4.0, 0.05, 8.0, 161


def _density_pair_inputs():
    """Consecutive Gaussians (taken in pairs by the kernel) with zero weights and deposits between
    them, ranges cut by the grid's ends, disjoint and nested ranges, > 64 nodes (restarts)."""
    rng = np.random.default_rng(11)
    mean = rng.normal(0.0, 1.5, size=(5, 9))
    sd = rng.uniform(0.06, 0.9, size=(5, 9))
    weight = rng.uniform(0, 1, size=(5, 9))
    weight[0, 1] = weight[2, [3, 4]] = weight[4, 8] = 0.0
    sd[1, 4] = sd[3, [0, 5]] = 0.002  # deposited
    mean[2, 0], mean[2, 1] = -3.9, 3.8  # disjoint ranges
    mean[4, 2], sd[4, 2] = 6.0, 0.2  # wholly beyond the grid
    return mean, sd, weight, -4.0, 0.04, 8.0, 201


def _density_sequential(mean, sd, weight, x0, h, n_sd, nx):
    """The recurrence one component after the other (plain Python floats, the kernel's operations):
    the sums the kernel must give to the bit."""
    out = np.zeros((mean.shape[0], nx))
    for i in range(mean.shape[0]):
        row = [0.0] * nx
        for q in range(mean.shape[1]):
            w, mu, s = float(weight[i, q]), float(mean[i, q]), float(sd[i, q])
            if w == 0.0:
                continue
            if s < 0.25 * h:
                u = (mu - x0) / h
                j = math.floor(u)
                f = u - j
                if 0 <= j < nx:
                    row[j] += w * (1.0 - f)
                if 0 <= j + 1 < nx:
                    row[j + 1] += w * f
                continue
            c = w * h * (1.0 / math.sqrt(2.0 * math.pi)) / s
            j0 = max(0, math.ceil((mu - n_sd * s - x0) / h))
            j1 = min(nx - 1, math.floor((mu + n_sd * s - x0) / h))
            d = h / s
            e_d2 = math.exp(-d * d)
            for j in range(j0, j1 + 1):
                if (j - j0) % ik.DENSITY_RESTART == 0:
                    z = (x0 + j * h - mu) / s
                    g = math.exp(-0.5 * z * z)
                    rr = math.exp(-z * d - 0.5 * d * d)
                row[j] += c * g
                g *= rr
                rr *= e_d2
        out[i] = row
    return out


def k_density(mean, sd, weight, x0, h, n_sd, nx):
    out = np.zeros((mean.shape[0], nx))
    ik.mixture_density(mean, sd, weight, x0, h, n_sd, out)
    out32 = np.zeros((mean.shape[0], nx), dtype=np.float32)  # the grid products' precision
    ik.mixture_density(mean, sd, weight, x0, h, n_sd, out32)
    assert np.array_equal(out32, out.astype(np.float32))  # each row summed in float64, rounded once
    # pairs of components in one loop: the sums of one component after the other, to the bit
    assert np.array_equal(out, _density_sequential(mean, sd, weight, x0, h, n_sd, nx))
    return out


def t_density(mean, sd, weight, x0, h, n_sd, nx):
    x = x0 + h * np.arange(nx)
    out = np.zeros((mean.shape[0], nx))
    for i in range(mean.shape[0]):
        for q in range(mean.shape[1]):
            mu, s, w = mean[i, q], sd[i, q], weight[i, q]
            if s < h / 4:
                u = (mu - x0) / h
                j = int(np.floor(u))
                out[i, j] += w * (1 - (u - j))
                out[i, j + 1] += w * (u - j)
                continue
            z = (x - mu) / s
            out[i] += np.where(np.abs(z) <= n_sd, w * h * np.exp(-0.5 * z**2) / (s * math.sqrt(2 * math.pi)), 0.0)
    return out


def _lnr_inputs():
    ln_grid = np.log(np.geomspace(3.0, 40.0, 30))
    ln_p = RNG.uniform(-12, -1, size=(2, 30, 3))
    ln_nodes = np.log(RNG.uniform(2.0, 45.0, size=(2, 5, 4)))  # some outside the grid: end values
    weights = RNG.uniform(0, 1, size=(2, 5, 4))
    return ln_p, ln_grid, ln_nodes, weights


def k_lnr(ln_p, ln_grid, ln_nodes, weights):
    out = np.empty((ln_p.shape[0], ln_nodes.shape[1], ln_p.shape[2]))
    ik.lnr_interpolate(ln_p, ln_grid, ln_nodes, weights, out)
    return out


def t_lnr(ln_p, ln_grid, ln_nodes, weights):
    out = np.zeros((ln_p.shape[0], ln_nodes.shape[1], ln_p.shape[2]))
    for m in range(ln_p.shape[0]):
        for j in range(ln_p.shape[2]):
            out[m, :, j] = np.sum(weights[m] * np.exp(np.interp(ln_nodes[m], ln_grid, ln_p[m, :, j])), axis=-1)
    return out


def _lnr_cubic_inputs():
    ln_grid = np.log(np.geomspace(3.0, 40.0, 30))
    kink = np.zeros(30, dtype=bool)
    kink[[9, 11, 20]] = True  # pieces of 10, 3 (lower order), 10 and 10 points
    ln_p = RNG.uniform(-12, -1, size=(2, 30, 4))
    ln_p[0, 5:8, 1] = -690.0  # screened points: linear near them
    ln_p[1, 14:19, 2] = -60.0  # both ends below 1e-20: nothing added
    ln_nodes = np.log(RNG.uniform(2.0, 45.0, size=(2, 6, 4)))  # some outside the grid: end values
    weights = RNG.uniform(0, 1, size=(2, 6, 4))
    weights[0, 0, 0] = 0.0
    weights[1, 5] = 1e-295  # sums below float32's range: 0
    ln_p[1, :, 3] = -50.0  # a column with nothing to add at any node
    return ln_p, ln_grid, kink, ln_nodes, weights


def _lnr_cubic_deep_inputs():
    """ln P between -45 and -20 (P down to 3e-20), steep in ln R: a float32 sum of ln P itself would be off by
    |ln P| x 6e-8 ~ 3e-6 relative; the kernel's stencils relative to each interval's larger end keep ~1e-7."""
    rng = np.random.default_rng(123)
    ln_grid = np.log(np.geomspace(3.0, 70.0, 35))
    kink = np.zeros(35, dtype=bool)
    kink[[12, 20]] = True
    ln_p = (-20.0 - 25.0 * np.linspace(0.0, 1.0, 35)[None, :, None] ** 1.5
            + rng.uniform(-0.3, 0.3, size=(3, 1, 40)) * np.arange(35)[None, :, None] / 34.0)
    ln_nodes = np.log(rng.uniform(3.0, 70.0, size=(3, 20, 8)))
    weights = rng.uniform(0, 1, size=(3, 20, 8))
    return ln_p, ln_grid, kink, ln_nodes, weights


def k_lnr_cubic(ln_p, ln_grid, kink, ln_nodes, weights):
    out = np.empty((ln_p.shape[0], ln_nodes.shape[1], ln_p.shape[2]))
    ik.lnr_interpolate_cubic(ln_p, ln_grid, kink, ln_nodes, weights, out)
    out_j = np.full((ln_p.shape[0], ln_p.shape[2], ln_nodes.shape[1]), np.nan)  # j_major: the same values
    ik.lnr_interpolate_cubic(ln_p, ln_grid, kink, ln_nodes, weights, out_j, True)
    assert np.array_equal(np.swapaxes(out_j, 1, 2), out)
    return out


def t_lnr_cubic(ln_p, ln_grid, kink, ln_nodes, weights):
    """Polynomial through the (up to) 4 grid points around the interval inside its smooth piece,
    by solving the Vandermonde system; linear where a stencil value is screened (< -600); nothing
    where both ends are below ln 1e-20; ln P cut at 0; terms below e^-708 and sums below float32's
    smallest value are 0."""
    n_g = ln_grid.size
    edges = np.flatnonzero(kink | (np.arange(n_g) == 0) | (np.arange(n_g) == n_g - 1))
    out = np.zeros((ln_p.shape[0], ln_nodes.shape[1], ln_p.shape[2]))
    for m, r, k in np.ndindex(ln_nodes.shape):
        w = weights[m, r, k]
        if w == 0.0:
            continue
        x = min(max(ln_nodes[m, r, k], ln_grid[0]), ln_grid[-1])
        i0 = int(min(max(np.searchsorted(ln_grid, x) - 1, 0), n_g - 2))
        lo, hi = edges[edges <= i0].max(), edges[edges >= i0 + 1].min()
        a0 = max(lo, min(i0 - 1, hi - 3))
        pts = ln_grid[a0:min(a0 + 4, hi + 1)]
        for j in range(ln_p.shape[2]):
            vals = ln_p[m, a0:a0 + pts.size, j]
            a, b = ln_p[m, i0, j], ln_p[m, i0 + 1, j]
            if max(a, b) < math.log(1e-20):
                continue
            if vals.min() < -600.0:
                y = np.interp(x, ln_grid[i0:i0 + 2], [a, b])
            else:
                y = min(np.polyval(np.linalg.solve(np.vander(pts), vals), x), 0.0)
            out[m, r, j] += w * math.exp(y) if y >= -708.0 else 0.0
    return np.where(out < np.finfo(np.float32).smallest_subnormal, 0.0, out)


def k_exp(y):
    return np.array([ik._exp_fast(v) for v in y])


def t_exp(y):  # numpy's exp (correctly rounded to < 1 ulp); 0 below -708
    with np.errstate(over="ignore"):
        return np.where(y >= -708.0, np.exp(y), 0.0)


_EXP_ARGS = np.concatenate([RNG.uniform(-708.0, 0.0, 3000), RNG.uniform(-1.0, 1.0, 1000), RNG.uniform(-1e-6, 0, 100),
                            [0.0, -0.0, -708.0, -707.99, -708.01, -745.0, -1e300, -np.inf, 1.0, 700.0, 709.0,
                             -0.5 * math.log(2.0), 0.5 * math.log(2.0)]])


def _round_16_bits(x):
    """Twin of ``round_table``: each value to the nearest of 16 significant bits by its binary
    exponent (``frexp``: x = m 2^e, 0.5 <= |m| < 1; m 2^16 rounded to an integer), as float32."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))
    return np.ldexp(np.round(m * 2.0 ** 16), e - 16).astype(np.float32)


def test_round_table_is_the_nearest_16_bit_value():
    # probabilities over 37 decades (float32's normal range), in [0, 1], and values at 16 bits already
    x = np.concatenate([10.0 ** RNG.uniform(-37, 0, 20_000), RNG.uniform(0, 1, 5_000), [0.0, 1.0, 0.5, 1e-30]])
    got = ik.round_table(x)
    assert got.dtype == np.float32
    assert np.array_equal(got, _round_16_bits(x))
    pos = x > 0
    assert np.max(np.abs(got[pos].astype(np.float64) / x[pos] - 1.0)) <= 2.0 ** -16
    assert got[x == 0].tolist() == [0.0]
    # 16 significant bits: the float32 bytes end in a zero byte (the table store's saving)
    assert not np.any(got.view(np.uint32) & 0xFF)
    assert np.array_equal(ik.round_table(got), got)  # idempotent
    part = x[:25_000].reshape(50, -1)[:, ::3]  # any strides
    assert np.array_equal(ik.round_table(part), _round_16_bits(part))
    # the death pass's rounding (one state of weight 1, no direct deaths: the value itself) is the twin's too
    one = np.empty((1, 1, 1, 1, x.size), dtype=np.float32)
    ik.death_from_nested(x.reshape(1, 1, 1, 1, -1), np.ones((1, 1, 1)), np.empty((0, 0, 0, 0)), 0.0, True, one)
    assert np.array_equal(one.reshape(-1), _round_16_bits(x))
    # a value halfway between two 16-bit values is not at 16 bits: it moves by exactly half a step
    half = 1.0 + 2.0 ** -16
    assert abs(float(ik.round_table(np.array([half]))[0]) - half) == 2.0 ** -16


@numba.njit(nogil=True)
def _round32_mismatches(lo, hi):
    """Bit patterns b in [lo, hi) whose float32 value rounds differently by round_table_value32 and by
    round_table_value of its float64: (count, the first)."""
    bad, first = 0, -1
    for b in range(lo, hi):
        x = np.array([b], dtype=np.int32).view(np.float32)[0]
        if ik.round_table_value32(x) != ik.round_table_value(np.float64(x)):
            bad += 1
            if first < 0:
                first = b
    return bad, first


def test_round_table_value32_equals_the_float64_rounding_on_every_float32_in_0_2():
    # every float32 from +0 to 2.0 (subnormals included; expf_fast of y <= 0 is at most 1, the margin
    # covers an ulp above it): expand_magnitudes rounds its float32 values this way where no stencil value
    # takes the linear fallback, round_table_value elsewhere: one rounding
    assert _round32_mismatches(0, 0x40000001) == (0, -1)
    # the check can fail: a split factor of 2^9 + 1 keeps 15 bits, not 16
    x = np.float32(1.0 + 2.0 ** -15)
    assert ik.round_table_value32(x) == x
    c = x * np.float32(513.0)
    assert c - (c - x) != x


def _death_nested_inputs():
    # (m, t, f, k, r), not nested (the kernel nests: a running max from the top state), with ties
    # and zeros; 70 distance nodes (not a multiple of a vector width)
    pexc = RNG.uniform(0, 1, size=(2, 2, 3, 4, 70))
    pexc[0, 0, 0, 1] = pexc[0, 0, 0, 2]
    pexc[1, 1, 2, :, :10] = 0.0
    coef = RNG.uniform(0, 0.3, size=(2, 5, 4))
    direct = RNG.uniform(0, 0.1, size=(2, 2, 5, 70))
    return pexc, coef, direct, 0.4


def k_death_nested(pexc, coef, direct, factor):
    m, t, f, k, r = pexc.shape
    out = np.empty((t, f, coef.shape[1], m, r))
    ik.death_from_nested(pexc, coef, direct, factor, False, out)
    out2 = np.empty_like(out)
    ik.death_from_nested(pexc, coef, np.empty((0, 0, 0, 0)), factor, False, out2)  # without direct deaths
    out3 = np.empty_like(out)
    ik.death_from_nested(pexc, coef, direct, factor, True, out3)  # rounded to the tables' precision in the pass
    assert np.array_equal(out3, _round_16_bits(out).astype(np.float64))
    out3f = np.empty(out.shape, dtype=np.float32)  # into float32 tables: the same rounding
    ik.death_from_nested(pexc, coef, direct, factor, True, out3f)
    assert np.array_equal(out3f, _round_16_bits(out))
    out4 = np.empty_like(out)  # already nested input: the same bits (the nesting is exact)
    ik.death_from_nested(np.maximum.accumulate(pexc[:, :, :, ::-1], axis=3)[:, :, :, ::-1].copy(), coef, direct,
                         factor, False, out4)
    assert np.array_equal(out4, out)
    out5 = np.full_like(out, np.nan)  # a magnitude block at a time (m_offset): the same bits
    for m0 in range(m):
        ik.death_from_nested(pexc[m0:m0 + 1], coef, direct[m0:m0 + 1], factor, False, out5, m0)
    assert np.array_equal(out5, out)
    # per value the scalar sum over k in k order, then the direct deaths: the same bits
    nested = np.maximum.accumulate(pexc[:, :, :, ::-1], axis=3)[:, :, :, ::-1]
    for (mi, ti, fi, ri) in [(0, 0, 0, 0), (1, 1, 2, 69), (0, 1, 1, 33), (1, 0, 2, 5)]:
        for c in range(coef.shape[1]):
            s = 0.0
            for kk in range(k):
                s += nested[mi, ti, fi, kk, ri] * coef[ti, c, kk]
            assert out2[ti, fi, c, mi, ri] == s
            assert out[ti, fi, c, mi, ri] == s + factor * direct[mi, ti, c, ri]
    return out, out2, out3


def t_death_nested(pexc, coef, direct, factor):
    nested = np.maximum.accumulate(pexc[:, :, :, ::-1], axis=3)[:, :, :, ::-1]
    base = np.einsum("mtfkr,tck->tfcmr", nested, coef)
    full = base + factor * np.einsum("mtcr->tcmr", direct)[:, None]
    return full, base, _round_16_bits(full).astype(np.float64)


def _picked_inputs():
    from hra.inputs.source import magnitude_bins

    mag = magnitude_bins(np.array([0.8, 1.2]), np.array([4.6, 6.0]), 1.5, 0.25)  # unequal last bins
    K, T, R = 3, 2, 9
    tabs = RNG.uniform(1e-9, 1e-3, size=(K, T, mag.nodes.size, R)) * np.exp(RNG.normal(size=(K, T, mag.nodes.size, R)))
    tabs[RNG.uniform(size=tabs.shape) < 0.1] = 0.0  # zero edges: the linear fallback
    # ln g rising in M at nearly beta = 0.8 ln 10 over the first bins: |x| < 1e-3 (the series branch)
    tabs[0, 0, :4, 0] = 1e-4 * np.exp(0.8 * np.log(10.0) * 0.25 * np.arange(4) * (1.0 + 1e-4))
    with np.errstate(divide="ignore"):
        ln_tabs = np.log(tabs)
    pick = RNG.integers(0, K, size=mag.nodes.size)
    pick[:4] = 0
    return (tabs, ln_tabs, pick) + mag.bin_constants() + (mag.prob,)


def k_picked(tabs, ln_tabs, pick, beta_h, decay, frac_hi, inv_exprel_neg, prob):
    out = np.full(prob.shape[:2] + (tabs.shape[1], tabs.shape[3]), np.nan)
    ik.magnitude_integrate_picked(tabs, ln_tabs, pick, beta_h, decay, frac_hi, inv_exprel_neg, prob, out)
    return out


def t_picked(tabs, ln_tabs, pick, beta_h, decay, frac_hi, inv_exprel_neg, prob):
    from scipy.special import exprel

    g = np.moveaxis(tabs[pick, :, np.arange(pick.size), :], 0, -1)  # (t, r, m): the table picked per node
    lo, hi = g[..., :-1], g[..., 1:]
    pos = (lo > 0) & (hi > 0)
    out = []
    for b in range(prob.shape[0]):
        bh = beta_h[b]
        with np.errstate(divide="ignore", invalid="ignore"):
            ex = lo * exprel(np.log(hi / lo) - bh) / exprel(-bh)
        fh = 1.0 / bh - 1.0 / np.expm1(bh)
        e_bin = np.where(pos, ex, lo * (1.0 - fh) + hi * fh)
        out.append(np.einsum("trn,xn->xtr", e_bin, prob[b]))
    return np.stack(out)


def _scaled_add_inputs():
    d = RNG.uniform(0, 1e-3, size=(3, 2, 2, 7, 5))
    return d, d.astype(np.float32), RNG.uniform(0, 1, size=7), RNG.uniform(0, 1e-3, size=d.shape)


def k_scaled_add(d, d32, coef, base):
    out = np.full(d.shape, np.nan)
    ik.scaled_table_add(d, coef, out, True)
    acc = base.copy()
    ik.scaled_table_add(d, coef, acc, False)
    acc32 = base.copy()
    ik.scaled_table_add(d32, coef, acc32, False)  # float32 tables as stored: their values exactly
    return out, acc, acc32


def t_scaled_add(d, d32, coef, base):
    return d * coef[:, None], base + d * coef[:, None], base + d32.astype(np.float64) * coef[:, None]


#: chunk_lpr's ``year_factor`` when the rates carry every year as it is
NO_YEARS = np.zeros((0, 0, 0))


def _chunk_inputs(mixture):
    n_b, n_y, n_s, n_r, n_zt, n_u = 3, 2, 2, 40, 4, 6
    hist_args = _histogram_inputs()
    cx, cy, rates = hist_args[2], hist_args[3], RNG.uniform(0, 1e-3, size=(hist_args[2].size, n_y * n_s))
    bx = np.array([4300.0, 1200.0, 8800.0])
    by = np.array([3700.0, 600.0, 7100.0])
    typ_idx = np.array([[0, 1], [1, -1], [0, 1]])
    typ_prob = np.array([[0.7, 0.3], [1.0, 0.0], [0.4, 0.6]])
    zt_idx = np.array([[0, 1], [2, 0], [3, 1]])
    q_table = RNG.uniform(0, 1e-3, size=(n_zt, n_r, n_u))
    combo_s = np.array([0, 0, 0, 1, 1, 1])
    s_start = np.array([0, 3, 6])
    combo_w = np.array([0.2, 0.2, 0.1, 0.2, 0.2, 0.1])
    s_weights = np.array([0.5, 0.5])
    qbar = np.einsum("zru,u->zr", q_table, combo_w) / s_weights[combo_s].sum() * 2  # any table will do
    probs = np.array([0.5, 0.9])
    return (bx, by, zt_idx, typ_idx, typ_prob, np.arange(n_b, dtype=np.uint64), cx, cy, rates, n_y, n_s, 3.0,
            math.log(3.0), 0.05, n_r, 12.0, 1000.0, 1500.0, 4, q_table, combo_s, s_start, combo_w, qbar, s_weights,
            mixture, probs)


def k_chunk(*a):
    (bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, rates, n_y, n_s, depth, ln_r0, dln, n_r, r_max, cell, sub_r,
     n_sub, q_table, combo_s, s_start, combo_w, qbar, s_weights, mixture, probs) = a
    n_b = bx.size
    out_mean, out_q = np.empty((n_b, n_y)), np.empty((n_b, n_y, probs.size))
    ik.chunk_lpr(bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, rates, np.zeros((0, 0)), NO_YEARS, n_y, n_s, depth,
                 ln_r0, dln,
                 n_r, 1, r_max,
                 cell, sub_r, n_sub, 1, 0.0, False, q_table, combo_s, s_start, combo_w, qbar[:, :, None], s_weights, mixture, False,
                 np.empty(0, dtype=np.int64), np.uint64(1), probs, out_mean, out_q, np.empty((n_b, n_y, 0)),
                 np.empty((n_b, 0)))
    return out_mean, out_q


def t_chunk(*a):
    (bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, rates, n_y, n_s, depth, ln_r0, dln, n_r, r_max, cell, sub_r,
     n_sub, q_table, combo_s, s_start, combo_w, qbar, s_weights, mixture, probs) = a
    out_mean, out_q = np.empty((bx.size, n_y)), np.empty((bx.size, n_y, probs.size))
    for b in range(bx.size):
        hist = t_histogram(bx[b], by[b], cx, cy, rates, depth, ln_r0, dln, n_r, r_max, cell, sub_r, n_sub)
        hist = hist.reshape(n_r, n_y, n_s)  # columns v = y * S + s
        cand = [j for j in range(typ_idx.shape[1]) if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0]
        pj = typ_prob[b, cand]
        zt = zt_idx[b, cand]
        # mean: sum_j p_j sum_r (sum_s w_s hist) qbar; per combination u: sum_r hist[., s(u)] q[., u]
        out_mean[b] = np.einsum("j,rys,s,jr->y", pj, hist, s_weights, qbar[zt])
        per = np.einsum("rys,jru,su->jyu", hist, q_table[zt], np.eye(n_s)[:, combo_s])  # (j, y, u)
        for y in range(n_y):
            if mixture or len(cand) == 1:
                vals, wts = pj @ per[:, y], combo_w
            else:
                vals, wts = per[:, y].ravel(), np.outer(pj, combo_w).ravel()
            out_q[b, y] = t_quantiles(vals, wts, probs)
    return out_mean, out_q


def _contract_inputs():
    """Four histogram rows and table rows; branch segments of 0-13 columns (empty, shorter than a
    vector block, at column 0, ending at the last column), some rates zero (a whole (y, s) and
    single rows)."""
    n_y, n_s = 3, 9
    seg = np.concatenate([[0], np.cumsum([2, 0, 1, 5, 13, 3, 4, 8, 6])])
    h = RNG.uniform(0, 1e-3, size=(4, n_y * n_s))
    h[:, 4] = 0.0  # (y 0, s 4): all four rates zero
    h[1, 7] = 0.0
    h[[0, 3], 12] = 0.0
    q = RNG.uniform(-1e-4, 1e-3, size=(4, seg[-1]))
    acc = RNG.uniform(0, 1e-6, size=(n_y, seg[-1]))
    return h, q, seg, n_y, n_s, acc


def k_contract(h, q, seg, n_y, n_s, acc):
    out = acc.copy()
    ik._contract_rows(h[0], h[1], h[2], h[3], q[0], q[1], q[2], q[3], seg, n_y, n_s, out)
    return out


def t_contract(h, q, seg, n_y, n_s, acc):
    """acc[y, u] + sum_i h[i, y S + s(u)] q[i, u], the rows added one at a time (numpy's IEEE
    products and sums: the same bits)."""
    s_of_u = np.repeat(np.arange(n_s), np.diff(seg))
    out = acc.copy()
    for i in range(4):
        out = out + h[i].reshape(n_y, n_s)[:, s_of_u] * q[i]
    return out


def _tile_inputs():
    """Three accumulators of one table, 2 time rows, branch segments of 0-21 columns (empty, one
    column, shorter than a register tile, at column 0, ending at the last column), 19 live rows
    padded to 24 with the row of zeros (the last table row again), rates zero for one building in a
    row the others have; a second set 5 columns wide (narrower than a tile: the plain loop)."""
    n_t, n_s = 2, 8
    seg = np.concatenate([[0], np.cumsum([3, 0, 1, 21, 9, 8, 2, 17])])
    n_r, n_u, n_acc = 30, seg[-1], 3
    rows = np.sort(RNG.choice(n_r, 19, replace=False))
    ridx = np.concatenate([rows, np.full(5, rows[-1])]).astype(np.int64)
    hidx = np.concatenate([np.arange(19), np.full(5, 19)]).astype(np.int64)  # row 19: the zeros
    h = RNG.uniform(-1e-4, 1e-3, size=(n_acc * 20, n_t * n_s))
    h[19::20] = 0.0
    h[20 + 4] = 0.0  # building 1: no rates in its local row 4
    hbase = np.arange(n_acc, dtype=np.int64) * 20
    q = RNG.uniform(0, 1e-3, size=(n_r, n_u))
    acc = RNG.uniform(0, 1e-6, size=(2 * n_acc * n_t, n_u))  # accumulators at rows arow[i] + y
    arow = np.array([4, 0, 8], dtype=np.int64)
    narrow = (q[:, :5].copy(), np.array([0, 2, 2, 5, 5, 5, 5, 5, 5]), acc[:, :5].copy())
    return n_acc, acc, arow, q, ridx, hidx, h, hbase, seg, n_t, n_s, narrow


def k_tile(n_acc, acc, arow, q, ridx, hidx, h, hbase, seg, n_t, n_s, narrow):
    out = []
    for qq, sg, aa in ((q, seg, acc), narrow):
        for k in range(1, n_acc + 1):  # 1, 2 and 3 accumulators at a time
            a = aa.copy()
            ik._tile_contract(k, a, arow[:k].copy(), qq, ridx, hidx, 0, 8, h, hbase[:k].copy(), sg, n_t, n_s)
            ik._tile_contract(k, a, arow[:k].copy(), qq, ridx, hidx, 8, ridx.size, h, hbase[:k].copy(), sg, n_t, n_s)
            out.append(a)
    return tuple(out)


def t_tile(n_acc, acc, arow, q, ridx, hidx, h, hbase, seg, n_t, n_s, narrow):
    """The rows added one at a time (numpy's IEEE products and sums: the same bits)."""
    out = []
    for qq, sg, aa in ((q, seg, acc), narrow):
        s_of_u = np.repeat(np.arange(n_s), np.diff(sg))
        for k in range(1, n_acc + 1):
            a = aa.copy()
            for g in range(ridx.size):
                for i in range(k):
                    for y in range(n_t):
                        hv = h[hbase[i] + hidx[g]].reshape(n_t, n_s)[y, s_of_u]
                        a[arow[i] + y] = a[arow[i] + y] + hv * qq[ridx[g]]
            out.append(a)
    return tuple(out)


def _expand_rows_inputs():
    """Factor rows of 37 columns (two register tiles of EXPAND_COLS and a plain-loop rest), negative
    entries; the rows of 0-4 non-zero weights written at an offset into a wider output row. The
    weights make the order count: a tiny term first, then one row added and taken away again (last
    first, the tiny term would survive)."""
    basis = RNG.uniform(-1.0, 1.0, size=(5, 37))
    out = RNG.uniform(size=(3, 45))
    return out, basis, np.array([1e-17, 1.0, -1.0, 2.5e-4]), np.array([0, 4, 4, 2], dtype=np.int64)


def k_expand_rows(out, basis, wts, cidx):
    res = []
    for n_c in range(5):
        o = out.copy()
        ik._expand_rows(o, 1, 6, basis, wts, cidx, n_c)
        res.append(o)
    return tuple(res)


def t_expand_rows(out, basis, wts, cidx):
    """0.0 plus each weight times its row, one at a time (numpy's IEEE products and sums: the bits of
    ``flat = 0; flat += w * basis[c]``)."""
    res = []
    for n_c in range(5):
        o = out.copy()
        row = np.zeros(basis.shape[1])
        for t in range(n_c):
            row = row + wts[t] * basis[cidx[t]]
        o[1, 6:6 + row.size] = row
        res.append(o)
    return tuple(res)


def _chunk_mc_inputs():
    """Monte-Carlo realisations (the epistemic typology draws), rates of rank 2 given as a factor."""
    a = list(_chunk_inputs(False))
    cx = a[6]
    left = RNG.uniform(0, 1e-3, size=(cx.size, 2))
    basis = RNG.uniform(0, 1, size=(2, a[9] * a[10]))
    real_combo = RNG.integers(0, a[20].size, size=60)
    a[22] = np.bincount(real_combo, minlength=a[20].size) / real_combo.size  # combination weights of the draws
    return tuple(a) + (left, basis, real_combo)


def k_chunk_mc(*a):
    """chunk_lpr with Monte-Carlo realisations kept, the rates given as (left, basis) and as they are."""
    (bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, _, n_y, n_s, depth, ln_r0, dln, n_r, r_max, cell, sub_r,
     n_sub, q_table, combo_s, s_start, combo_w, qbar, s_weights, mixture, probs, left, basis, real_combo) = a
    n_b, n_mc = bx.size, real_combo.size
    outs = []
    for rates, rb in ((left, basis), (left @ basis, np.zeros((0, 0)))):
        out = (np.empty((n_b, n_y)), np.empty((n_b, n_y, probs.size)), np.empty((n_b, n_y, n_mc)), np.empty((n_b, n_mc)))
        ik.chunk_lpr(bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, rates, rb, NO_YEARS, n_y, n_s, depth, ln_r0, dln,
                     n_r, 1,
                     r_max, cell, sub_r, n_sub, 1, 0.0, False, q_table, combo_s, s_start, combo_w, qbar[:, :, None],
                     s_weights, mixture, True, real_combo, np.uint64(7), probs, *out)
        outs.extend(out[:3])
    return tuple(outs)


def t_chunk_mc(*a):
    """Each realisation i draws candidate j (the counter stream of :func:`hra.core.random.draw_candidate`)
    and takes combination real_combo[i]: LPR = sum_r hist(., s(u)) q[zt_j, ., u]; quantiles over the
    realisations with weight 1/N."""
    from hra.core.random import draw_candidate

    (bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, _, n_y, n_s, depth, ln_r0, dln, n_r, r_max, cell, sub_r,
     n_sub, q_table, combo_s, s_start, combo_w, qbar, s_weights, mixture, probs, left, basis, real_combo) = a
    rates = left @ basis
    n_b, n_mc = bx.size, real_combo.size
    out_mean, out_q, out_real = np.empty((n_b, n_y)), np.empty((n_b, n_y, probs.size)), np.empty((n_b, n_y, n_mc))
    for b in range(n_b):
        hist = t_histogram(bx[b], by[b], cx, cy, rates, depth, ln_r0, dln, n_r, r_max, cell, sub_r, n_sub)
        hist = hist.reshape(n_r, n_y, n_s)
        cand = [j for j in range(typ_idx.shape[1]) if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0]
        pj = typ_prob[b, cand]
        zt = zt_idx[b, cand]
        out_mean[b] = np.einsum("j,rys,s,jr->y", pj, hist, s_weights, qbar[zt])
        per = np.einsum("rys,jru,su->jyu", hist, q_table[zt], np.eye(n_s)[:, combo_s])
        for i, u in enumerate(real_combo):
            if len(cand) > 1:
                jj = draw_candidate(np.uint64(7), bkeys[b], i, typ_prob[b], len(cand))
                out_real[b, :, i] = per[jj, :, u]
            else:
                out_real[b, :, i] = pj @ per[:, :, u]
        for y in range(n_y):
            out_q[b, y] = t_quantiles(out_real[b, y], np.full(n_mc, 1.0 / n_mc), probs)
    return (out_mean, out_q, out_real) * 2


def _chunk_years_inputs():
    """Monte Carlo (epistemic draws) over 4 years whose rates per branch are one map scaled per year
    (rank 1: T = 1, all pairs contracted) and, in a second variant, branch 1 a sum of two maps with
    their own declines (T = 2, the other branch padded with a zero component; drawn pairs only)."""
    a = list(_chunk_mc_inputs())
    n_y, n_s, n_c = 4, a[10], a[6].size
    a[9] = n_y
    maps = RNG.uniform(0, 1e-3, size=(n_c, n_s))
    decline = np.array([[1.0, 1.0], [0.9, 0.95], [0.81, 0.9], [0.73, 0.86]])  # (Y, S)
    rank1 = maps[:, None, :] * decline[None]  # (c, Y, S)
    rank2 = rank1.copy()
    rank2[:, :, 1] += RNG.uniform(0, 1e-3, size=n_c)[:, None] * np.array([0.2, 0.5, 0.9, 1.4])[None, :]
    return tuple(a[:27]) + (rank1.reshape(n_c, -1), rank2.reshape(n_c, -1), a[29])


def k_chunk_years(*a):
    """chunk_lpr with the rates' years as time components (:func:`hra.inputs.forecast.factor_years`)."""
    from hra.inputs.forecast import factor_years

    (bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, _, n_y, n_s, depth, ln_r0, dln, n_r, r_max, cell, sub_r,
     n_sub, q_table, combo_s, s_start, combo_w, qbar, s_weights, mixture, probs, rank1, rank2, real_combo) = a
    n_b, n_mc = bx.size, real_combo.size
    outs = []
    for rates, n_t in ((rank1, 1), (rank2, 2)):
        coef, year = factor_years(rates, n_y, n_s)
        assert year.shape == (n_y, n_t, n_s) and coef.shape == (cx.size, n_t * n_s)
        out = (np.empty((n_b, n_y)), np.empty((n_b, n_y, probs.size)), np.empty((n_b, n_y, n_mc)), np.empty((n_b, n_mc)))
        ik.chunk_lpr(bx, by, zt_idx, typ_idx, typ_prob, bkeys, cx, cy, coef, np.zeros((0, 0)), year, n_y, n_s, depth,
                     ln_r0, dln, n_r, 1, r_max, cell, sub_r, n_sub, 1, 0.0, False, q_table, combo_s, s_start, combo_w,
                     qbar[:, :, None], s_weights, mixture, True, real_combo, np.uint64(7), probs, *out)
        outs.extend(out[:3])
    return tuple(outs)


def t_chunk_years(*a):
    """The Monte-Carlo twin (:func:`t_chunk_mc`) on the rates of every year as they are."""
    head, (rank1, rank2, real_combo) = a[:27], a[27:]
    eye = np.eye(rank1.shape[1])
    return t_chunk_mc(*head, rank1, eye, real_combo)[:3] + t_chunk_mc(*head, rank2, eye, real_combo)[:3]


# -- chunk_lpr: row groups, building windows, drawn pairs -------------------------------------------


def _chunk_rows_case(n_y=2, s_start=(0, 4, 4, 7)):
    """19 buildings (one more window of ik.BUILDING_WINDOW and 3), 1-3 typology candidates, a forecast
    basis (n_k = 3, the middle function zero: zero histogram rows between non-zero ones; 2 x 20 x 3
    = 120 rows per building, non-zero ones not a multiple of ik.ROW_GROUP), 2 azimuth nodes, rates
    given as a factor, source branches of 0-4 combinations (``s_start``), a tree mean per branch."""
    n_b, n_s, n_r, n_a, n_k, n_zt = ik.BUILDING_WINDOW + 3, 3, 20, 2, 3, 5
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    cx, cy = cx.ravel(), cy.ravel()
    left = RNG.uniform(0, 1e-3, size=(cx.size, 2))
    basis = RNG.uniform(0, 1, size=(2, n_k, n_y * n_s))
    basis[:, 1] = 0.0
    bx, by = RNG.uniform(0, 10_000, n_b), RNG.uniform(0, 8000, n_b)
    n_cand = RNG.integers(1, 4, n_b)
    typ_idx = np.where(np.arange(3) < n_cand[:, None], 0, -1)
    typ_prob = np.where(typ_idx >= 0, RNG.uniform(0.2, 1.0, (n_b, 3)), 0.0)
    typ_prob /= typ_prob.sum(1, keepdims=True)
    zt_idx = RNG.integers(0, n_zt, (n_b, 3))
    s_start = np.array(s_start)  # (branch 1 has no combination)
    combo_s = np.repeat(np.arange(n_s), np.diff(s_start))
    q_table = RNG.uniform(0, 1e-3, size=(n_zt, n_r * n_a * n_k, s_start[-1]))
    qbar = RNG.uniform(0, 1e-3, size=(n_zt, n_r * n_a * n_k, n_s))
    real_combo = RNG.integers(0, s_start[-1], size=50)
    combo_w = np.bincount(real_combo, minlength=s_start[-1]) / real_combo.size
    geo = (3.0, math.log(3.0), math.log(60.0 / 3.0) / (n_r - 1), n_r, n_k, 60.0, 1000.0, 1500.0, 3, n_a, -30.0, False)
    return dict(bx=bx, by=by, zt_idx=zt_idx, typ_idx=typ_idx, typ_prob=typ_prob, bkeys=np.arange(n_b, dtype=np.uint64),
                cx=cx, cy=cy, left=left, basis=basis.reshape(2, -1), n_y=n_y, n_s=n_s, geo=geo, q_table=q_table,
                combo_s=combo_s, s_start=s_start, combo_w=combo_w, qbar=qbar, s_weights=np.array([0.5, 0.2, 0.3]),
                real_combo=real_combo, probs=np.array([0.5, 0.9]))


def _run_rows_case(c, idx, factored=True, monte_carlo=True, window=ik.BUILDING_WINDOW):
    """chunk_lpr (epistemic typologies, realisations kept) on the buildings ``idx``, in that order,
    ``window`` buildings at a time (0: chunk_lpr's own choice, ik.window_size)."""
    n_b, n_y = len(idx), c["n_y"]
    n_keep = c["real_combo"].size if monte_carlo else c["s_start"][-1] * 3
    out = (np.empty((n_b, n_y)), np.empty((n_b, n_y, 2)), np.empty((n_b, n_y, n_keep)), np.empty((n_b, n_keep)))
    rates, rb = (c["left"], c["basis"]) if factored else (c["left"] @ c["basis"], np.zeros((0, 0)))
    depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_r, n_sub, n_a, strike, harmonic = c["geo"]
    ik.chunk_lpr(c["bx"][idx], c["by"][idx], c["zt_idx"][idx], c["typ_idx"][idx], c["typ_prob"][idx], c["bkeys"][idx],
                 c["cx"], c["cy"], rates, rb, NO_YEARS, n_y, c["n_s"], depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_r, n_sub,
                 n_a, strike, harmonic, c["q_table"], c["combo_s"], c["s_start"], c["combo_w"], c["qbar"], c["s_weights"],
                 False, monte_carlo, c["real_combo"] if monte_carlo else np.empty(0, dtype=np.int64), np.uint64(7),
                 c["probs"], *out, False, window)
    return out


def test_chunk_lpr_register_tiles_change_no_bit():
    """Wider tables (21 combinations: branch segments of 9, 0 and 12, register tiles of ik.TILE_COLS with
    a masked tail) and one year, so every (building, candidate) pair goes through the tiles
    (_tile_group: groups of 1-8 pairs of one table, tiles of 1-4): a building's values are the same bits
    alone, in a chunk of 19, in windows of 5 and in the reversed order, and equal the unfactored rates'
    (one building at a time, four rows per pass) within 1e-12."""
    c = _chunk_rows_case(n_y=1, s_start=(0, 9, 9, 21))
    n_b = c["bx"].size
    pairs = [(w, j) for w in range(n_b) for j in range(3) if c["typ_idx"][w, j] >= 0]
    per_table = np.bincount([c["zt_idx"][w, j] for w, j in pairs])
    assert per_table.max() > ik.TILE_PAIRS and c["q_table"].shape[2] > 2 * ik.TILE_COLS
    whole = _run_rows_case(c, np.arange(n_b))
    back = _run_rows_case(c, np.arange(n_b)[::-1])
    by5 = _run_rows_case(c, np.arange(n_b), window=5)
    for b in range(n_b):
        alone = _run_rows_case(c, np.array([b]))
        for w, r, f, a in zip(whole, back, by5, alone):
            np.testing.assert_array_equal(w[b], a[0])
            np.testing.assert_array_equal(r[n_b - 1 - b], a[0])
            np.testing.assert_array_equal(f[b], a[0])
    plain = _run_rows_case(c, np.arange(n_b), factored=False)
    for w, p in zip(whole, plain):
        np.testing.assert_allclose(w, p, rtol=1e-12, atol=1e-300)
    assert whole[0].max() > 0


def test_chunk_lpr_rows_windows_and_order_change_no_bit():
    """A building's values are the same bits alone, in a chunk of 19 (two windows of 16, four of 5,
    one of chunk_lpr's own size), and in the reversed order; they equal the numpy twin (histogram of the
    full rates, einsum contraction) within 1e-12, and the unfactored rates (one building at a time)
    within 1e-12."""
    from hra.core.random import draw_candidate

    c = _chunk_rows_case()
    n_b = c["bx"].size
    whole = _run_rows_case(c, np.arange(n_b))
    back = _run_rows_case(c, np.arange(n_b)[::-1])
    by5 = _run_rows_case(c, np.arange(n_b), window=5)
    auto = _run_rows_case(c, np.arange(n_b)[::-1], window=0)
    for b in range(n_b):
        alone = _run_rows_case(c, np.array([b]))
        for w, r, f, o, a in zip(whole, back, by5, auto, alone):
            np.testing.assert_array_equal(w[b], a[0])
            np.testing.assert_array_equal(r[n_b - 1 - b], a[0])
            np.testing.assert_array_equal(f[b], a[0])
            np.testing.assert_array_equal(o[n_b - 1 - b], a[0])
    plain = _run_rows_case(c, np.arange(n_b), factored=False)
    for w, p in zip(whole, plain):
        np.testing.assert_allclose(w, p, rtol=1e-12, atol=1e-300)
    # the twin
    depth, ln_r0, dln, n_r, n_k, r_max, cell, sub_r, n_sub, n_a, strike, harmonic = c["geo"]
    n_y, n_s = c["n_y"], c["n_s"]
    rates = c["left"] @ c["basis"]
    for b in range(n_b):
        hist = t_histogram_az(c["bx"][b], c["by"][b], c["cx"], c["cy"], rates, depth, ln_r0, dln, n_r, n_a, n_k, strike,
                              harmonic, r_max, cell, sub_r, n_sub).reshape(-1, n_y, n_s)
        assert (hist == 0).all(axis=(1, 2)).sum() >= n_r * n_a  # the zero basis function's rows
        cand = np.flatnonzero(c["typ_idx"][b] >= 0)
        pj, zt = c["typ_prob"][b, cand], c["zt_idx"][b, cand]
        mean = np.einsum("j,rys,s,jrs->y", pj, hist, c["s_weights"], c["qbar"][zt])
        per = np.einsum("rys,jru,su->jyu", hist, c["q_table"][zt], np.eye(n_s)[:, c["combo_s"]])
        real = np.empty((n_y, c["real_combo"].size))
        for i, u in enumerate(c["real_combo"]):
            jj = draw_candidate(np.uint64(7), c["bkeys"][b], i, c["typ_prob"][b], cand.size) if cand.size > 1 else 0
            real[:, i] = per[jj, :, u] if cand.size > 1 else pj @ per[:, :, u]
        np.testing.assert_allclose(whole[0][b], mean, rtol=1e-12)
        np.testing.assert_allclose(whole[2][b], real, rtol=1e-12, atol=1e-300)


def test_drawn_pairs_get_the_bits_of_the_dense_loop():
    """Monte Carlo with several candidates contracts only the drawn (candidate, combination) pairs;
    each realisation's value is, to the bit, the enumerated tree's value of its pair (all pairs)."""
    from hra.core.random import draw_candidate

    c = _chunk_rows_case()
    n_b = c["bx"].size
    mc = _run_rows_case(c, np.arange(n_b))
    enum = _run_rows_case(c, np.arange(n_b), monte_carlo=False)
    n_multi = 0
    for b in range(n_b):
        nj = int((c["typ_idx"][b] >= 0).sum())
        if nj == 1:
            continue
        n_multi += 1
        for i, u in enumerate(c["real_combo"]):
            jj = draw_candidate(np.uint64(7), c["bkeys"][b], i, c["typ_prob"][b], nj)
            np.testing.assert_array_equal(mc[2][b, :, i], enum[2][b, :, u * 3 + jj])
    assert n_multi >= 5


# -- event-based kernels -------------------------------------------------------------------------


def k_truncated(z, t):
    return np.array([ek.truncated_from_normal(zi, ti) for zi, ti in zip(z, t)])


def t_truncated(z, t):
    lo = ndtr(-t)
    x = ndtri(lo + (1 - 2 * lo) * ndtr(z))
    return np.where(t <= 0, z, np.clip(x, -t, t))


def k_poisson(mean, u):
    return np.array([ek.poisson_inverse(m, ui) for m, ui in zip(mean, u)])


def t_poisson(mean, u):
    return np.where(mean <= 0, 0, poisson.ppf(u, np.where(mean > 0, mean, 1.0))).astype(int)


def k_interp(table, x0, dx, x):
    return np.array([ek._interp(table, x0, dx, xi) for xi in x])


def t_interp(table, x0, dx, x):
    return np.interp(x, x0 + dx * np.arange(table.size), table)


def _grid_inputs():
    ncx, ncy, cell = 12, 9, 500.0
    bx = RNG.uniform(0, ncx * cell, 300)
    by = RNG.uniform(0, ncy * cell, 300)
    gi, gj = (bx // cell).astype(np.int64), (by // cell).astype(np.int64)
    c = gi + gj * ncx
    cell_order = np.argsort(c, kind="stable").astype(np.int64)
    cell_start = np.searchsorted(c[cell_order], np.arange(ncx * ncy + 1)).astype(np.int64)
    return bx, by, gi, gj, cell_start, cell_order, ncx, ncy


def k_window(bx, by, gi, gj, cell_start, cell_order, ncx, ncy, ci0, ci1, cj0, cj1):
    counts = np.diff(cell_start).reshape(ncy, ncx).T  # (ncx, ncy)
    sat = np.zeros((ncx + 1, ncy + 1))
    sat[1:, 1:] = counts.cumsum(0).cumsum(1)
    return ek.window_count(sat, ci0, ci1, cj0, cj1)


def t_window(bx, by, gi, gj, cell_start, cell_order, ncx, ncy, ci0, ci1, cj0, cj1):
    return np.sum((gi >= ci0) & (gi < ci1) & (gj >= cj0) & (gj < cj1))


def k_collect(bx, by, gi, gj, cell_start, cell_order, ncx, ncy, ci0, ci1, cj0, cj1, ex, ey, depth, r_cut):
    nwx, nwy = ci1 - ci0 + 1, cj1 - cj0 + 1
    mark, nodes, bidx = np.zeros(nwx * nwy, np.int8), np.empty(nwx * nwy, np.int64), np.empty(bx.size, np.int64)
    n_b, n_n = ek.collect_buildings(ex, ey, depth, r_cut, bx, by, gi, gj, cell_start, cell_order, ncx, ci0, ci1, cj0,
                                    cj1, mark, nodes, bidx)
    mark2 = np.zeros_like(mark)
    n_b2, n_n2 = ek.collect_nodes(ex, ey, depth, r_cut, bx, by, gi, gj, cell_start, cell_order, ncx, ci0, ci1, cj0,
                                  cj1, mark2, np.empty_like(nodes))
    assert (n_b2, n_n2) == (n_b, n_n)
    return np.sort(bidx[:n_b]), np.sort(nodes[:n_n])


def t_collect(bx, by, gi, gj, cell_start, cell_order, ncx, ncy, ci0, ci1, cj0, cj1, ex, ey, depth, r_cut):
    inside = (gi >= ci0) & (gi < ci1) & (gj >= cj0) & (gj < cj1)
    near = ((bx - ex) * 1e-3) ** 2 + ((by - ey) * 1e-3) ** 2 + depth**2 <= r_cut**2
    b = np.flatnonzero(inside & near)
    nwx = ci1 - ci0 + 1
    li, lj = gi[b] - ci0, gj[b] - cj0
    nodes = np.unique(np.concatenate([li + lj * nwx, li + 1 + lj * nwx, li + (lj + 1) * nwx, li + 1 + (lj + 1) * nwx]))
    return b, nodes


def _magnitude_bins_inputs():
    n_m, n_r, n_k, n_l = 7, 5, 3, 6
    p = np.exp(RNG.uniform(-30.0, 0.0, size=(n_m, n_r, n_k * n_l + 4)))
    p[RNG.uniform(size=p.shape) < 0.1] = 0.0  # the linear fallback
    branch_col = np.array([4 + n_l, 4, 4 + 2 * n_l], dtype=np.int64)
    beta_h = RNG.uniform(0.05, 0.4, n_m - 1)
    cell_bin = np.array([0, 0, 1, 2, 2, 3, 4, 5, 5, 5], dtype=np.int64)
    cell_lo = np.array([0, 1, 1, 2, 0, 0, 1, 2, 0, 1], dtype=np.int64)
    cell_hi = np.array([0, 2, 1, 2, 1, 0, 1, 0, 0, 2], dtype=np.int64)
    # |ln(hi / lo) - beta_h| < 1e-3 (the series) at some entries: hi = lo e^(beta_h + d)
    for n, d in ((2, 0.0), (3, 4e-4), (6, -2e-5)):
        i, a, b = cell_bin[n], branch_col[cell_lo[n]], branch_col[cell_hi[n]]
        p[i + 1, :, b:b + 3] = p[i, :, a:a + 3] * np.exp(beta_h[i] + d)
    with np.errstate(divide="ignore"):
        ln_tab = np.stack([np.log(p[:, :, c:c + n_l]) for c in branch_col])
    frac_hi = 1.0 / beta_h - 1.0 / np.expm1(beta_h)
    return p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, frac_hi


def k_magnitude_bins(p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, frac_hi):
    out = np.empty((cell_bin.size, p.shape[1], ln_tab.shape[3]))
    ik.magnitude_bin_expectations(p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, np.exp(-beta_h), frac_hi,
                                  1.0 / exprel(-beta_h), out)
    return out


def t_magnitude_bins(p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, frac_hi):
    # E_bin[g] = lo exprel(ln(hi / lo) - beta h) / exprel(-beta h) where lo, hi > 0, else linear
    n_l = ln_tab.shape[3]
    r = np.arange(p.shape[1])[None, :, None]
    lo = p[cell_bin[:, None, None], r, branch_col[cell_lo][:, None, None] + np.arange(n_l)]
    hi = p[cell_bin[:, None, None] + 1, r, branch_col[cell_hi][:, None, None] + np.arange(n_l)]
    bh = beta_h[cell_bin][:, None, None]
    pos = (lo > 0) & (hi > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ex = lo * exprel(np.log(hi / lo) - bh) / exprel(-bh)
    fh = frac_hi[cell_bin][:, None, None]
    return np.where(pos, ex, lo * (1.0 - fh) + hi * fh)


def _weighted_sum_inputs():
    d = RNG.uniform(0, 1e-3, size=(4, 3, 2, 7, 11))
    coef = RNG.uniform(0, 1, size=7)
    coef[[1, 4]] = 0.0  # magnitudes where the table has no weight (skipped)
    return d, np.array([3, 0, 2], dtype=np.int64), RNG.uniform(0, 1, size=(3, 2)), coef


def k_weighted_sum(d, rows, wfc, coef):
    out = np.full((rows.size,) + d.shape[3:], 0.5)
    ik.weighted_table_sum(d, rows, wfc, coef, out)
    return out


def t_weighted_sum(d, rows, wfc, coef):
    return 0.5 + np.einsum("tfcmr,fc,m->tmr", d[rows], wfc, coef)


def _slice_sum_inputs(copy):
    rng = np.random.default_rng(22)  # its own stream: the other entries' inputs stay as they were
    d = rng.uniform(0, 1e-3, size=(4, 3, 2, 7, 11)).astype(np.float32)  # float32 as stored
    coef = rng.uniform(0, 1, size=7)
    coef[[1, 4]] = 0.0  # magnitudes where the table has no weight (skipped)
    w = rng.uniform(0, 1) * coef
    return d, np.array([3, 0, 2], dtype=np.int64), 2, 1, w, 2, 3 if copy else 0


def k_slice_sum(d, rows, f, c, w, lo, n_copy):
    out = np.full((rows.size,) + d.shape[3:], 0.5)
    dst = np.full((n_copy, rows.size, d.shape[4]), np.nan)
    ik.weighted_slice_sum(d, rows, f, c, w, out, lo, dst)
    return out, dst


def t_slice_sum(d, rows, f, c, w, lo, n_copy):
    out = 0.5 + d[rows, f, c].astype(np.float64) * w[None, :, None]  # one term per element: the same bits
    return out, np.swapaxes(d[rows, f, c, lo:lo + n_copy], 0, 1).astype(np.float64)


def _scatter_inputs():
    rng = np.random.default_rng(23)  # its own stream: the other entries' inputs stay as they were
    acc = rng.uniform(0, 1e-3, size=(3, 6, 10))  # (K, u, x)
    term = rng.uniform(0, 1e-3, size=(5, 10))
    # rows of three combinations, one of them with basis functions 0 and 2 only (a dead function between)
    return acc, term, np.array([0, 1, 0, 2, 0], dtype=np.int64), np.array([4, 4, 1, 1, 3], dtype=np.int64)


def _scatter_fresh_inputs():
    """Rows not written yet (fresh, NaN in memory) among written ones, a row hit twice, -0.0 in a product."""
    acc, term, k_of_row, u_of_row = _scatter_inputs()
    fresh = np.zeros(acc.shape[:2], dtype=bool)
    fresh[[0, 1, 2], [4, 4, 0]] = True  # (0, 4) and (1, 4) are written below, (2, 0) is not
    term = np.concatenate([term, term[:1] * 0.5])
    term[0, 3] = -0.0
    k_of_row, u_of_row = np.append(k_of_row, 0), np.append(u_of_row, 4)  # (0, 4) again: set, then added
    return acc, term, k_of_row, u_of_row, fresh


def k_scatter(acc, term, k_of_row, u_of_row, fresh=None):
    out = acc.copy()
    if fresh is None:
        ik.add_rows_scattered(out, term, k_of_row, u_of_row, np.zeros((0, 0), dtype=bool))
        return out
    out[fresh] = np.nan  # undefined memory: every value read from it would show
    left = fresh.copy()
    ik.add_rows_scattered(out, term, k_of_row, u_of_row, left)
    assert np.flatnonzero(left).tolist() == [2 * left.shape[1]]  # (2, 0): no row of term writes it
    out[left] = 0.0  # as zone_tables does with the rows no product wrote
    return out


def t_scatter(acc, term, k_of_row, u_of_row, fresh=None):
    out = acc.copy()
    if fresh is not None:
        out[fresh] = 0.0  # the rows the kernel sets are zeroed sums
    for i in range(term.shape[0]):  # numpy's row additions, as _forecast_gemm made them before the kernel
        out[k_of_row[i], u_of_row[i]] += term[i]
    return out


def test_add_rows_scattered_sets_fresh_rows_to_the_bits_of_a_zeroed_sum():
    # the twin above compares values; here the bits, -0.0 included (0.0 + -0.0 is +0.0)
    acc, term, k_of_row, u_of_row, fresh = _scatter_fresh_inputs()
    got, want = k_scatter(acc, term, k_of_row, u_of_row, fresh), t_scatter(acc, term, k_of_row, u_of_row, fresh)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert not np.signbit(got[0, 4, 3])


def _q_layout_inputs(projected):
    acc = RNG.uniform(0, 1e-3, size=(2, 5, 3, 4, 3))  # (K, u, t, r, a)
    a0 = np.deg2rad([0.0, 45.0, 90.0])
    proj = np.linalg.inv(np.cos(2.0 * a0[:, None] * np.arange(3)[None, :])) if projected else np.zeros((0, 0))
    return acc, proj


def k_q_layout(acc, proj):
    K, U, T, NR, A = acc.shape
    out = np.full((T, NR, A, K, U), np.nan)
    ik.forecast_q_layout(acc, proj, out)
    return out


def t_q_layout(acc, proj):
    x = np.transpose(acc, (2, 3, 4, 0, 1))  # (t, r, a, K, u)
    if proj.size == 0:
        return x
    out = np.zeros(x.shape)
    for a in range(x.shape[2]):  # the sum over a in ascending order, as project_azimuth's einsum
        out = out + proj[None, None, :, a, None, None] * x[:, :, a][:, :, None]
    return out


_Z = RNG.normal(size=50) * 2
_T = np.concatenate([np.zeros(5), RNG.uniform(0.5, 4.0, size=45)])
_MEANS = np.concatenate([[0.0, -1.0], RNG.uniform(0.01, 30.0, size=48)])
_U = RNG.uniform(0, 1, size=50)
_TABLE = RNG.normal(size=25)

#: (name, kernel, twin, inputs, rtol)
def _window_inputs():
    return (np.array([1, 10, 10, 3, 10, 2, 10]), np.array([1, 1, 7, 7, 49, 1, 1]),
            np.array([937, 937, 937, 200, 5000, 2, 937]), np.array([0, 0, 0, 0, 0, 0, 1_800_000]))


def k_window_size(n_j, n_t, n_u, n_h):
    return np.array([ik.window_size(j, t, u, h) for j, t, u, h in zip(n_j, n_t, n_u, n_h)])


def t_window_size(n_j, n_t, n_u, n_h):
    """accumulators of 8 + 8 bytes (amat, acomp) per time row, 8 + 4 (pair_w, pair_u); 8 per
    histogram value"""
    fit = ik.WINDOW_BYTES // (n_j * n_u * (8 * 2 * n_t + 8 + 4) + 8 * n_h)
    return np.clip(fit, ik.BUILDING_WINDOW, ik.BUILDING_WINDOW_MAX)


def _wide_histogram_inputs(n_v, n_sub=1):
    """n_k = 1 with n_v columns (the vector accumulate of _cells_rows and its scalar tail), harmonic,
    cubic; its own stream (the other inputs keep their draws)."""
    rng = np.random.default_rng(122)
    cx, cy = np.meshgrid(np.arange(0, 10_000, 1000.0), np.arange(0, 8000, 1000.0))
    rates = rng.uniform(0, 1e-3, size=(cx.size, n_v))
    return (4300.0, 3700.0, cx.ravel(), cy.ravel(), rates, 3.0, math.log(3.0), 0.05, 60, 3, 1, 37.0, True, 12.0, 1000.0,
            1500.0, n_sub, True)


def _expand_inputs(rounded):
    """Tables at the computed nodes of a plan with two kinks (zeros in some stencils, values near 1)."""
    from hra.integration import magnitudes

    nodes = np.round(2.0 + 0.1 * np.arange(23), 10)
    plan = magnitudes.stride_plan(nodes, 2, (3.05, 3.9))
    ms = plan.computed.size
    x = nodes[plan.computed]
    ln_p = -20.0 + 8.0 * (x - 2.0)[None, :, None] - RNG.uniform(0.0, 1.0, size=(5, 1, 6)) * (x - 1.0)[None, :, None] ** 2
    sub = np.exp(np.minimum(ln_p + 18.0 * (np.arange(5) == 4)[:, None, None], 0.0))
    sub[1, :3, :] = 0.0
    sub[2, 5, 2] = 0.0
    return sub, plan.src, plan.weights, plan.n_used, plan.lin_idx, plan.lin_w, rounded


def k_expand(sub, src, w, n_used, lin_idx, lin_w, rounded):
    if rounded:  # float32 tables of 16-bit values in, rounded values out
        out = np.full((sub.shape[0], src.shape[0], sub.shape[2]), np.nan, dtype=np.float32)
        ik.expand_magnitudes(ik.round_table(sub), src, w, n_used, lin_idx, lin_w, True, out)
        return out
    out = np.full((sub.shape[0], src.shape[0], sub.shape[2]), np.nan)
    ik.expand_magnitudes(sub, src, w, n_used, lin_idx, lin_w, False, out)
    return out


def t_expand(sub, src, w, n_used, lin_idx, lin_w, rounded):
    if rounded:
        sub = ik.round_table(sub).astype(np.float64)
    out = np.empty((sub.shape[0], src.shape[0], sub.shape[2]))
    for m in range(src.shape[0]):
        st = sub[:, src[m, :n_used[m]], :]
        if n_used[m] == 1:
            out[:, m, :] = st[:, 0, :]
            continue
        with np.errstate(divide="ignore"):
            y = np.einsum("u,nur->nr", w[m, :n_used[m]], np.log(np.where(st > 0, st, 1.0)))
        lin = lin_w[m, 0] * sub[:, lin_idx[m, 0], :] + lin_w[m, 1] * sub[:, lin_idx[m, 1], :]
        out[:, m, :] = np.where((st > 0).all(axis=1), np.exp(np.minimum(y, 0.0)), lin)
    return out


TWINS = [
    ("fragility.nest_exceedance", k_nest, t_nest, (_crossing_exceedances(),), 0.0),
    ("fragility.death_given_nested", k_death, t_death, _death_inputs(), 1e-14),
    ("integration.death_table", k_death_table, t_death_table, _death_table_inputs(), 1e-12),
    ("integration.lognormal_expectation", k_expectation, t_expectation, _expectation_inputs(), 1e-12),
    ("integration.distance_histogram", k_histogram, t_histogram, _histogram_inputs(), 1e-12),
    ("integration.distance_histogram_k", k_histogram_k, t_histogram_k, _histogram_k_inputs(), 1e-12),
    ("integration.distance_azimuth_histogram_k", k_histogram_az, t_histogram_az, _histogram_az_inputs(), 1e-10),
    ("integration.distance_azimuth_histogram_k[harmonic]", k_histogram_az, t_histogram_az, _histogram_harmonic_inputs(),
     1e-10),
    # (cubic: signed weights, some sums cancel in part; the twin's polyfit weights carry ~1e-12 rounding)
    ("integration.distance_azimuth_histogram_k[cubic]", k_histogram_az, t_histogram_az, _histogram_az_inputs() + (True,),
     1e-9),
    # (signed harmonic rows times signed cubic weights: a few entries are cancellation remnants, ~1e-4 of
    # the row's scale, where the twin's polyfit rounding shows at ~1e-9 relative)
    ("integration.distance_azimuth_histogram_k[harmonic, cubic]", k_histogram_az, t_histogram_az,
     _histogram_harmonic_inputs() + (True,), 1e-8),
    ("integration.distance_azimuth_histogram_k[one azimuth, cubic]", k_histogram_az, t_histogram_az,
     _histogram_one_azimuth_inputs() + (True,), 1e-9),
    ("integration._cos_2az", k_cos_2az, t_cos_2az, _cos_2az_inputs(), 1e-15),
    ("integration._node_fraction+_rule_slots+_rule_n_slot", k_rule, t_rule, _rule_inputs(), 1e-9),
    # 5 harmonic rows (the recurrence beyond cos 4az); a building on a cell centre (d = 0), no sub-cells
    ("integration.distance_azimuth_histogram_k[5 harmonics, cubic, on a cell centre]", k_histogram_az,
     t_histogram_az, _geometry_histogram_inputs(4000.0, 3000.0, 60, 0.05, 5, True, 1), 1e-8),
    # 4 and 3 distance nodes: the cubic rule's shifted end slots; azimuth nodes; sub-cells
    ("integration.distance_azimuth_histogram_k[nodes, cubic, n_r = 4]", k_histogram_az, t_histogram_az,
     _geometry_histogram_inputs(4300.0, 3700.0, 4, 0.4, 4, False, 4), 1e-9),
    ("integration.distance_azimuth_histogram_k[harmonic, cubic, n_r = 3]", k_histogram_az, t_histogram_az,
     _geometry_histogram_inputs(4300.0, 3700.0, 3, 0.5, 3, True, 4), 1e-8),
    # n_k = 1 with 19 columns: the vectors over runs of cells and the scalar tail (_cells_rows), sub-cells
    ("integration.distance_azimuth_histogram_k[n_k = 1, 19 columns, harmonic, cubic]", k_histogram_az,
     t_histogram_az, _wide_histogram_inputs(19, 4), 1e-8),
    ("integration.weighted_quantiles", k_quantiles, t_quantiles, _quantile_inputs(), 0.0),
    # exact steps, zero weights, many ties, one value; the selection and the sort it defers to
    ("integration._select_quantiles[1000 values, exact steps]", k_select, t_quantiles,
     _quantile_step_inputs(1000, 0, 11), 0.0),
    ("integration._select_quantiles[ties]", k_select, t_quantiles, _quantile_step_inputs(997, 7, 12), 0.0),
    ("integration.weighted_quantiles[one value]", k_quantiles, t_quantiles, _quantile_step_inputs(1, 0, 13), 0.0),
    ("integration._sorted_quantiles[ties]", k_sorted_quantiles, t_quantiles, _quantile_step_inputs(300, 5, 14), 0.0),
    ("integration.mixture_density", k_density, t_density, _density_inputs(), 1e-9),
    ("integration.mixture_density[pairs]", k_density, t_density, _density_pair_inputs(), 1e-9),
    ("integration.lnr_interpolate", k_lnr, t_lnr, _lnr_inputs(), 1e-12),
    # float32 sums: each term's stencil relative to its interval's larger end, float32's exp (measured 2.2e-7)
    ("integration.lnr_interpolate_cubic", k_lnr_cubic, t_lnr_cubic, _lnr_cubic_inputs(), 1e-6),
    ("integration.lnr_interpolate_cubic[ln P to -45]", k_lnr_cubic, t_lnr_cubic, _lnr_cubic_deep_inputs(), 1e-6),
    # ln P interpolated between the computed magnitude nodes (zeros: linear P); float32's log, weighted sum and
    # exp: |ln P| <= 20 here, ~1e-6
    ("integration.expand_magnitudes", k_expand, t_expand, _expand_inputs(False), 1e-5),
    # rounded to 16 significant bits: within half a step (2^-16 relative) of the twin's unrounded value
    ("integration.expand_magnitudes[rounded]", k_expand, t_expand, _expand_inputs(True), 3.1e-5),
    ("integration._exp_fast", k_exp, t_exp, (_EXP_ARGS,), 4.5e-16),  # 1 ulp from exp here; 2 allowed (libm/numpy)
    ("integration.death_from_nested", k_death_nested, t_death_nested, _death_nested_inputs(), 1e-12),
    ("integration.scaled_table_add", k_scaled_add, t_scaled_add, _scaled_add_inputs(), 0.0),  # the same bits
    ("integration.weighted_table_sum", k_weighted_sum, t_weighted_sum, _weighted_sum_inputs(), 1e-13),
    ("integration.weighted_slice_sum", k_slice_sum, t_slice_sum, _slice_sum_inputs(True), 0.0),  # the same bits
    ("integration.weighted_slice_sum[no copy]", k_slice_sum, t_slice_sum, _slice_sum_inputs(False), 0.0),
    ("integration.add_rows_scattered", k_scatter, t_scatter, _scatter_inputs(), 0.0),  # the same bits
    ("integration.add_rows_scattered[fresh]", k_scatter, t_scatter, _scatter_fresh_inputs(), 0.0),  # the same bits
    ("integration.forecast_q_layout", k_q_layout, t_q_layout, _q_layout_inputs(False), 0.0),  # a copy
    ("integration.forecast_q_layout[harmonic]", k_q_layout, t_q_layout, _q_layout_inputs(True), 0.0),  # the same bits
    ("integration.magnitude_bin_expectations", k_magnitude_bins, t_magnitude_bins, _magnitude_bins_inputs(), 1e-12),
    ("integration.magnitude_integrate_picked", k_picked, t_picked, _picked_inputs(), 1e-12),
    ("integration._contract_rows", k_contract, t_contract, _contract_inputs(), 0.0),  # the same bits
    ("integration.window_size", k_window_size, t_window_size, _window_inputs(), 0.0),
    ("integration.chunk_lpr[mixture]", k_chunk, t_chunk, _chunk_inputs(True), 1e-12),
    ("integration.chunk_lpr[epistemic]", k_chunk, t_chunk, _chunk_inputs(False), 1e-12),
    ("integration.chunk_lpr[monte carlo, factored rates]", k_chunk_mc, t_chunk_mc, _chunk_mc_inputs(), 1e-12),
    ("eventbased.truncated_from_normal", k_truncated, t_truncated, (_Z, _T), 1e-9),
    ("eventbased.poisson_inverse", k_poisson, t_poisson, (_MEANS, _U), 0.0),
    ("eventbased._interp", k_interp, t_interp, (_TABLE, -1.0, 0.25, RNG.uniform(-2, 6, 40)), 1e-14),
    ("eventbased.window_count", k_window, t_window, _grid_inputs() + (2, 9, 1, 7), 0.0),
    ("eventbased.collect_buildings+collect_nodes", k_collect, t_collect,
     _grid_inputs() + (2, 9, 1, 7, 2600.0, 2100.0, 3.0, 3.6), 0.0),
    # last: its inputs draw from RNG after every other entry's (theirs stay as they were)
    ("integration.chunk_lpr+_years_from_components[monte carlo, year components]", k_chunk_years, t_chunk_years,
     _chunk_years_inputs(), 1e-12),
    ("integration._tile_contract", k_tile, t_tile, _tile_inputs(), 0.0),  # the same bits
    ("integration._expand_rows", k_expand_rows, t_expand_rows, _expand_rows_inputs(), 0.0),  # the same bits
]


@pytest.mark.parametrize("name, kernel, twin, inputs, rtol", TWINS, ids=[t[0] for t in TWINS])
def test_kernel_equals_its_numpy_twin(name, kernel, twin, inputs, rtol):
    got, want = kernel(*inputs), twin(*inputs)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w, float), rtol=rtol, atol=1e-300, err_msg=name)


def _cell_by_cell_histogram(args):
    """The histogram of cells without sub-cells as the plain loop ``hist[rows] += w * x`` cell by
    cell, in numpy (IEEE products, then sums, in cell order): the reference for the bits."""
    bx, by, cx, cy, rates, depth, ln_r0, dln, n_r, n_a, _, strike, harmonic, r_max = args[:14]
    n_c = cx.size
    base, wd, aval = np.empty(n_c, dtype=np.int64), np.zeros((4, n_c)), np.zeros(n_c)
    ik._cell_geometry(bx, by, cx, cy, 0, n_c, depth, ln_r0, dln, n_r, n_a, strike, harmonic, r_max, 0.0, 1, 4, base, wd,
                      aval)
    hist, wa = np.zeros((n_r * n_a, rates.shape[1])), np.zeros(n_a)
    for c in range(n_c):
        if base[c] < 0:
            continue
        ik._azimuth_weights(aval[c], n_a, harmonic, wa)
        w = (wd[:, c, None] * wa[None, :]).ravel()  # (slot, azimuth row): the kernel's w = wd * wa
        rows = slice(base[c] * n_a, base[c] * n_a + w.size)
        hist[rows] = hist[rows] + w[:, None] * rates[c][None, :]
    return hist


@pytest.mark.parametrize("n_v", [1, 3, 4, 11, 20, 27])
def test_histogram_vectors_keep_the_cell_by_cell_bits(n_v):
    """The n_k = 1 accumulate (vectors of HIST_VEC columns over runs of cells, a scalar tail) gives
    every entry the bits of the cell-by-cell loop; so do zero-padded columns (chunk_lpr pads the
    factored rates) and strided (non-contiguous) rates and histogram."""
    args = _wide_histogram_inputs(n_v)
    ref = _cell_by_cell_histogram(args)
    assert np.count_nonzero(ref) > ref.size // 4
    np.testing.assert_array_equal(k_histogram_az(*args), ref)
    rates = args[4]
    pad = np.zeros((rates.shape[0], n_v + 5))
    pad[:, :n_v] = rates
    got = k_histogram_az(*args[:4], pad, *args[5:])
    np.testing.assert_array_equal(got[:, :n_v], ref)
    assert not got[:, n_v:].any()
    hist = np.zeros((ref.shape[1], ref.shape[0])).T  # strided views of both
    ik.distance_azimuth_histogram_k(*args[:4], np.asfortranarray(rates), *args[5:17], hist, True)
    np.testing.assert_array_equal(hist, ref)


def test_twins_cover_every_deterministic_kernel():
    """A new kernel needs a twin here (or a reason to be left out)."""
    left_out = {"pair_damage", "event_damage", "field_values", "damage_listed",  # random streams
                "_subcells", "_cell_geometry", "_add_outer_k", "_azimuth_weights",
                "_folded_azimuth", "_cells_rows", "_cells_cols",  # parts of distance_histogram(_k),
                "_grid_interval",  # distance_azimuth_histogram_k, lnr_interpolate(_cubic) (twinned there)
                "_bin_expectation",  # magnitude_bin_expectations, magnitude_integrate_picked (twinned there)
                "_swap_pair",  # _select_quantiles (twinned there)
                "round_table_value", "round_table",  # test_round_table_is_the_nearest_16_bit_value (and death_from_nested)
                "round_table_value32",  # test_round_table_value32_equals_the_float64_rounding_on_every_float32_in_0_2
                "_gauss_setup", "_gauss_node",  # mixture_density (twinned there, pairs to the bit)
                "_contract_group", "_flush_groups", "_nonzero", "_axpy", "_msum_rows", "_msum_row", "_tile_group",
                "_building_values"}  # parts of chunk_lpr (twinned there)
    names = {part for n, *_ in TWINS for part in n.split(".", 1)[-1].split("[")[0].split("+")}
    for mod in (ik, ek):
        for n, f in vars(mod).items():
            if getattr(f, "__module__", None) == mod.__name__ and hasattr(f, "py_func"):
                assert n in names or n in left_out, f"{mod.__name__}.{n} has no numpy twin in {__name__}"


def test_groningen_fcm_uses_the_nesting_convention():
    from fragility.groningen import p_death_nested

    assert p_death_nested is fl.p_death_nested
    # crossing exceedances: P(>=CS1) = 0.1 < P(>=CS2) = 0.3 is lifted to 0.3 before the sum
    assert float(p_death_nested([0.1, 0.3, 0.05], [0.1, 0.3, 0.6])) == pytest.approx(0.3 * 0.1 + 0.3 * 0.2 + 0.05 * 0.3)
