"""Event-based simulation of the Groningen ground-motion models GMM-V7 and GMM-V6.

The integration engine only needs the marginal distribution of ln IM at a site
(:meth:`hra.gmm.groningen_v7.GroningenV7.ln_im_mixture`). Simulating whole earthquakes needs the
model's parts, and for V6/V7 these do not fit the single-IM split of
:mod:`hra.eventbased.adapters` (``ln IM = ln Y_ref + ln AF(Y_ref) + ...``):

* **AvgSa is the geometric mean of Sa at 10 periods** (0.01 ... 1 s), each with its own median,
  its own *non-linear*, clipped amplification ``ln AF_p(Y_p)`` and motion-dependent phi_S2S,p(Y_p)
  (eq. 9.12-9.15). The amplification of AvgSa is not a function of a reference AvgSa, so no table
  over one reference IM can give the surface AvgSa; the periods are simulated one by one.
* the linear AF term f1 depends on (M, R_rup), not only on the motion;
* the model is defined on the **rupture distance**, the seismicity on hypocentres.

What is simulated, per event e and building b (P = 10 periods, ``a`` = the IM's weights over the
periods: 1/10 each for AvgSa, the 0.01 s period alone for PGA):

1. **Rupture.** One finite rupture per event, the model's own (:mod:`hra.gmm.rupture`,
   docs/model-chain.md §2): a vertical line of length ``L = L_Leonard(M) 10^(0.19 z)`` from the hypocentre depth, at
   a strike drawn per event from the model's strike model (``rupture_strike = (mean, sd)``: N(mean, sd^2)
   degrees clockwise from north, the chain's field-wide N30W strike; None: uniform in [0, 180), an
   unknown strike), with the hypocentre at a uniform position along it. Each
   building's R_rup is the exact distance to that line. For one building this reproduces the
   model's distribution of R_rup given (M, R_hyp, azimuth) exactly (same length law, uniform offset,
   same strike law), while buildings of one event share the rupture, as they should.
   ``rupture="point"`` gives R_rup = R_hyp. (A model with a fixed relative azimuth,
   ``azimuth_deg``, gets one L per event and a uniform offset per building at that azimuth.)
2. **Reference residual** (NS_B horizon, arbitrary component) with the model's total covariance
   ``Sigma_pq = sigma_p sigma_q rho_pq`` (sigma^2 = tau^2 + phi_SS^2 + sigma_c2c^2(M, R_rup, T),
   rho = the p2p matrix, applied to the total residual as GroningenV7 and the TNO chain do):

   * between-event ``B_p = tau_p (L_rho eta_e)_p``, eta_e ~ N(0, I_P) once per event
     (covariance ``tau tau' o rho``);
   * within-event ``W ~ N(0, Sigma_W)``, ``Sigma_W = (sigma sigma' - tau tau') o rho`` (positive
     definite over the whole model range: smallest eigenvalue 0.007 on a grid of M 1.5-7,
     R 3-70 km and every branch of V6 and V7). W is split along the IM:
     ``W = u g_b + C nu_b`` with ``u = Sigma_W a / s``, ``s^2 = a' Sigma_W a`` and ``C C' =
     Sigma_W - u u'`` (rank P - 1; ``a' C = 0``). ``g_b`` is the **spatially correlated** unit
     normal of :mod:`hra.eventbased.gmf` (bilinear grid field plus nugget), ``nu_b`` ~ N(0, I_P) independent
     per building. So the reference-horizon analogue of the IM, a'W = s g_b, carries the spatial
     correlation exactly, the rest of the period-to-period structure is independent between
     buildings, and every building's joint distribution of the 10 periods is exactly the model's.
3. **Surface**, per period: ``ln Sa_p = Y_p + clip(f1_p(M, R_rup) + f2_p ln(1 + e^{Y_p}/f3_p),
   ln AFmin_p, ln AFmax_p) + eps_p phi_S2S,p(Y_p) + delta_wierde,p`` with ``Y_p = ln median_p +
   B_p + W_p`` [ln g]: the equations of GroningenV7.surface_ln_sa_g, evaluated exactly (f1 and
   the non-linear term in the kernel, no table over the motion). The site term is the epistemic
   eps_S2S of the realisation's ``gmm_s2s`` branch (V7 default) or, with an aleatory site term
   (V6 default), ``eps = L_R xi`` with xi ~ N(0, I_P) shared by the buildings of a zone in an
   event (``site_term="zone"``) or per building (``"building"``); R = the model's ``s2s_p2p``
   correlation.
4. ``ln AvgSa = a' ln Sa``, ``ln PGA = ln Sa(0.01 s)``: both IMs of the FCM (structural fragility
   and the chimney death term) come from the same simulated spectrum.

The medians (``ln_median_sa_g``) and the c2c variances (``sigma_components``) are tabulated once
per run on a grid of magnitude (step 0.025, which holds the source-term hinges 4.7, 4.75, 5.45
exactly) x ln R_rup (the event distance grid) and interpolated bilinearly; the site-response
equations (f1, non-linear AF, phi_S2S) are evaluated per building from the zone's coefficients.
:func:`f1_linear` restates the linear AF term of eq. 9.13 (V7) / 5.8-5.9 (V6) for the kernel;
tests/test_eventrisk.py checks it against the model's own ``ln_af``.

Accuracy: the per-building marginal distribution of ln AvgSa and ln PGA is the model's, up to
the interpolation of the tables (below 0.003 in ln units near the path-term hinges) and, with a
finite rupture, the difference between the exact R_rup law simulated here and the model's Gauss
rule in ln R_rup (GroningenV7 quotes 1 % in P(IM > a) except M >= 6 beyond 40 km);
tests/test_eventrisk.py compares simulated tail probabilities with GroningenV7.ln_im_mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from hra.eventbased import kernels as ek
from hra.core._numba import jit
from hra.core.random import seed_key
from hra.gmm import rupture as rup

#: Tag (the "building key" slot) of an event's rupture draws (length, strike, offset).
TAG_RUPTURE = np.uint64(0x52555031)
#: Magnitude step of the median / c2c tables. It holds the hinges 4.7, 4.75 and 5.45. [-]
MAG_STEP = 0.025
#: Rupture modes of the kernel.
RUP_POINT, RUP_LINE, RUP_FIXED_AZIMUTH = 0, 1, 2
#: Linear-AF forms of the kernel (:func:`f1_linear`).
F1_V7, F1_V6 = 0, 1
_F1_COLUMNS = {F1_V7: ("a0", "a1", "b0", "b1", "a2", "b2", "a3", "Ma", "Mb", "Mref2", "Rref"),
               F1_V6: ("a0", "a1", "b0", "b1", "M1", "M2")}
#: Counters of the per-building normals: the reference residual (10 + p) and an aleatory site
#: term drawn per building (30 + p); uniform counter 9: the offset of a fixed-azimuth rupture.
NU_COUNTER = 10
SITE_COUNTER = 30
OFFSET_UCOUNTER = 9
LN3 = math.log(3.0)
LN20 = math.log(20.0)


# ------------------------------------------------------------------------------------------
# numba kernels (model-specific: they restate the site-response equations of GroningenV7/V6)
# ------------------------------------------------------------------------------------------


@jit
def f1_linear(kind, c, m, lnr):
    """Linear part f1 of ln AF at magnitude m and ln R_rup, coefficient row ``c``.

    V7 (eq. 9.13-9.14; ``c`` = a0 a1 b0 b1 a2 b2 a3 Ma Mb Mref2 Rref)::

        Mr1 = clip(Ma + (Mb - Ma)(lnR - ln 3)/ln 20, min(Ma, Mb), max(Ma, Mb))
        f1  = a0 + a1 lnR + (b0 + b1 lnR)(min(M, Mr1) - Mr1) + a2 (lnR - ln Rref)^2
              + b2 (min(M, Mr1) - Mref2)^2 + a3 (max(M, Mr1) - Mr1)

    V6 (eq. 5.8-5.9; ``c`` = a0 a1 b0 b1 M1 M2)::

        Mref = M1 - (lnR - ln 3)/ln 20 (M1 - M2);  f1 = a0 + a1 lnR + (b0 + b1 lnR) min(M - Mref, 0)
    """
    if kind == 0:
        ma = c[7]
        mb = c[8]
        mr1 = ma + (mb - ma) * (lnr - LN3) / LN20
        lo = min(ma, mb)
        hi = max(ma, mb)
        if mr1 < lo:
            mr1 = lo
        elif mr1 > hi:
            mr1 = hi
        mlo = min(m, mr1)
        d = lnr - math.log(c[10])
        e = mlo - c[9]
        return (c[0] + c[1] * lnr + (c[2] + c[3] * lnr) * (mlo - mr1) + c[4] * d * d + c[5] * e * e
                + c[6] * (max(m, mr1) - mr1))
    mref = c[4] - (lnr - LN3) / LN20 * (c[4] - c[5])
    return c[0] + c[1] * lnr + (c[2] + c[3] * lnr) * min(m - mref, 0.0)


@jit
def rupture_distance2(along, normal, r_e, d2, rup_mode, rup_len, rup_plus, az_sin, az_cos, ekey, bkey):
    """Squared rupture distance [km^2] of a site at epicentral offset (``along``, ``normal``) from
    the strike line (epicentral distance ``r_e``; ``d2`` = depth^2): ``rup_mode`` 0 point
    (R_hyp), 1 a line reaching ``rup_plus`` along +strike and ``rup_len - rup_plus`` along -strike,
    2 a fixed relative azimuth with a uniform offset per (event, building) (counter
    ``OFFSET_UCOUNTER``)."""
    if rup_mode == 0:
        return r_e * r_e + d2
    if rup_mode == 1:
        if along >= 0.0:
            par = max(along - rup_plus, 0.0)
        else:
            par = max(-along - (rup_len - rup_plus), 0.0)
        return normal * normal + par * par + d2
    off = rup_len * ek.counter_uniform(ekey, bkey, OFFSET_UCOUNTER)
    par = max(r_e * az_cos - off, 0.0)
    nrm = r_e * az_sin
    return nrm * nrm + par * par + d2


@jit
def _semidef_cholesky(a, out):
    """Lower Cholesky factor of a positive semi-definite matrix (zero columns at null pivots)."""
    n = a.shape[0]
    for j in range(n):
        for i in range(n):
            out[i, j] = 0.0
    tol = 0.0
    for i in range(n):
        tol = max(tol, a[i, i])
    tol *= 1e-12
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if s <= tol:
            continue  # null direction (a' C = 0 by construction): the column stays 0
        d = math.sqrt(s)
        out[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t / d


@jit
def _lerp_index(x, x0, dx, n):
    u = (x - x0) / dx
    if u <= 0.0:
        return 0, 0.0
    if u >= n - 1:
        return n - 2, 1.0
    i = int(u)
    return i, u - i


@jit
def pair_spectrum(mag, lnr, im0, fm, ln_r0, dln, med_tab, c2c_tab, tau, phi, corr, a, bvec, g, ekey, bkey,
                  kind, f1c, f2, inv_f3, lnlo, lnhi, s1, sslope, lnxl, smin, smax, wierde,
                  aleatory, eps, xi, site_chol, per_building_site, sig, sw, k_mat, chol, u_vec, nu, ln_sa):
    """Surface ln Sa at the P periods of one (event, building) pair [ln g] into ``ln_sa``.

    ``med_tab``/``c2c_tab`` (nM, nR, P) at magnitude row ``im0`` + ``fm`` and ln R_rup ``lnr``;
    ``bvec`` (P,) the event's between-event residual; ``g`` the building's correlated unit normal;
    site-response coefficients (P,) of the building's site (``f1c`` (P, K)); ``aleatory``: the
    site term is ``eps_p = xi_p`` (``xi`` (P,) given, or drawn per building through
    ``site_chol`` when ``per_building_site``), else the epistemic ``eps``. The remaining
    arguments are work arrays (P,) / (P, P).
    """
    P = a.shape[0]
    nR = med_tab.shape[1]
    ir, fr = _lerp_index(lnr, ln_r0, dln, nR)
    w00 = (1.0 - fm) * (1.0 - fr)
    w01 = (1.0 - fm) * fr
    w10 = fm * (1.0 - fr)
    w11 = fm * fr
    i1 = min(im0 + 1, med_tab.shape[0] - 1)
    for p in range(P):
        c2 = (w00 * c2c_tab[im0, ir, p] + w01 * c2c_tab[im0, ir + 1, p] + w10 * c2c_tab[i1, ir, p]
              + w11 * c2c_tab[i1, ir + 1, p])
        sig[p] = math.sqrt(tau[p] * tau[p] + phi[p] * phi[p] + max(c2, 0.0))
    # Sigma_W = (sig sig' - tau tau') o rho; s^2 = a' Sigma_W a; u = Sigma_W a / s
    s2 = 0.0
    for p in range(P):
        acc = 0.0
        for q in range(P):
            v = (sig[p] * sig[q] - tau[p] * tau[q]) * corr[p, q]
            sw[p, q] = v
            acc += v * a[q]
        u_vec[p] = acc
        s2 += a[p] * acc
    s = math.sqrt(max(s2, 1e-300))
    for p in range(P):
        u_vec[p] /= s
    for p in range(P):
        for q in range(P):
            k_mat[p, q] = sw[p, q] - u_vec[p] * u_vec[q]
    _semidef_cholesky(k_mat, chol)
    for p in range(P):
        nu[p] = ek.counter_normal(ekey, bkey, NU_COUNTER + p)
    if aleatory and per_building_site:
        for p in range(P):
            xi[p] = 0.0
        for q in range(P):
            z = ek.counter_normal(ekey, bkey, SITE_COUNTER + q)
            for p in range(q, P):
                xi[p] += site_chol[p, q] * z
    for p in range(P):
        w = u_vec[p] * g
        for q in range(p + 1):
            w += chol[p, q] * nu[q]
        med = (w00 * med_tab[im0, ir, p] + w01 * med_tab[im0, ir + 1, p] + w10 * med_tab[i1, ir, p]
               + w11 * med_tab[i1, ir + 1, p])
        y = med + bvec[p] + w
        la = f1_linear(kind, f1c[p], mag, lnr) + f2[p] * math.log1p(math.exp(y) * inv_f3[p])
        if la < lnlo[p]:
            la = lnlo[p]
        elif la > lnhi[p]:
            la = lnhi[p]
        h = y + la + wierde[p]
        e = xi[p] if aleatory else eps
        if e != 0.0:
            ph = s1[p] + sslope[p] * (y - lnxl[p])
            if ph < smin[p]:
                ph = smin[p]
            elif ph > smax[p]:
                ph = smax[p]
            h += e * ph
        ln_sa[p] = h


@jit
def event_ims(ex, ey, depth_km, mag, ekey, r_cut_km, r_max_km, rup_mode, rup_len, rup_cos, rup_sin, rup_plus,
              az_sin, az_cos, im0, fm, ln_r0, dln, med_tab, c2c_tab, tau, phi, corr, a, j2, bvec,
              kind, f1c, f2, inv_f3, lnlo, lnhi, s1, sslope, lnxl, smin, smax, wierde,
              aleatory, eps, xi_zone, site_chol, per_building_site, site_zone,
              bidx, bx, by, bsite, bkey, g, out_im, out_im2):
    """ln IM and ln IM2 (the direct IM, period ``j2``; -inf if j2 < 0) [ln g] of the listed
    buildings ``bidx`` (with their correlated unit normals ``g``) in one event.

    Rupture: ``rup_mode`` 0 point (R_rup = R_hyp), 1 a line of length ``rup_len`` [km] along
    (``rup_cos``, ``rup_sin``) (x, y direction of the strike) reaching ``rup_plus`` [km] in that
    direction from the epicentre and ``rup_len - rup_plus`` in the other, 2 a fixed relative
    azimuth (``az_sin``, ``az_cos``) with a uniform offset per building. Pairs with R_rup above
    ``r_cut_km`` or R_hyp above ``r_max_km`` get -inf. Site arrays are (s, P) (``f1c`` (s, P, K));
    ``xi_zone`` (z, P) the event's aleatory site terms per zone.
    """
    P = a.shape[0]
    sig = np.empty(P)
    sw = np.empty((P, P))
    k_mat = np.empty((P, P))
    chol = np.empty((P, P))
    u_vec = np.empty(P)
    nu = np.empty(P)
    xi = np.zeros(P)
    ln_sa = np.empty(P)
    d2 = depth_km * depth_km
    for i in range(bidx.shape[0]):
        b = bidx[i]
        dx = (bx[b] - ex) * 1e-3
        dy = (by[b] - ey) * 1e-3
        re2 = dx * dx + dy * dy
        out_im[i] = -np.inf
        out_im2[i] = -np.inf
        if re2 + d2 > r_max_km * r_max_km:
            continue
        rr2 = rupture_distance2(dx * rup_cos + dy * rup_sin, dx * rup_sin - dy * rup_cos, math.sqrt(re2), d2,
                                rup_mode, rup_len, rup_plus, az_sin, az_cos, ekey, bkey[b])
        if rr2 > r_cut_km * r_cut_km:
            continue
        lnr = 0.5 * math.log(rr2)
        s = bsite[b]
        if aleatory and not per_building_site:
            z = site_zone[s]
            for p in range(P):
                xi[p] = xi_zone[z, p]
        pair_spectrum(mag, lnr, im0, fm, ln_r0, dln, med_tab, c2c_tab, tau, phi, corr, a, bvec, g[i], ekey, bkey[b],
                      kind, f1c[s], f2[s], inv_f3[s], lnlo[s], lnhi[s], s1[s], sslope[s], lnxl[s], smin[s], smax[s],
                      wierde[s], aleatory, eps, xi, site_chol, per_building_site, sig, sw, k_mat, chol, u_vec, nu, ln_sa)
        acc = 0.0
        for p in range(P):
            acc += a[p] * ln_sa[p]
        out_im[i] = acc
        if j2 >= 0:
            out_im2[i] = ln_sa[j2]


@jit
def marginal_draws(keys, r_e_km, depth_km, mag, rups, rup_mode, az_sin, az_cos, im0, fm, ln_r0, dln, med_tab, c2c_tab,
                   tau, phi, corr, a, j2, bvec, kind, f1c, f2, inv_f3, lnlo, lnhi, s1, sslope, lnxl, smin, smax, wierde,
                   aleatory, eps, site_chol, out):
    """One building at epicentral distance ``r_e_km`` (east of the epicentre) per event ``keys[e]``
    (its own rupture ``rups[e]``, between-event residual ``bvec[e]``, within-event normal and
    site term): ``out[e] = (ln IM, ln Sa(j2))`` [ln g]. For :func:`simulate_marginal`."""
    P = a.shape[0]
    sig = np.empty(P)
    sw = np.empty((P, P))
    k_mat = np.empty((P, P))
    chol = np.empty((P, P))
    u_vec = np.empty(P)
    nu = np.empty(P)
    xi = np.zeros(P)
    ln_sa = np.empty(P)
    d2 = depth_km * depth_km
    for e in range(keys.shape[0]):
        key = keys[e]
        bkey = ek.splitmix64(key)
        rr2 = rupture_distance2(r_e_km * rups[e, 1], r_e_km * rups[e, 2], r_e_km, d2, rup_mode, rups[e, 0],
                                rups[e, 3], az_sin, az_cos, key, bkey)
        g = ek.counter_normal(key, bkey, 0)
        pair_spectrum(mag, 0.5 * math.log(rr2), im0, fm, ln_r0, dln, med_tab, c2c_tab, tau, phi, corr, a, bvec[e], g,
                      key, bkey, kind, f1c, f2, inv_f3, lnlo, lnhi, s1, sslope, lnxl, smin, smax, wierde, aleatory, eps,
                      xi, site_chol, True, sig, sw, k_mat, chol, u_vec, nu, ln_sa)
        acc = 0.0
        for p in range(P):
            acc += a[p] * ln_sa[p]
        out[e, 0] = acc
        out[e, 1] = ln_sa[j2] if j2 >= 0 else -np.inf


# ------------------------------------------------------------------------------------------
# the static part of a run
# ------------------------------------------------------------------------------------------


@dataclass
class SiteArrays:
    """Site-response coefficients per site (zone, wierde) s and period p (kernel layout)."""

    kind: int
    f1c: np.ndarray  # (s, P, K)
    f2: np.ndarray  # (s, P)
    inv_f3: np.ndarray
    lnlo: np.ndarray
    lnhi: np.ndarray
    s1: np.ndarray
    sslope: np.ndarray
    lnxl: np.ndarray
    smin: np.ndarray
    smax: np.ndarray
    wierde: np.ndarray


def site_arrays(gmm, sites: list[tuple[int, bool]], idx: np.ndarray) -> SiteArrays:
    """Coefficients of the sites ``[(zone, wierde), ...]`` at the period indices ``idx``, from the
    model's tables (``gmm.tables.af``) and :meth:`GroningenV7.site_response`."""
    kind = F1_V6 if gmm.name == "groningen-v6" else F1_V7
    cols = _F1_COLUMNS[kind]
    zones = np.asarray(gmm.tables.zones)
    S, P = len(sites), idx.size
    out = {k: np.zeros((S, P)) for k in ("f2", "inv_f3", "lnlo", "lnhi", "s1", "sslope", "lnxl", "smin", "smax", "wierde")}
    f1c = np.zeros((S, P, len(cols)))
    for s, (zone, wierde) in enumerate(sites):
        row = np.flatnonzero(zones == int(zone))
        if row.size != 1:
            raise KeyError(f"zone {zone} has no site-response coefficients in {gmm.name}")
        for j, col in enumerate(cols):
            f1c[s, :, j] = np.asarray(gmm.tables.af[col])[row[0], idx]
        sr = gmm.site_response(int(zone), idx, bool(wierde))
        out["f2"][s] = sr.f2
        out["inv_f3"][s] = 1.0 / np.asarray(sr.f3, float)
        out["lnlo"][s] = np.log(sr.af_min)
        out["lnhi"][s] = np.log(sr.af_max)
        out["s1"][s] = sr.s1
        out["sslope"][s] = (np.asarray(sr.s2) - np.asarray(sr.s1)) / np.log(np.asarray(sr.xh) / np.asarray(sr.xl))
        out["lnxl"][s] = np.log(sr.xl)
        out["smin"][s] = np.minimum(sr.s1, sr.s2)
        out["smax"][s] = np.maximum(sr.s1, sr.s2)
        out["wierde"][s] = sr.wierde
    c = lambda x: np.ascontiguousarray(x, dtype=float)  # noqa: E731
    return SiteArrays(kind, c(f1c), *(c(out[k]) for k in ("f2", "inv_f3", "lnlo", "lnhi", "s1", "sslope", "lnxl", "smin",
                                                           "smax", "wierde")))


@dataclass
class SpectralStatic:
    """Everything the per-event kernels need of a GMM-V6/V7 run (sent once to every worker).

    ``med[k]`` (nM, nR, P): ln median [ln g] of physical median branch k on the magnitude grid
    ``m0 + i MAG_STEP`` x the distance grid ``ln r = ln_r0 + j dln`` (R_rup); ``c2c`` (nM, nR, P)
    the c2c variance; ``sigma[(k, t, f)]`` = (tau (P,), phi_SS (P,)) per physical median, tau and
    phi_SS branch (V6 ties tau to the median branch).
    """

    name: str
    imt: str
    direct_imt: str | None
    periods: np.ndarray  # (P,)
    a: np.ndarray  # (P,)
    j2: int
    corr: np.ndarray  # (P, P)
    corr_chol: np.ndarray  # (P, P)
    m0: float
    n_m: int
    ln_r0: float
    dln: float
    r_grid: np.ndarray
    med: dict
    c2c: np.ndarray
    sigma: dict
    sites: SiteArrays
    site_zone: np.ndarray  # (s,) zone index of each site
    n_zones: int
    s2s_mode: str  # "epistemic" | "aleatory"
    s2s_eps: tuple  # epistemic values per gmm_s2s branch
    site_chol: np.ndarray  # (P, P) aleatory site-term correlation factor
    per_building_site: bool
    rup_mode: int
    az_sin: float = 0.0
    az_cos: float = 1.0
    #: (mean, sd) of the strike [degree clockwise from north] (the model's ``rupture_strike``), or
    #: None: a strike uniform in [0, 180)
    strike: tuple | None = None
    bounds: dict = field(default_factory=dict)

    @property
    def n_periods(self) -> int:
        return int(self.a.size)

    def mag_index(self, mags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i`` and fraction ``f`` of each magnitude on the table grid (clamped)."""
        u = (np.asarray(mags, float) - self.m0) / MAG_STEP
        i = np.clip(np.floor(u).astype(np.int64), 0, max(self.n_m - 2, 0))
        return i, np.clip(u - i, 0.0, 1.0)

    def branch_sigma(self, k: int, branch: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        return self.sigma[(int(k), int(branch.get("gmm_tau", 0)), int(branch.get("gmm_phi_ss", 0)))]

    def s2s_epsilon(self, branch: Mapping[str, int]) -> float:
        if self.s2s_mode != "epistemic":
            return 0.0
        return float(self.s2s_eps[int(branch.get("gmm_s2s", 1))])

    def site_bound(self, eps: float, n_sigma: float) -> tuple[float, float]:
        """Upper bounds over the sites of ``a'(ln AFmax + delta_w + site term)`` and of the same at
        period j2 (the site term at eps, or at n_sigma for an aleatory term)."""
        st = self.sites
        if self.s2s_mode == "epistemic":
            term = np.where(eps >= 0, eps * st.smax, eps * st.smin)
        else:
            term = n_sigma * st.smax
        per = st.lnhi + st.wierde + term  # (s, P)
        b_im = float((per @ self.a).max())
        b_d = float(per[:, self.j2].max()) if self.j2 >= 0 else -np.inf
        return b_im, b_d

    def bound_tables(self, k: int, branch: Mapping[str, int], n_sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """``A_im`` (nM, nR) = a' ln median + n s and ``A_d`` = ln median_j2 + n sd(W_j2): the
        reference-horizon parts of the cut-off bounds (:meth:`cutoff`). Cached."""
        tau, phi = self.branch_sigma(k, branch)
        key = (int(k), tuple(np.round(tau, 12)), tuple(np.round(phi, 12)), float(n_sigma))
        got = self.bounds.get(key)
        if got is not None:
            return got
        sig = np.sqrt(tau**2 + phi**2 + np.maximum(self.c2c, 0.0))  # (nM, nR, P)
        va = sig * self.a
        ta = tau * self.a
        s2 = np.einsum("mrp,pq,mrq->mr", va, self.corr, va) - float(ta @ self.corr @ ta)
        a_im = self.med[k] @ self.a + n_sigma * np.sqrt(np.maximum(s2, 0.0))
        if self.j2 >= 0:
            a_d = self.med[k][..., self.j2] + n_sigma * np.sqrt(np.maximum(sig[..., self.j2] ** 2 - tau[self.j2] ** 2, 0.0))
        else:
            a_d = np.full(a_im.shape, -np.inf)
        self.bounds[key] = (a_im, a_d)
        return a_im, a_d

    def cutoff(self, mags: np.ndarray, k: np.ndarray, branch: Mapping[str, int], bvec: np.ndarray, ln_im_min: float,
               ln_d_min: float, n_sigma: float, r_max_km: float) -> np.ndarray:
        """Rupture-distance cut-off per event [km] (0: the event cannot reach any threshold).

        A building matters only if, with the within-event IM residual ``s g`` at ``g = n_sigma``
        and every period's ln AF at its maximum (plus the site term's bound), the surface IM can
        reach ``ln_im_min`` (fragility) or the direct IM ``ln_d_min``. Conservative in the
        magnitude interpolation (the larger of the two neighbouring rows).
        """
        n_e = mags.size
        if not np.isfinite(n_sigma):
            return np.full(n_e, r_max_km)
        eps = self.s2s_epsilon(branch)
        b_im, b_d = self.site_bound(eps, n_sigma)
        im0, _ = self.mag_index(mags)
        out = np.zeros(n_e)
        for kk in np.unique(k):
            sel = np.flatnonzero(k == kk)
            a_im, a_d = self.bound_tables(int(kk), branch, n_sigma)
            up_im = np.maximum(a_im[im0[sel]], a_im[np.minimum(im0[sel] + 1, self.n_m - 1)])
            surf = up_im + (bvec[sel] @ self.a)[:, None] + b_im
            ok = surf >= ln_im_min
            if self.j2 >= 0 and np.isfinite(ln_d_min):
                up_d = np.maximum(a_d[im0[sel]], a_d[np.minimum(im0[sel] + 1, self.n_m - 1)])
                ok |= up_d + bvec[sel, self.j2][:, None] + b_d >= ln_d_min
            any_ok = ok.any(axis=1)
            last = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
            r = self.r_grid[np.minimum(last + 1, self.r_grid.size - 1)]
            out[sel] = np.where(any_ok, np.minimum(r, r_max_km), 0.0)
        return out

    def between(self, keys: np.ndarray, k: np.ndarray, branch: Mapping[str, int]) -> np.ndarray:
        """Between-event residual vectors (e, P): ``tau o (L_rho eta_e)``, eta_e from the event's
        stream (tag TAG_ETA, counters 0..P-1)."""
        P = self.n_periods
        out = np.empty((keys.size, P))
        z = np.empty(P)
        for e, key in enumerate(keys):
            ek.fill_normals(np.uint64(key), ek.TAG_ETA, z)
            tau, _ = self.branch_sigma(int(k[e]), branch)
            out[e] = tau * (self.corr_chol @ z)
        return out

    def ruptures(self, keys: np.ndarray, mags: np.ndarray) -> np.ndarray:
        """Per event (length [km], cos, sin of the strike, extent towards +strike [km]) (e, 4)."""
        n = keys.size
        out = np.zeros((n, 4))
        out[:, 1] = 1.0
        if self.rup_mode == RUP_POINT or n == 0:
            return out
        z = np.empty(n)
        u1 = np.empty(n)
        u2 = np.empty(n)
        ek.event_normals(keys, TAG_RUPTURE, 0, z)
        ek.event_uniforms(keys, TAG_RUPTURE, 2, u1)
        ek.event_uniforms(keys, TAG_RUPTURE, 3, u2)
        length = rup.leonard_rupture_length_km(mags) * 10.0 ** (rup.SIGMA_LOG10_LENGTH * z)
        if self.strike is None:
            theta = math.pi * u1
        else:  # strike ~ N(mean, sd^2) clockwise from north: direction (sin s, cos s) = (cos theta, sin theta)
            zs = np.empty(n)
            ek.event_normals(keys, TAG_RUPTURE, 4, zs)
            theta = np.deg2rad(90.0 - (self.strike[0] + self.strike[1] * zs))
        out[:, 0] = length
        out[:, 1] = np.cos(theta)
        out[:, 2] = np.sin(theta)
        out[:, 3] = u2 * length
        return out

    def site_terms_zone(self, key: np.uint64) -> np.ndarray:
        """The event's aleatory site terms per zone (z, P): ``L_R xi_z``, xi from tag TAG_XI."""
        P = self.n_periods
        z = np.empty(self.n_zones * P)
        ek.fill_normals(np.uint64(key), ek.TAG_XI, z)
        return np.ascontiguousarray(z.reshape(self.n_zones, P) @ self.site_chol.T)

    def ims(self, ex, ey, depth, mag, key, r_cut, r_max, rupture_row, im0, fm, k, branch, bvec, bidx, b, g,
            xi_zone) -> tuple[np.ndarray, np.ndarray]:
        """ln IM, ln IM2 of the listed buildings in one event (:func:`event_ims`)."""
        tau, phi = self.branch_sigma(k, branch)
        n = bidx.size
        out_im = np.empty(n)
        out_im2 = np.empty(n)
        st = self.sites
        aleatory = self.s2s_mode != "epistemic"
        event_ims(float(ex), float(ey), float(depth), float(mag), np.uint64(key), float(r_cut), float(r_max),
                  int(self.rup_mode), float(rupture_row[0]), float(rupture_row[1]), float(rupture_row[2]),
                  float(rupture_row[3]), float(self.az_sin), float(self.az_cos), int(im0), float(fm), self.ln_r0,
                  self.dln, self.med[k], self.c2c, tau, phi, self.corr, self.a, int(self.j2), bvec,
                  st.kind, st.f1c, st.f2, st.inv_f3, st.lnlo, st.lnhi, st.s1, st.sslope, st.lnxl, st.smin, st.smax,
                  st.wierde, aleatory, self.s2s_epsilon(branch), xi_zone, self.site_chol, self.per_building_site,
                  self.site_zone, bidx, b.bx, b.by, b.bsite, b.bkey, g, out_im, out_im2)
        return out_im, out_im2


def _period_weights(gmm, imt: str) -> tuple[np.ndarray, np.ndarray]:
    """Periods [s] and weights of ln IM over them: AvgSa = the 10 periods, 1/10 each; PGA = 0.01 s."""
    per = np.asarray(gmm.avgsa_periods, float)
    if imt == "AvgSa":
        return per, np.full(per.size, 1.0 / per.size)
    if imt == "PGA":
        a = np.zeros(per.size)
        a[int(np.argmin(np.abs(per - 0.01)))] = 1.0
        return per, a
    raise KeyError(f"{gmm.name} has no IM {imt!r}; it gives AvgSa and PGA")


def spectral_static(gmm, imt: str, direct_imt: str | None, sites: list[tuple[int, bool]], m_range: tuple[float, float],
                    r_grid: np.ndarray, median_branches, sigma_branches, site_term: str = "zone") -> SpectralStatic:
    """Tables and coefficients of an event-based run with GroningenV7 / GroningenV6.

    Parameters
    ----------
    gmm : the model instance.
    imt, direct_imt : the fragility IM and the direct (outside-death) IM, or None.
    sites : ``[(zone, wierde), ...]`` of the run.
    m_range : smallest and largest magnitude of the events. [-]
    r_grid : log-spaced rupture-distance grid of the tables. [km]
    median_branches : physical median-branch indices needed.
    sigma_branches : ``(gmm_tau, gmm_phi_ss)`` index pairs needed.
    site_term : "zone" or "building" (aleatory site term only).
    """
    per, a = _period_weights(gmm, imt)
    j2 = -1
    if direct_imt is not None:
        _, a2 = _period_weights(gmm, direct_imt)
        if np.count_nonzero(a2) != 1:
            raise KeyError(f"direct IM {direct_imt!r} must be a single period")
        j2 = int(np.flatnonzero(a2)[0])
    tp = np.asarray(gmm.tables.periods, float)
    idx = np.array([int(np.argmin(np.abs(tp - t))) for t in per])
    corr = np.ascontiguousarray(np.asarray(gmm.tables.p2p, float)[np.ix_(idx, idx)])
    m_lo = math.floor(float(m_range[0]) / MAG_STEP + 1e-9) * MAG_STEP
    m_hi = math.ceil(float(m_range[1]) / MAG_STEP - 1e-9) * MAG_STEP
    n_m = max(int(round((m_hi - m_lo) / MAG_STEP)) + 1, 2)
    mgrid = m_lo + MAG_STEP * np.arange(n_m)
    r = np.asarray(r_grid, float)
    M3 = mgrid[:, None, None]
    R3 = r[None, :, None]
    med = {}
    for k in sorted({int(x) for x in median_branches}):
        med[k] = np.ascontiguousarray(gmm.ln_median_sa_g(per[None, None, :], M3, R3, {"gmm_median": k}))
    any_branch = {"gmm_median": 0, "gmm_tau": 0, "gmm_phi_ss": 0}
    c2c = np.ascontiguousarray(gmm.sigma_components(per[None, None, :], M3, R3, any_branch)["sigma_c2c"] ** 2)
    sigma = {}
    for k in med:
        for it, ip in sorted({(int(t), int(f)) for t, f in sigma_branches}):
            sc = gmm.sigma_components(per, 4.0, 10.0, {"gmm_median": k, "gmm_tau": it, "gmm_phi_ss": ip})
            sigma[(k, it, ip)] = (np.ascontiguousarray(sc["tau"], float), np.ascontiguousarray(sc["phi_ss"], float))
    uz = sorted({int(z) for z, _ in sites})
    site_zone = np.array([uz.index(int(z)) for z, _ in sites], dtype=np.int64)
    s2s_mode = getattr(gmm, "s2s_mode", "epistemic")
    eps = ()
    if s2s_mode == "epistemic":
        eps = tuple(float(v) for v in gmm.tree.node("gmm_s2s").values)
        site_corr = np.eye(per.size)
    else:
        mode = getattr(gmm, "s2s_p2p", "consistent")
        site_corr = {"zero": np.eye(per.size), "full": np.ones((per.size, per.size))}.get(mode, corr)
    if getattr(gmm, "rupture", "finite") == "point":
        mode, az_s, az_c = RUP_POINT, 0.0, 1.0
    elif getattr(gmm, "azimuth_deg", None) is not None:
        az = math.radians(float(gmm.azimuth_deg))
        mode, az_s, az_c = RUP_FIXED_AZIMUTH, abs(math.sin(az)), abs(math.cos(az))
    else:
        mode, az_s, az_c = RUP_LINE, 0.0, 1.0
    if site_term not in ("zone", "building"):
        raise ValueError(f"site_term must be 'zone' or 'building', got {site_term!r}")
    return SpectralStatic(
        name=gmm.name, imt=imt, direct_imt=direct_imt, periods=per, a=np.ascontiguousarray(a), j2=j2, corr=corr,
        corr_chol=np.ascontiguousarray(np.linalg.cholesky(corr)), m0=float(m_lo), n_m=n_m, ln_r0=float(np.log(r[0])),
        dln=float(np.log(r[1] / r[0])), r_grid=r, med=med, c2c=c2c, sigma=sigma, sites=site_arrays(gmm, sites, idx),
        site_zone=site_zone, n_zones=len(uz), s2s_mode=s2s_mode, s2s_eps=eps,
        site_chol=np.ascontiguousarray(lower_factor(site_corr)), per_building_site=site_term == "building",
        rup_mode=mode, az_sin=az_s, az_cos=az_c,
        strike=(tuple(float(v) for v in gmm.rupture_strike)
                if mode == RUP_LINE and getattr(gmm, "rupture_strike", None) is not None else None),
    )


def lower_factor(mat: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = mat for a positive semi-definite ``mat`` (also singular ones,
    such as the all-ones "full" correlation): the kernels use only the lower triangle."""
    out = np.empty_like(np.asarray(mat, float))
    _semidef_cholesky(np.ascontiguousarray(mat, dtype=float), out)
    return out


def physical_median_branches(gmm, median_map, mode: str, virtual: int, mags: np.ndarray, u: np.ndarray | None = None
                             ) -> np.ndarray:
    """Physical median branch of each event for the engine's virtual branch ``virtual``.

    The integration engine (:class:`hra.chain.MedianMap`) maps one uniform u per realisation
    through the cumulative weights w(M) of the ordered median branches (``mode="realisation"``:
    u = the middle of the virtual branch's interval, the same branch as the engine's at every
    magnitude node), or mixes w(M) per event (``"mixture"``: u drawn per event, ``u`` given).
    Without a magnitude-dependent map (``median_map`` None) the branch is ``virtual`` itself.
    """
    mags = np.atleast_1d(np.asarray(mags, float))
    if median_map is None:
        return np.full(mags.size, int(virtual), dtype=np.int64)
    cum = np.cumsum(gmm.median_weights(mags), axis=1)[:, :-1]
    if mode == "mixture":
        if u is None:
            raise ValueError("mixture median weights need a uniform per event")
        x = np.asarray(u, float)
    else:
        hi = np.cumsum(median_map.weights)
        lo = hi - median_map.weights
        x = np.full(mags.size, 0.5 * (lo[virtual] + hi[virtual]))
    return (cum <= x[:, None]).sum(axis=1).astype(np.int64)


def simulate_marginal(gmm, imt: str, magnitude: float, r_hyp_km: float, zone: int, branch: Mapping[str, int],
                      n: int = 100_000, seed: int = 0, wierde: bool = False, direct_imt: str | None = "PGA",
                      depth_km: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """n independent draws of (ln IM, ln direct IM) [ln g] at one site from the event simulation.

    Each draw is its own event (rupture, between-event residual, site term) with one building at
    hypocentral distance ``r_hyp_km`` east of the epicentre (the strike drawn from the model's
    strike model, uniform without one) and an
    independent within-event normal: the per-building marginal that the event-based risk
    integrates, to be compared with :meth:`GroningenV7.ln_im_mixture`. ``branch`` holds
    gmm_median (physical), gmm_tau, gmm_phi_ss and, for an epistemic site term, gmm_s2s.
    """
    r_e = math.sqrt(max(r_hyp_km**2 - depth_km**2, 0.0))
    r_grid = np.exp(np.linspace(math.log(depth_km), math.log(max(r_hyp_km * 1.05, depth_km * 1.5)), 256))
    k = int(branch.get("gmm_median", 0))
    sp = spectral_static(gmm, imt, direct_imt, [(int(zone), bool(wierde))], (magnitude - 0.1, magnitude + 0.1), r_grid,
                         [k], [(int(branch.get("gmm_tau", 0)), int(branch.get("gmm_phi_ss", 0)))], "building")
    base = seed_key(seed)
    keys = np.array([ek.event_key(base, i) for i in range(n)], dtype=np.uint64)
    mags = np.full(n, float(magnitude))
    bvec = sp.between(keys, np.full(n, k, dtype=np.int64), branch)
    rups = sp.ruptures(keys, mags)
    im0, fm = sp.mag_index(mags[:1])
    tau, phi = sp.branch_sigma(k, branch)
    st = sp.sites
    out = np.empty((n, 2))
    marginal_draws(keys, r_e, float(depth_km), float(magnitude), rups, int(sp.rup_mode), float(sp.az_sin),
                   float(sp.az_cos), int(im0[0]), float(fm[0]), sp.ln_r0, sp.dln, sp.med[k], sp.c2c, tau, phi, sp.corr,
                   sp.a, int(sp.j2), np.ascontiguousarray(bvec), st.kind, st.f1c[0], st.f2[0], st.inv_f3[0], st.lnlo[0],
                   st.lnhi[0], st.s1[0], st.sslope[0], st.lnxl[0], st.smin[0], st.smax[0], st.wierde[0],
                   sp.s2s_mode != "epistemic", sp.s2s_epsilon(branch), sp.site_chol, out)
    return out[:, 0], out[:, 1]
