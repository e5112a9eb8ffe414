"""numba kernels of the engine (no I/O, no dask, no model equations).

Layout letters used in comments: b = buildings, c = source cells, y = years, s = source-rate
branches, r = distance nodes, m = magnitude nodes, q = mixture components, t = typologies,
f = fragility branches, k = collapse states, u = model-branch combinations, j = typology
candidates of a building, n = values per (building, year), p = quantile probabilities.

Data flow per building (see engine.py):

1. ``distance_histogram``: the building's annual rate of M >= m_min events per hypocentral
   distance node, ``H[r, y*S + s]``, by linear interpolation in ln R between nodes (sub-cells
   for nearby cells). One pass over the source cells.
2. ``building_values``: ``A[j, y, u] = sum_r H[r, y, s_u] Q[zt_j, r, u]`` for each typology
   candidate j; ``Q`` holds the expected death probability per event at distance node r,
   already integrated over magnitude, residuals and fragility for model combination u.
3. realisation weights: enumeration -> combination weights (x typology probabilities);
   Monte Carlo -> counts of the drawn (combination, typology) pairs / N, the typology drawn
   from a counter-based hash of (seed, building key, realisation): chunk- and order-independent.
4. ``weighted_quantiles``: the inverse weighted empirical CDF (logictree.weighted_quantile).

Memory per building is O(R * Y * S + K * Y * U); nothing scales with the number of buildings
beyond the caller's output arrays.
"""

from __future__ import annotations

import math

import numpy as np

from fragility.lognormal import death_given_nested, nest_exceedance
from hra.core._numba import jit
from hra.core.random import draw_candidate, normal_cdf

# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------


@jit
def death_table(mean, sd, weight, ln_median, beta, pd_in, pd_out, presence_in, out_pexc, out_death):
    """Collapse and death probabilities per event on the (m, r) grid.

    mean, sd, weight : (m, r, q) Gaussian mixture of ln IM [ln g]
    ln_median, beta  : (t, f, k) lognormal fragility parameters [ln g], [-]
    pd_in, pd_out    : (t, c, k) death probability given CS = k, inside / outside [-]
    presence_in      : fraction of time inside [-]
    out_pexc         : (t, f, k, m, r) nested P(CS >= k)
    out_death        : (t, f, c, m, r) presence_in P_die,in + (1 - presence_in) P_die,out

    P(CS >= k) = sum_q w_q Phi((mean_q - ln_median) / sqrt(sd_q^2 + beta^2)), exact for each
    Gaussian component; nesting P(>=k) >= P(>=k+1) is enforced after the sum.
    """
    n_m, n_r, n_q = mean.shape
    n_t, n_f, n_k = ln_median.shape
    n_c = pd_in.shape[1]
    p = np.empty(n_k)
    for m in range(n_m):
        for r in range(n_r):
            for t in range(n_t):
                for f in range(n_f):
                    for k in range(n_k):
                        lm = ln_median[t, f, k]
                        b2 = beta[t, f, k] * beta[t, f, k]
                        acc = 0.0
                        for q in range(n_q):
                            if weight[m, r, q] == 0.0:
                                continue
                            s = math.sqrt(sd[m, r, q] * sd[m, r, q] + b2)
                            z = mean[m, r, q] - lm
                            if s > 0.0:
                                acc += weight[m, r, q] * normal_cdf(z / s)
                            elif z >= 0.0:
                                acc += weight[m, r, q]
                        p[k] = acc
                    nest_exceedance(p)
                    for k in range(n_k):
                        out_pexc[t, f, k, m, r] = p[k]
                    for c in range(n_c):
                        d_in = death_given_nested(p, pd_in[t, c])
                        d_out = death_given_nested(p, pd_out[t, c])
                        out_death[t, f, c, m, r] = presence_in * d_in + (1.0 - presence_in) * d_out


@jit
def lognormal_expectation(mean, sd, weight, ln_median, beta, out):
    """E[Phi((ln IM - ln_median_j) / beta_j)] over the mixture; out (j, m, r). ln_median = -inf -> 0."""
    n_m, n_r, n_q = mean.shape
    n_j = ln_median.shape[0]
    for j in range(n_j):
        if not np.isfinite(ln_median[j]):
            out[j] = 0.0
            continue
        b2 = beta[j] * beta[j]
        for m in range(n_m):
            for r in range(n_r):
                acc = 0.0
                for q in range(n_q):
                    if weight[m, r, q] == 0.0:
                        continue
                    s = math.sqrt(sd[m, r, q] * sd[m, r, q] + b2)
                    z = mean[m, r, q] - ln_median[j]
                    if s > 0.0:
                        acc += weight[m, r, q] * normal_cdf(z / s)
                    elif z >= 0.0:
                        acc += weight[m, r, q]
                out[j, m, r] = acc


# ------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------


@jit
def _axpy(w, x, out):
    """out += w * x over views indexed from 0 (so numba adds no negative-index wraparound and the
    loop vectorises)."""
    for v in range(x.shape[0]):
        out[v] += w * x[v]


@jit
def _distance_node(d2_m2, depth_km, ln_r0, dln, n_r, r_max_km):
    """Lower node i and fraction f of R_hyp = sqrt(d^2 + depth^2) on the uniform ln R grid
    (``ln_r0 + i dln``, n_r nodes; clamped to the end nodes), or (-1, 0) beyond ``r_max_km``."""
    r_km = math.sqrt(d2_m2 * 1e-6 + depth_km * depth_km)
    if r_km > r_max_km:
        return -1, 0.0
    u = (math.log(r_km) - ln_r0) / dln
    if u < 0.0:
        u = 0.0
    i = int(u)
    if i >= n_r - 1:
        return n_r - 2, 1.0
    return i, u - i


@jit
def _folded_azimuth(dx_m, dy_m, strike_deg):
    """Azimuth of the site seen from the (sub-)cell relative to the mean strike, folded into [0, 90]
    [degree] (:func:`hra.gmm.rupture.relative_azimuth_deg`)."""
    az = (strike_deg - math.degrees(math.atan2(dx_m, dy_m))) % 180.0
    if az > 90.0:
        az = 180.0 - az
    return az


@jit
def _azimuth_node(az, n_a):
    """Lower node and fraction of a folded azimuth on n_a uniform nodes over [0, 90] degrees."""
    ua = az * (n_a - 1) / 90.0
    ia = int(ua)
    if ia >= n_a - 1:
        ia = n_a - 2
    return ia, ua - ia


@jit
def _deposit(d2_m2, rate_row, scale, depth_km, ln_r0, dln, n_r, n_k, r_max_km, hist):
    i, f = _distance_node(d2_m2, depth_km, ln_r0, dln, n_r, r_max_km)
    if i < 0:
        return
    a = (1.0 - f) * scale
    b = f * scale
    n_v = hist.shape[1]
    for k in range(n_k):
        lo = i * n_k + k
        x = rate_row[k * n_v:(k + 1) * n_v]
        _axpy(a, x, hist[lo])
        _axpy(b, x, hist[lo + n_k])


@jit
def _node_weights(d2_m2, dx_m, dy_m, scale, depth_km, ln_r0, dln, n_r, n_a, strike_deg, harmonic, r_max_km, wbuf,
                  span):
    """Add one (sub-)cell's interpolation weights (as :func:`_deposit` / :func:`_deposit_az` share
    its rate) to ``wbuf[r * n_a + a]``; ``span`` (2,) tracks the lowest and one past the highest
    entry touched."""
    i, f = _distance_node(d2_m2, depth_km, ln_r0, dln, n_r, r_max_km)
    if i < 0:
        return
    lo = i * n_a
    hi = (i + 2) * n_a
    if lo < span[0]:
        span[0] = lo
    if hi > span[1]:
        span[1] = hi
    if n_a <= 1:
        wbuf[i] += (1.0 - f) * scale
        wbuf[i + 1] += f * scale
        return
    az = _folded_azimuth(dx_m, dy_m, strike_deg)
    if harmonic:
        arad = math.radians(az)
        for ja in range(n_a):
            wa = math.cos(2.0 * ja * arad)
            wbuf[i * n_a + ja] += (1.0 - f) * wa * scale
            wbuf[(i + 1) * n_a + ja] += f * wa * scale
        return
    ia, g = _azimuth_node(az, n_a)
    for corner in range(4):
        ir = i + (corner >> 1)
        fa = (1.0 - f) if (corner >> 1) == 0 else f
        ja = ia + (corner & 1)
        wa = (1.0 - g) if (corner & 1) == 0 else g
        wbuf[ir * n_a + ja] += fa * wa * scale


@jit
def _subcells(dx, dy, rate_row, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic, r_max_km,
              cell_size_m, n_sub, wbuf, span, hist):
    """A near cell split into n_sub x n_sub sub-cells: their weights per (distance node, azimuth
    row) are summed first (they share the cell's rates), then each non-zero row block gets one
    pass over the rates (instead of one per sub-cell: ~n_sub^2 / 3 fewer passes; the sums differ
    from sub-cell by sub-cell deposits only by rounding)."""
    step = cell_size_m / n_sub
    frac = 1.0 / (n_sub * n_sub)
    span[0] = wbuf.shape[0]
    span[1] = 0
    for i in range(n_sub):
        sx = dx + (i + 0.5) * step - 0.5 * cell_size_m
        for j in range(n_sub):
            sy = dy + (j + 0.5) * step - 0.5 * cell_size_m
            _node_weights(sx * sx + sy * sy, sx, sy, frac, depth_km, ln_r0, dln, n_r, n_a, strike_deg, harmonic,
                          r_max_km, wbuf, span)
    n_v = hist.shape[1]
    for ra in range(span[0], span[1]):
        w = wbuf[ra]
        if w == 0.0:
            continue
        wbuf[ra] = 0.0
        row = ra * n_k
        for k in range(n_k):
            _axpy(w, rate_row[k * n_v:(k + 1) * n_v], hist[row + k])


@jit
def distance_histogram(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, r_max_km,
                       cell_size_m, sub_radius_m, n_sub, hist):
    """Accumulate one building's rates per hypocentral-distance node into ``hist`` (r, v).

    :func:`distance_histogram_k` with one rate per (cell, v) (``n_k = 1``); see there.
    """
    distance_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, 1, r_max_km,
                         cell_size_m, sub_radius_m, n_sub, hist)


@jit
def distance_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, n_k, r_max_km,
                         cell_size_m, sub_radius_m, n_sub, hist):
    """Accumulate one building's rates per hypocentral-distance node into ``hist`` (r * n_k + k, v).

    bx, by        : building position [m]
    cx, cy        : (c,) cell centres [m]
    rates         : (c, k * V + v) rates per cell, basis function k (n_k of them; a forecast's
                    magnitude basis, 1 for a rate grid) and v = y * S + s [yr^-1]
    ln_r0, dln    : ln of the first node (= depth) and the node spacing in ln R
    cell_size_m   : cell side [m]; cells whose centre lies within ``sub_radius_m`` are split into
                    ``n_sub`` x ``n_sub`` equal sub-cells, each carrying 1/n_sub^2 of the rate.
    R_hyp = sqrt(d_epi^2 + depth^2) >= depth, so no building gets R -> 0.
    """
    sub2 = sub_radius_m * sub_radius_m
    wbuf = np.zeros(n_r)
    span = np.zeros(2, dtype=np.int64)
    for c in range(cx.shape[0]):
        dx = cx[c] - bx
        dy = cy[c] - by
        d2 = dx * dx + dy * dy
        if n_sub > 1 and d2 < sub2:
            _subcells(dx, dy, rates[c], depth_km, ln_r0, dln, n_r, 1, n_k, 0.0, False, r_max_km, cell_size_m, n_sub,
                      wbuf, span, hist)
        else:
            _deposit(d2, rates[c], 1.0, depth_km, ln_r0, dln, n_r, n_k, r_max_km, hist)


@jit
def _deposit_az(d2_m2, dx_m, dy_m, rate_row, scale, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic,
                r_max_km, hist):
    i, f = _distance_node(d2_m2, depth_km, ln_r0, dln, n_r, r_max_km)
    if i < 0:
        return
    # relative azimuth of the site seen from the (sub-)cell w.r.t. the mean strike, folded into [0, 90]
    az = _folded_azimuth(dx_m, dy_m, strike_deg)
    n_v = hist.shape[1]
    if harmonic:  # rows a = 0..n_a-1 carry cos(2 a az): weights of the harmonic coefficients
        arad = math.radians(az)
        for ja in range(n_a):
            wa = math.cos(2.0 * ja * arad)
            for side in range(2):
                ir = i + side
                w = ((1.0 - f) if side == 0 else f) * wa * scale
                if w == 0.0:
                    continue
                row = (ir * n_a + ja) * n_k
                for k in range(n_k):
                    _axpy(w, rate_row[k * n_v:(k + 1) * n_v], hist[row + k])
        return
    ia, g = _azimuth_node(az, n_a)
    for corner in range(4):
        ir = i + (corner >> 1)
        fa = (1.0 - f) if (corner >> 1) == 0 else f
        ja = ia + (corner & 1)
        wa = (1.0 - g) if (corner & 1) == 0 else g
        w = fa * wa * scale
        if w == 0.0:
            continue
        row = (ir * n_a + ja) * n_k
        for k in range(n_k):
            _axpy(w, rate_row[k * n_v:(k + 1) * n_v], hist[row + k])


@jit
def distance_azimuth_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic,
                                 r_max_km, cell_size_m, sub_radius_m, n_sub, hist):
    """Accumulate one building's rates per (hypocentral-distance node, relative-azimuth node).

    ``hist`` rows are ``(r * n_a + a) * n_k + k``: r the ln R_hyp node, a the node of the site's
    azimuth seen from the (sub-)cell centre relative to the mean strike ``strike_deg`` [degree],
    folded into [0, 90] (n_a equally spaced nodes, :func:`hra.gmm.rupture.relative_azimuth_deg`),
    k the basis function. Each (sub-)cell's rate is shared bilinearly: linear in ln R between
    two distance nodes times linear in the azimuth between two azimuth nodes; with ``harmonic``
    the azimuth rows a are instead the harmonics ``cos(2 a az)`` (a = 0..n_a-1) of tables
    expanded in them (:func:`hra.integration.condtables.azimuth_projection`), and each (sub-)cell
    adds its rate times ``cos(2 a az)`` to every row a. ``n_a = 1`` is
    :func:`distance_histogram_k` exactly (no azimuth axis). Other arguments as there.
    """
    if n_a <= 1:
        distance_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, n_k, r_max_km,
                             cell_size_m, sub_radius_m, n_sub, hist)
        return
    sub2 = sub_radius_m * sub_radius_m
    wbuf = np.zeros(n_r * n_a)
    span = np.zeros(2, dtype=np.int64)
    for c in range(cx.shape[0]):
        dx = cx[c] - bx
        dy = cy[c] - by
        d2 = dx * dx + dy * dy
        if n_sub > 1 and d2 < sub2:
            _subcells(dx, dy, rates[c], depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic, r_max_km,
                      cell_size_m, n_sub, wbuf, span, hist)
        else:
            _deposit_az(d2, dx, dy, rates[c], 1.0, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic,
                        r_max_km, hist)


# ------------------------------------------------------------------------------------------
# per-building reduction
# ------------------------------------------------------------------------------------------


@jit
def weighted_quantiles(values, weights, n, probs, order_buf, out):
    """Inverse weighted empirical CDF of values[:n] at probs -> out (same as logictree.weighted_quantile)."""
    order = np.argsort(values[:n], kind="mergesort")
    total = 0.0
    for i in range(n):
        total += weights[i]
    for p_i in range(probs.shape[0]):
        target = probs[p_i] * total * (1.0 - 1e-12)
        cum = 0.0
        res = values[order[n - 1]]
        for i in range(n):
            cum += weights[order[i]]
            if cum >= target:
                res = values[order[i]]
                break
        out[p_i] = res


@jit
def chunk_lpr(bx, by, zt_idx, typ_idx, typ_prob, bkeys,
              cx, cy, rates, n_years, n_src, depth_km, ln_r0, dln, n_r, n_k, r_max_km,
              cell_size_m, sub_radius_m, n_sub, n_a, strike_deg, az_harmonic,
              q_table, combo_s, s_start, combo_w, qbar, s_weights,
              mixture, monte_carlo, real_combo, seed_key, probs,
              out_mean, out_q, out_real, out_real_w):
    """LPR statistics for a chunk of buildings.

    bx, by       : (b,) positions [m]
    zt_idx       : (b, j) table row of each typology candidate at the building's site
    typ_idx      : (b, j) typology index per candidate (-1 = none); typ_prob (b, j) probabilities
    bkeys        : (b,) uint64 building keys (hash of the id) for the typology draws
    rates        : (c, k*Y*S + y*S + s); n_k > 1: a forecast's magnitude-basis coefficients, and the
                   tables' distance axis is (r, k) flattened (r * n_k + k)
    n_a, strike_deg, az_harmonic : rows of the tables' azimuth axis (a strike model; 1: none), the
                   mean strike [degree] and whether the rows are harmonics (else nodes): the distance
                   axis is then (r, a, k) flattened, (r * n_a + a) * n_k + k
                   (:func:`distance_azimuth_histogram_k`)
    q_table      : (zt, r, u) expected death probability per event, model combination u
    combo_s      : (u,) source branch of combination u; combos sorted by s, ``s_start`` (S+1,)
                   gives the u-range of each source branch
    combo_w      : (u,) realisation weight of each combination (sums to 1)
    qbar, s_weights : (zt, r, n) tree-mean table (n = 1: shared by the source branches; n = S: per
                   branch, a forecast) and (S,) source weights -> exact mean LPR
    mixture      : typology uncertainty as a mixture (True) or an epistemic choice (False)
    monte_carlo  : realisations are draws (True): real_combo (N,) maps realisation -> u
    probs        : (p,) quantile probabilities
    out_mean (b, y), out_q (b, y, p); out_real (b, y, R) and out_real_w (b, R) if R > 0
    """
    n_b = bx.shape[0]
    n_j = typ_idx.shape[1]
    n_u = q_table.shape[2]
    n_v = n_years * n_src
    n_keep = out_real.shape[2]
    n_mc = real_combo.shape[0]
    n_rk = n_r * n_a * n_k
    n_qs = qbar.shape[2]
    hist = np.empty((n_rk, n_v))
    amat = np.empty((n_j, n_years, n_u))
    vals = np.empty(n_u * n_j)
    wts = np.empty(n_u * n_j)
    pair_w = np.empty((n_j, n_u))
    draw = np.empty(n_mc, dtype=np.int64)
    qout = np.empty(probs.shape[0])
    order_buf = np.empty(n_u * n_j, dtype=np.int64)
    hist[:, :] = 0.0
    for b in range(n_b):
        distance_azimuth_histogram_k(bx[b], by[b], cx, cy, rates, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg,
                                     az_harmonic, r_max_km, cell_size_m, sub_radius_m, n_sub, hist)
        # rows r_lo..r_hi-1 hold every non-zero histogram row (nearest to farthest distance node)
        r_lo = n_rk
        r_hi = 0
        for r in range(n_rk):
            for v in range(n_v):
                if hist[r, v] != 0.0:
                    if r < r_lo:
                        r_lo = r
                    r_hi = r + 1
                    break
        # number of candidates
        nj = 0
        for j in range(n_j):
            if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0.0:
                nj += 1
        # exact tree mean
        for y in range(n_years):
            acc = 0.0
            for j in range(nj):
                zt = zt_idx[b, j]
                sj = 0.0
                for r in range(r_lo, r_hi):
                    if n_qs == 1:
                        h = 0.0
                        for s in range(n_src):
                            h += s_weights[s] * hist[r, y * n_src + s]
                        sj += h * qbar[zt, r, 0]
                    else:
                        for s in range(n_src):
                            sj += s_weights[s] * hist[r, y * n_src + s] * qbar[zt, r, s]
                acc += typ_prob[b, j] * sj
            out_mean[b, y] = acc
        # per-combination values
        # per row r (rows r_lo..r_hi-1: all-zero histogram rows skipped) the table row q[zt, r, :]
        # streams once, contiguous; for each year and source branch s, h * q is added over the
        # branch's combinations U_s (contiguous, combos sorted by s), indexed from 0 through views
        # (an index numba cannot prove non-negative gets a wraparound test that stops the loop
        # vectorising: this alone was ~1/3 of the building pass): each amat element sums its terms
        # in ascending r, as the plain loop r -> y -> s -> u
        amat[:nj] = 0.0
        for j in range(nj):
            zt = zt_idx[b, j]
            for r in range(r_lo, r_hi):
                qrow = q_table[zt, r]
                for y in range(n_years):
                    arow = amat[j, y]
                    for s in range(n_src):
                        h = hist[r, y * n_src + s]
                        if h == 0.0:
                            continue
                        u0 = s_start[s]
                        n_us = s_start[s + 1] - u0
                        qseg = qrow[u0:u0 + n_us]
                        aseg = arow[u0:u0 + n_us]
                        for t in range(n_us):  # from 0: no negative-index wraparound, so it vectorises
                            aseg[t] += h * qseg[t]
        epistemic = (not mixture) and nj > 1
        if epistemic and monte_carlo:
            pair_w[:nj] = 0.0
            for i in range(n_mc):
                jj = draw_candidate(seed_key, bkeys[b], i, typ_prob[b], nj)
                draw[i] = jj
                pair_w[jj, real_combo[i]] += 1.0 / n_mc
        for y in range(n_years):
            n = 0
            if not epistemic:
                for u in range(n_u):
                    v = 0.0
                    for j in range(nj):
                        v += typ_prob[b, j] * amat[j, y, u]
                    vals[n] = v
                    wts[n] = combo_w[u]
                    n += 1
            elif monte_carlo:
                for j in range(nj):
                    for u in range(n_u):
                        if pair_w[j, u] > 0.0:
                            vals[n] = amat[j, y, u]
                            wts[n] = pair_w[j, u]
                            n += 1
            else:
                for j in range(nj):
                    for u in range(n_u):
                        vals[n] = amat[j, y, u]
                        wts[n] = combo_w[u] * typ_prob[b, j]
                        n += 1
            weighted_quantiles(vals, wts, n, probs, order_buf, qout)
            for p_i in range(probs.shape[0]):
                out_q[b, y, p_i] = qout[p_i]
            if n_keep > 0:
                if monte_carlo:
                    for i in range(n_mc):
                        if epistemic:
                            out_real[b, y, i] = amat[draw[i], y, real_combo[i]]
                        else:
                            v = 0.0
                            for j in range(nj):
                                v += typ_prob[b, j] * amat[j, y, real_combo[i]]
                            out_real[b, y, i] = v
                        out_real_w[b, i] = 1.0 / n_mc
                elif epistemic:
                    for u in range(n_u):
                        for j in range(n_j):
                            if j < nj:
                                out_real[b, y, u * n_j + j] = amat[j, y, u]
                                out_real_w[b, u * n_j + j] = combo_w[u] * typ_prob[b, j]
                            else:
                                out_real[b, y, u * n_j + j] = 0.0
                                out_real_w[b, u * n_j + j] = 0.0
                else:
                    for u in range(n_u):
                        out_real[b, y, u] = vals[u]
                        out_real_w[b, u] = combo_w[u]
        hist[r_lo:r_hi, :] = 0.0  # the rows outside are zero: the next building starts from zeros


@jit
def mixture_density(mean, sd, weight, x0, h, n_sd, out):
    """Gaussian-mixture density of ln IM times the grid step, on the grid x_j = x0 + j h.

    mean, sd, weight : (n, q) mixture per row [ln g]
    out              : (n, nx), accumulated into (the caller zeroes it)

    ``out[i, j] = h sum_q w_q phi((x_j - mean_q) / sd_q) / sd_q`` within ``n_sd`` sd of each mean.
    With h <= sd / 1.5 the trapezoid sum ``sum_j out[i, j] g(x_j)`` equals ``E[g(ln IM)]`` to
    ~exp(-2 pi^2 (sd/h)^2) < 1e-16 for smooth g (Gaussian fragility curves). Components whose
    sd is below h / 4 are deposited on the two nearest nodes (mean and mass kept).
    """
    n, nq = mean.shape
    nx = out.shape[1]
    inv_sqrt2pi = 1.0 / math.sqrt(2.0 * math.pi)
    for i in range(n):
        for q in range(nq):
            w = weight[i, q]
            if w == 0.0:
                continue
            mu = mean[i, q]
            s = sd[i, q]
            if s < 0.25 * h:
                u = (mu - x0) / h
                j = int(math.floor(u))
                f = u - j
                if 0 <= j < nx:
                    out[i, j] += w * (1.0 - f)
                if 0 <= j + 1 < nx:
                    out[i, j + 1] += w * f
                continue
            c = w * h * inv_sqrt2pi / s
            j0 = int(math.ceil((mu - n_sd * s - x0) / h))
            j1 = int(math.floor((mu + n_sd * s - x0) / h))
            if j0 < 0:
                j0 = 0
            if j1 > nx - 1:
                j1 = nx - 1
            # exp(-z^2/2) on the uniform nodes by the recurrence g_{j+1} = g_j r_j,
            # r_{j+1} = r_j exp(-d^2) (d = h/s); restarted every 16 nodes to bound rounding
            d = h / s
            e_d2 = math.exp(-d * d)
            j = j0
            while j <= j1:
                z = (x0 + j * h - mu) / s
                g = math.exp(-0.5 * z * z)
                rr = math.exp(-z * d - 0.5 * d * d)
                stop = min(j1, j + 15)
                while j <= stop:
                    out[i, j] += c * g
                    g *= rr
                    rr *= e_d2
                    j += 1


@jit
def lnr_interpolate(ln_p, ln_grid, ln_nodes, weights, out):
    """Integrate probabilities over R_rup given R_hyp by interpolating ln P in ln R_rup.

    ln_p    : (m, g, j) ln P on the ascending grid ``ln_grid`` (g,) of ln R_rup
    ln_nodes, weights : (m, r, n) R_rup quadrature per (M, R_hyp): ln R_rup nodes and weights
    out     : (m, r, j) ``sum_n w_n exp(interp(ln_p[m], ln R_n))``; nodes outside the grid take
              the end value.
    """
    n_m, n_g, n_j = ln_p.shape
    n_r, n_n = ln_nodes.shape[1], ln_nodes.shape[2]
    for m in range(n_m):
        for r in range(n_r):
            for j in range(n_j):
                out[m, r, j] = 0.0
            for k in range(n_n):
                w = weights[m, r, k]
                if w == 0.0:
                    continue
                x = ln_nodes[m, r, k]
                if x <= ln_grid[0]:
                    i0, f = 0, 0.0
                elif x >= ln_grid[n_g - 1]:
                    i0, f = n_g - 2, 1.0
                else:
                    i0 = np.searchsorted(ln_grid, x) - 1
                    f = (x - ln_grid[i0]) / (ln_grid[i0 + 1] - ln_grid[i0])
                for j in range(n_j):
                    a = ln_p[m, i0, j]
                    b = ln_p[m, i0 + 1, j]
                    if a < -650.0 and b < -650.0:  # both below 1e-282: nothing to add
                        continue
                    out[m, r, j] += w * math.exp(a + f * (b - a))


#: ln P below which an interval of the R_rup grid adds nothing in :func:`lnr_interpolate_cubic` (1e-20,
#: the level below which the upper-bound screen drops whole grid points).
LN_P_NEGLIGIBLE = -46.0


@jit
def lnr_interpolate_cubic(ln_p, ln_grid, kink, ln_nodes, weights, out):
    """:func:`lnr_interpolate` with cubic (4-point Lagrange) interpolation of ln P in ln R_rup.

    kink : (g,) bool, grid points where ln P is not smooth (e.g. hinges of the path term); the
           stencil of an interval stays between the kinks around it (shifted at the ends of that
           piece; a piece of fewer than 4 points gives a lower order).
    An interval whose two ends are below :data:`LN_P_NEGLIGIBLE` (P < 1e-20) adds nothing (its
    contribution is below ~1e-19, where the tables carry no information; more than half the
    entries of a zone's tables are that small). Where a stencil value is below -600 (P < 1e-260;
    screened points carry ln 1e-300) the interval is interpolated linearly, as in
    :func:`lnr_interpolate`. ln P above 0 is cut at 0.
    """
    n_m, n_g, n_j = ln_p.shape
    n_r, n_n = ln_nodes.shape[1], ln_nodes.shape[2]
    cw = np.empty(4)
    ybuf = np.empty(n_j)
    clean = np.empty(n_j, dtype=np.bool_)
    for m in range(n_m):
        # columns without a screened value at this magnitude skip the per-stencil check
        for j in range(n_j):
            clean[j] = True
        for g in range(n_g):
            for j in range(n_j):
                if ln_p[m, g, j] < -600.0:
                    clean[j] = False
        for r in range(n_r):
            for j in range(n_j):
                out[m, r, j] = 0.0
            for k in range(n_n):
                w = weights[m, r, k]
                if w == 0.0:
                    continue
                x = ln_nodes[m, r, k]
                if x <= ln_grid[0]:
                    i0, f = 0, 0.0
                    x = ln_grid[0]
                elif x >= ln_grid[n_g - 1]:
                    i0, f = n_g - 2, 1.0
                    x = ln_grid[n_g - 1]
                else:
                    i0 = np.searchsorted(ln_grid, x) - 1
                    f = (x - ln_grid[i0]) / (ln_grid[i0 + 1] - ln_grid[i0])
                lo = i0  # the smooth piece [lo, hi] around the interval [i0, i0 + 1]
                while lo > 0 and not kink[lo]:
                    lo -= 1
                hi = i0 + 1
                while hi < n_g - 1 and not kink[hi]:
                    hi += 1
                a0 = max(lo, min(i0 - 1, hi - 3))
                npt = min(4, hi - a0 + 1)
                for u in range(npt):
                    c = 1.0
                    xu = ln_grid[a0 + u]
                    for v in range(npt):
                        if v != u:
                            c *= (x - ln_grid[a0 + v]) / (xu - ln_grid[a0 + v])
                    cw[u] = c
                # the cubic for every column first (a branch-free loop the compiler vectorises),
                # then the exponentials where they count
                if npt == 4:
                    c0, c1, c2, c3 = cw[0], cw[1], cw[2], cw[3]
                    for j in range(n_j):
                        ybuf[j] = ((c0 * ln_p[m, a0, j] + c1 * ln_p[m, a0 + 1, j])
                                   + (c2 * ln_p[m, a0 + 2, j] + c3 * ln_p[m, a0 + 3, j]))
                else:
                    for j in range(n_j):
                        y = 0.0
                        for u in range(npt):
                            y += cw[u] * ln_p[m, a0 + u, j]
                        ybuf[j] = y
                for j in range(n_j):
                    a = ln_p[m, i0, j]
                    b = ln_p[m, i0 + 1, j]
                    if a < LN_P_NEGLIGIBLE and b < LN_P_NEGLIGIBLE:  # both below 1e-20: nothing to add
                        continue
                    low = 0.0
                    if not clean[j]:
                        low = a if a < b else b
                        for u in range(npt):
                            v = ln_p[m, a0 + u, j]
                            if v < low:
                                low = v
                    if low < -600.0:
                        y = a + f * (b - a)
                    else:
                        y = ybuf[j]
                        if y > 0.0:
                            y = 0.0
                    out[m, r, j] += w * math.exp(y)


#: Distance nodes per tile of :func:`death_from_nested` (a tile: t x f x c x 16 values, in the cache).
DEATH_R_BLOCK = 16


@jit
def death_from_nested(pexc, coef, direct, direct_factor, out):
    """Death probability per event from nested P(CS >= k), written in the tables' layout.

    pexc   : (m, r, t, f, k) P(CS >= k) given (M, R) (the layout the grid tables are built in)
    coef   : (t, c, k) death weight of state k (``p dPd_in + (1 - p) dPd_out``)
    direct : (m, r, t, c) P(direct death outside) or an empty array (none)
    out    : (t, f, c, m, r) ``sum_k pexc coef + direct_factor * direct``

    The transpose (m, r) -> last is done here through a small tile of :data:`DEATH_R_BLOCK`
    distance nodes (computed from contiguous reads, written out as contiguous runs): no transposed
    copy of the table. The sum over k is the same, in the same order, as on the (m, r, t, f, c) layout.
    """
    n_m, n_r, n_t, n_f, n_k = pexc.shape
    n_c = coef.shape[1]
    use_direct = direct.shape[0] > 0
    tile = np.empty((n_t, n_f, n_c, DEATH_R_BLOCK))
    for m in range(n_m):
        for r0 in range(0, n_r, DEATH_R_BLOCK):
            r1 = min(n_r, r0 + DEATH_R_BLOCK)
            for r in range(r0, r1):
                for t in range(n_t):
                    for f in range(n_f):
                        for c in range(n_c):
                            s = 0.0
                            for k in range(n_k):
                                s += pexc[m, r, t, f, k] * coef[t, c, k]
                            if use_direct:
                                s += direct_factor * direct[m, r, t, c]
                            tile[t, f, c, r - r0] = s
            for t in range(n_t):
                for f in range(n_f):
                    for c in range(n_c):
                        for r in range(r0, r1):
                            out[t, f, c, m, r] = tile[t, f, c, r - r0]
