"""numba kernels of the event-based calculation (no I/O, no dask, no model equations).

Layout letters: b = buildings, e = events, k = collapse states, t = typologies, j = typology
candidates of a building, y = calendar years, r = distance-grid nodes, l = reference-motion grid
nodes, s = sites (zone, wierde), z = zones, i/j = field-grid nodes (x/y).

Random numbers are **counter based** (:func:`hra.core.random.counter_uniform`, SplitMix64): a draw
is a pure function of (stream key, tag, counter), where the stream key identifies the event
(``event_key``) and the tag the building (its 64-bit key) or an event-level purpose. Nothing
depends on the order in which buildings or events are visited, so results do not depend on
chunking or on the number of workers.

Uniform counters used per (event key, building key): 0/1 the nugget normal of the within-event
residual (normal counter 0), 2/3 the independent site-term normal (normal counter 1, used with
``site_term = "building"``), 4 the collapse-state uniform, 5/6 the Poisson uniforms of deaths
inside/outside, 7 the typology draw of a building with a typology *mixture*, 8 the Poisson
uniform of direct (chimney) deaths outside; model adapters that simulate several periods use
counters from 9 on (:mod:`hra.eventbased.groningen`). Event-level draws use the tags in
:data:`TAG_ETA`, :data:`TAG_XI`, :data:`TAG_FIELD`.

Two paths: :func:`event_damage` computes the IM from a single-IM split (reference median, tau,
phi, site table over ln Y_ref) and the damage in one pass; for models whose IMs an adapter
computes (several periods, finite ruptures, a second IM), :func:`collect_buildings`,
:func:`field_values`, the adapter's kernel and :func:`damage_listed` run in turn. Both share
:func:`pair_damage`.
"""

from __future__ import annotations

import math

import numpy as np

from fragility.lognormal import death_given_nested, nest_exceedance
from hra.core._numba import jit
from hra.core.random import (  # noqa: F401  (stream primitives, used as ek.* by the event-based modules)
    TWO_PI,
    counter_normal,
    counter_uniform,
    event_key,
    event_normals,
    event_uniforms,
    fill_normals,
    normal_cdf,
    splitmix64,
)

#: Tags (the "building key" slot) of event-level streams.
TAG_ETA = np.uint64(0x45544131)  # between-event residual
TAG_XI = np.uint64(0x58493031)  # site terms shared per zone
TAG_FIELD = np.uint64(0x46494531)  # white noise of the correlated field
TAG_MEDIAN = np.uint64(0x4D454431)  # per-event draw of a median branch from w(M) (mixture mode)

#: Statistics accumulated per building and year (last axis of ``acc``).
S_CS1, S_CS2, S_CS3, S_LPR, S_LPR2, S_CS1SQ, S_DEATHS, S_SCOLL, S_SDEATHS, S_SLPR, S_SLPR2, S_SCOLL2 = range(12)
N_STATS = 12
#: Per-event outputs.
E_DEATHS_EXP, E_DEATHS_SAMP, E_COLL_EXP, E_COLL_SAMP, E_N_AFFECTED, E_MAX_LN_IM = range(6)
N_EVENT_STATS = 6


@jit
def collect_nodes(ex, ey, depth_km, r_cut_km, bx, by, gi, gj, cell_start, cell_order, ncx, ci0, ci1, cj0, cj1,
                  mark, nodes):
    """Field nodes needed by the buildings within ``r_cut_km`` of an event.

    ``mark`` (nwx * nwy,) int8 zeros, window-relative node ``li + lj * nwx`` with
    ``nwx = ci1 - ci0 + 1``; ``nodes`` (nwx * nwy,) receives the needed node indices (ascending
    after the caller sorts ``nodes[:n_nodes]``). Returns (buildings within r_cut, n_nodes).
    :func:`collect_buildings` without storing the buildings.
    """
    return collect_buildings(ex, ey, depth_km, r_cut_km, bx, by, gi, gj, cell_start, cell_order, ncx, ci0, ci1,
                             cj0, cj1, mark, nodes, np.empty(0, dtype=np.int64))


@jit
def truncated_from_normal(z, t):
    """Map a standard normal z to the normal truncated to [-t, t] (quantile transform); t <= 0: z."""
    if t <= 0.0:
        return z
    lo = normal_cdf(-t)
    p = lo + (1.0 - 2.0 * lo) * normal_cdf(z)
    # invert Phi by Newton from a rational start (Acklam-like); few steps suffice for |x| < 8
    x = 0.0
    for _ in range(60):
        f = normal_cdf(x) - p
        d = math.exp(-0.5 * x * x) / math.sqrt(TWO_PI)
        if d < 1e-300:
            break
        step = f / d
        x -= step
        if abs(step) < 1e-12:
            break
    return min(max(x, -t), t)


@jit
def poisson_inverse(mean, u):
    """Poisson(mean) variate by inversion of its CDF at uniform u (small means)."""
    if mean <= 0.0:
        return 0
    p = math.exp(-mean)
    cdf = p
    k = 0
    while u > cdf and k < 100000:
        k += 1
        p *= mean / k
        cdf += p
        if p == 0.0 and cdf < u:  # underflow far in the tail: normal approximation
            return int(mean + math.sqrt(mean) * 6.0)
    return k


@jit
def _interp(table, x0, dx, x):
    n = table.shape[0]
    u = (x - x0) / dx
    if u <= 0.0:
        return table[0]
    if u >= n - 1:
        return table[n - 1]
    i = int(u)
    f = u - i
    return table[i] * (1.0 - f) + table[i + 1] * f


@jit
def pair_damage(b, ln_im, ln_im2, has_direct, ekey, w_rate, y_idx, ln_theta, beta, pd_in, pd_out, d_ln_med, d_beta,
                presence, sample_typology, bkey, typ_idx, typ_prob, typ_draw, n_in, n_out, p, acc, ev_acc):
    """Damage and deaths of building ``b`` given its realised IM (and direct IM); accumulates.

    Expectation over the typology candidates (mixture) and the fragility dispersion, and the
    sampled collapse state and deaths (module docstring, counters 4-8). ``ln_im2``,
    ``d_ln_med`` (t,) and ``d_beta`` (t,): the direct outside-death term on the second IM
    (chimneys; ``has_direct``), ``P_direct = Phi((ln IM2 - ln med)/beta)`` (-inf median: none), so
    that ``LPR = p P_in + (1 - p)(P_out + P_direct)`` (hra.integration.engine.death_tables). ``p`` (k,) is a
    work array; ``ev_acc`` (4,) += expected deaths, sampled deaths, expected and sampled collapses.
    """
    n_k = ln_theta.shape[1]
    n_j = typ_idx.shape[1]
    e_cs1 = 0.0
    e_cs2 = 0.0
    e_cs3 = 0.0
    e_in = 0.0
    e_out = 0.0
    e_dir = 0.0
    s_dir = 0.0
    u_state = counter_uniform(ekey, bkey[b], 4)
    s_state = 0
    s_t = -1
    if sample_typology:
        j_star = typ_draw[b]
    else:  # typology mixture: a candidate per (event, building)
        u_t = counter_uniform(ekey, bkey[b], 7)
        cum = 0.0
        j_star = -1
        for j in range(n_j):
            if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0.0:
                j_star = j
                cum += typ_prob[b, j]
                if u_t < cum:
                    break
    for j in range(n_j):
        t = typ_idx[b, j]
        pj = typ_prob[b, j]
        if t < 0 or pj <= 0.0:
            continue
        for k in range(n_k):
            bt = beta[t, k]
            zz = ln_im - ln_theta[t, k]
            if bt > 0.0:
                p[k] = normal_cdf(zz / bt)
            else:
                p[k] = 1.0 if zz >= 0.0 else 0.0
        nest_exceedance(p)  # P(>=k) >= P(>=k+1)
        d_in = death_given_nested(p, pd_in[t])
        d_out = death_given_nested(p, pd_out[t])
        p_dir = 0.0
        if has_direct and np.isfinite(d_ln_med[t]):
            zd = ln_im2 - d_ln_med[t]
            if d_beta[t] > 0.0:
                p_dir = normal_cdf(zd / d_beta[t])
            elif zd >= 0.0:
                p_dir = 1.0
        e_cs1 += pj * p[0]
        if n_k > 1:
            e_cs2 += pj * p[1]
        if n_k > 2:
            e_cs3 += pj * p[2]
        e_in += pj * d_in
        e_out += pj * d_out
        e_dir += pj * p_dir
        # sampled state: the drawn candidate (epistemic) or a draw from the mixture
        if j == j_star:
            s_t = t
            st = 0
            for k in range(n_k):
                if u_state < p[k]:
                    st = k + 1
            s_state = st
            s_dir = p_dir
    lpr = presence * e_in + (1.0 - presence) * (e_out + e_dir)
    deaths = n_in[b] * e_in + n_out[b] * (e_out + e_dir)
    acc[b, y_idx, S_CS1] += w_rate * e_cs1
    acc[b, y_idx, S_CS2] += w_rate * e_cs2
    acc[b, y_idx, S_CS3] += w_rate * e_cs3
    acc[b, y_idx, S_LPR] += w_rate * lpr
    acc[b, y_idx, S_LPR2] += w_rate * w_rate * lpr * lpr
    acc[b, y_idx, S_CS1SQ] += w_rate * w_rate * e_cs1 * e_cs1
    acc[b, y_idx, S_DEATHS] += w_rate * deaths
    ev_acc[0] += deaths
    ev_acc[2] += e_cs1
    x = 0.0
    dd = 0
    if s_state > 0 and s_t >= 0:
        k = s_state - 1
        m_in = n_in[b] * pd_in[s_t, k]
        m_out = n_out[b] * pd_out[s_t, k]
        dd = poisson_inverse(m_in, counter_uniform(ekey, bkey[b], 5)) + poisson_inverse(m_out, counter_uniform(ekey, bkey[b], 6))
        x = presence * pd_in[s_t, k] + (1.0 - presence) * pd_out[s_t, k]
        acc[b, y_idx, S_SCOLL] += w_rate
        acc[b, y_idx, S_SCOLL2] += w_rate * w_rate
        ev_acc[3] += 1.0
    if s_dir > 0.0:  # chimney deaths outside: Poisson with mean n_out P_direct (not conditional on collapse)
        dd += poisson_inverse(n_out[b] * s_dir, counter_uniform(ekey, bkey[b], 8))
        x += (1.0 - presence) * s_dir  # its conditional expectation in the sampled LPR
    if x > 0.0 or dd > 0:
        acc[b, y_idx, S_SDEATHS] += w_rate * dd
        acc[b, y_idx, S_SLPR] += w_rate * x
        acc[b, y_idx, S_SLPR2] += w_rate * w_rate * x * x
        ev_acc[1] += dd


@jit
def event_damage(ex, ey, depth_km, ln_med, ln_r0, dln, r_cut_km, tau, phi, eta, xi_zone, ekey, w_rate, y_idx,
                 field, i0, j0, c10, c01, c11, correlated,
                 site_af, site_sd, ln_y0, dly, identity, site_zone, shared_site_term,
                 ln_theta, beta, pd_in, pd_out, presence, sample_typology, ln_im_negligible,
                 bx, by, bsite, bkey, typ_idx, typ_prob, typ_draw, n_in, n_out, fx, fy, gi, gj,
                 cell_start, cell_order, ncx, ci0, ci1, cj0, cj1,
                 acc, ev_out):
    """Damage and deaths of one event at the buildings of its window; accumulates into ``acc``.

    Event
        ex, ey [m], depth_km [km]; ln_med (r,) reference median on the ln-R grid
        ``ln r = ln_r0 + i dln`` [ln g]; r_cut_km: buildings farther (hypocentral) are skipped;
        tau, phi [ln units]; eta: realised between-event normal; xi_zone (z,): site-term normals;
        ekey: event key; w_rate: annual rate the event stands for [yr^-1]; y_idx: year index.
    Field
        field (i, j) window of the unit-variance correlated field with node (0, 0) at global node
        (i0, j0); c10, c01, c11: its covariances at lags (1,0), (0,1), (1,1) nodes; correlated:
        False -> within-event residuals are independent per building.
    Site response
        site_af, site_sd (s, l) tables on ``ln y = ln_y0 + l dly``; identity: no site response;
        site_zone (s,) zone index of each site; shared_site_term: one xi per (event, zone), else
        an independent normal per (event, building).
    Fragility (branch-resolved)
        ln_theta, beta (t, k); pd_in, pd_out (t, k) death probability given CS = k; presence:
        fraction of time inside; ln_im_negligible: below this ln IM every collapse probability is
        < 5e-17 (``min(ln theta - 8.3 beta)``) and the pair is skipped; sample_typology: the sampled statistics use candidate ``typ_draw[b]``
        (typology drawn per realisation, epistemic); otherwise a candidate drawn per event.
    Buildings
        bx, by [m], bsite, bkey, typ_idx/typ_prob (b, j), n_in/n_out persons inside/outside,
        fx, fy in [0, 1) position within field cell (gi, gj); CSR ``cell_start`` over cells
        ``gi + gj * ncx`` with building indices ``cell_order``; window cells ci0..ci1-1 x cj0..cj1-1.
    Outputs
        acc (b, y, N_STATS) += rate-weighted statistics (see S_* constants; squares with w_rate^2);
        ev_out (N_EVENT_STATS,) event totals (expected/sampled deaths and collapses, buildings
        within r_cut, max ln IM).
    """
    n_k = ln_theta.shape[1]
    r_cut2 = r_cut_km * r_cut_km
    d2_0 = depth_km * depth_km
    p = np.empty(n_k)
    ev_acc = np.zeros(4)  # expected deaths, sampled deaths, expected collapses, sampled collapses
    no_direct = np.zeros(0)
    n_aff = 0
    max_ln = -np.inf
    for cj in range(cj0, cj1):
        for ci in range(ci0, ci1):
            c = ci + cj * ncx
            for q in range(cell_start[c], cell_start[c + 1]):
                b = cell_order[q]
                dx = (bx[b] - ex) * 1e-3
                dy = (by[b] - ey) * 1e-3
                r2 = dx * dx + dy * dy + d2_0
                if r2 > r_cut2:
                    continue
                n_aff += 1
                lr = 0.5 * math.log(r2)
                mu = _interp(ln_med, ln_r0, dln, lr)
                # within-event residual: correlated grid field (bilinear) + nugget restoring unit variance
                z_nug = counter_normal(ekey, bkey[b], 0)
                if correlated:
                    li = gi[b] - i0
                    lj = gj[b] - j0
                    a = fx[b]
                    bb = fy[b]
                    w00 = (1.0 - a) * (1.0 - bb)
                    w10 = a * (1.0 - bb)
                    w01 = (1.0 - a) * bb
                    w11 = a * bb
                    g = (w00 * field[li, lj] + w10 * field[li + 1, lj] + w01 * field[li, lj + 1]
                         + w11 * field[li + 1, lj + 1])
                    var = (w00 * w00 + w10 * w10 + w01 * w01 + w11 * w11
                           + 2.0 * c10 * (w00 * w10 + w01 * w11) + 2.0 * c01 * (w00 * w01 + w10 * w11)
                           + 2.0 * c11 * (w00 * w11 + w10 * w01))
                    eps = g + math.sqrt(max(0.0, 1.0 - var)) * z_nug
                else:
                    eps = z_nug
                ln_ref = mu + tau * eta + phi * eps
                if identity:
                    ln_im = ln_ref
                else:
                    s = bsite[b]
                    af = _interp(site_af[s], ln_y0, dly, ln_ref)
                    sd = _interp(site_sd[s], ln_y0, dly, ln_ref)
                    if shared_site_term:
                        xi = xi_zone[site_zone[s]]
                    else:
                        xi = counter_normal(ekey, bkey[b], 1)
                    ln_im = ln_ref + af + sd * xi
                if ln_im > max_ln:
                    max_ln = ln_im
                if ln_im < ln_im_negligible:
                    continue  # every P(CS >= k | IM) < Phi(-8.3) = 5e-17: contributes nothing
                pair_damage(b, ln_im, -np.inf, False, ekey, w_rate, y_idx, ln_theta, beta, pd_in, pd_out, no_direct,
                            no_direct, presence, sample_typology, bkey, typ_idx, typ_prob, typ_draw, n_in, n_out, p, acc,
                            ev_acc)
    ev_out[E_DEATHS_EXP] += ev_acc[0]
    ev_out[E_DEATHS_SAMP] += ev_acc[1]
    ev_out[E_COLL_EXP] += ev_acc[2]
    ev_out[E_COLL_SAMP] += ev_acc[3]
    ev_out[E_N_AFFECTED] += n_aff
    if max_ln > ev_out[E_MAX_LN_IM]:
        ev_out[E_MAX_LN_IM] = max_ln


@jit
def window_count(sat, ci0, ci1, cj0, cj1):
    """Buildings in cells [ci0, ci1) x [cj0, cj1) from the summed-area table ``sat`` (ncx+1, ncy+1)."""
    return sat[ci1, cj1] - sat[ci0, cj1] - sat[ci1, cj0] + sat[ci0, cj0]


@jit
def collect_buildings(ex, ey, depth_km, r_cut_km, bx, by, gi, gj, cell_start, cell_order, ncx, ci0, ci1, cj0, cj1,
                      mark, nodes, bidx):
    """Buildings within hypocentral distance ``r_cut_km`` of an event (into ``bidx``, in window-cell
    order; not stored if ``bidx`` is empty) and the field nodes they need (as :func:`collect_nodes`).
    Returns (n_buildings, n_nodes)."""
    store = bidx.shape[0] > 0
    nwx = ci1 - ci0 + 1
    r_cut2 = r_cut_km * r_cut_km
    d2_0 = depth_km * depth_km
    n_aff = 0
    for cj in range(cj0, cj1):
        for ci in range(ci0, ci1):
            c = ci + cj * ncx
            for q in range(cell_start[c], cell_start[c + 1]):
                b = cell_order[q]
                dx = (bx[b] - ex) * 1e-3
                dy = (by[b] - ey) * 1e-3
                if dx * dx + dy * dy + d2_0 > r_cut2:
                    continue
                if store:
                    bidx[n_aff] = b
                n_aff += 1
                li = gi[b] - ci0
                lj = gj[b] - cj0
                mark[li + lj * nwx] = 1
                mark[li + 1 + lj * nwx] = 1
                mark[li + (lj + 1) * nwx] = 1
                mark[li + 1 + (lj + 1) * nwx] = 1
    n = 0
    for i in range(mark.shape[0]):
        if mark[i]:
            nodes[n] = i
            n += 1
    return n_aff, n


@jit
def field_values(bidx, ekey, bkey, field, i0, j0, c10, c01, c11, correlated, fx, fy, gi, gj, out):
    """Unit-variance within-event normal of the listed buildings: the bilinear interpolation of the
    correlated grid field plus the nugget that restores unit variance (normal counter 0), as in
    :func:`event_damage`; independent normals when not ``correlated``."""
    for i in range(bidx.shape[0]):
        b = bidx[i]
        z_nug = counter_normal(ekey, bkey[b], 0)
        if not correlated:
            out[i] = z_nug
            continue
        li = gi[b] - i0
        lj = gj[b] - j0
        a = fx[b]
        bb = fy[b]
        w00 = (1.0 - a) * (1.0 - bb)
        w10 = a * (1.0 - bb)
        w01 = (1.0 - a) * bb
        w11 = a * bb
        g = w00 * field[li, lj] + w10 * field[li + 1, lj] + w01 * field[li, lj + 1] + w11 * field[li + 1, lj + 1]
        var = (w00 * w00 + w10 * w10 + w01 * w01 + w11 * w11
               + 2.0 * c10 * (w00 * w10 + w01 * w11) + 2.0 * c01 * (w00 * w01 + w10 * w11)
               + 2.0 * c11 * (w00 * w11 + w10 * w01))
        out[i] = g + math.sqrt(max(0.0, 1.0 - var)) * z_nug


@jit
def damage_listed(bidx, ln_im, ln_im2, has_direct, ekey, w_rate, y_idx, ln_theta, beta, pd_in, pd_out, d_ln_med, d_beta,
                  presence, sample_typology, ln_im_negligible, ln_im2_negligible, bkey, typ_idx, typ_prob, typ_draw,
                  n_in, n_out, acc, ev_out):
    """Damage and deaths of the listed buildings of one event from their realised IMs (computed by a
    model adapter, e.g. :mod:`hra.eventbased.groningen`); -inf IM = not reached. Pairs below both
    negligible levels are skipped (every probability < 5e-17). Accumulates into ``acc`` and the
    event totals ``ev_out`` (N_EVENT_STATS,), as :func:`event_damage`."""
    n_k = ln_theta.shape[1]
    p = np.empty(n_k)
    ev_acc = np.zeros(4)
    n_aff = 0
    max_ln = -np.inf
    for i in range(bidx.shape[0]):
        x1 = ln_im[i]
        if x1 == -np.inf:
            continue
        n_aff += 1
        if x1 > max_ln:
            max_ln = x1
        x2 = ln_im2[i]
        if x1 < ln_im_negligible and (not has_direct or x2 < ln_im2_negligible):
            continue
        pair_damage(bidx[i], x1, x2, has_direct, ekey, w_rate, y_idx, ln_theta, beta, pd_in, pd_out, d_ln_med, d_beta,
                    presence, sample_typology, bkey, typ_idx, typ_prob, typ_draw, n_in, n_out, p, acc, ev_acc)
    ev_out[E_DEATHS_EXP] += ev_acc[0]
    ev_out[E_DEATHS_SAMP] += ev_acc[1]
    ev_out[E_COLL_EXP] += ev_acc[2]
    ev_out[E_COLL_SAMP] += ev_acc[3]
    ev_out[E_N_AFFECTED] += n_aff
    if max_ln > ev_out[E_MAX_LN_IM]:
        ev_out[E_MAX_LN_IM] = max_ln
