"""numba kernels of the engine (no I/O, no dask, no model equations).

Layout letters used in comments: b = buildings, c = source cells, y = years, s = source-rate
branches, r = distance nodes, m = magnitude nodes, q = mixture components, t = typologies,
f = fragility branches, k = collapse states, u = model-branch combinations, j = typology
candidates of a building, n = values per (building, year), p = quantile probabilities.

Data flow per building (see engine.py):

1. ``distance_histogram``: the building's annual rate of M >= m_min events per hypocentral
   distance node, ``H[r, y*S + s]``, by linear interpolation in ln R between nodes (sub-cells
   for nearby cells). A pass over the source cells for their nodes and weights, then
   one adding the weights times the cells' rates.
2. ``_tile_contract`` / ``_contract_rows`` (in ``chunk_lpr``): ``A[j, y, u] = sum_r H[r, y, s_u]
   Q[zt_j, r, u]`` for each typology candidate j, register tiles of the candidates of several
   buildings that read one table (or four rows r per pass); ``Q`` holds the expected death probability
   per event at distance node r, already integrated over magnitude, residuals and fragility for
   model combination u. Where a branch's yearly maps are a few time components t
   (``year_factor``, :func:`hra.inputs.forecast.factor_years`; one where the maps only scale), the
   histogram and this contraction run over t instead of y and ``A[j, y, u] = sum_t F[y, t, s_u]
   A_t[j, t, u]`` (``_years_from_components``).
3. realisation weights: enumeration -> combination weights (x typology probabilities);
   Monte Carlo -> counts of the drawn (combination, typology) pairs / N, the typology drawn
   from a counter-based hash of (seed, building key, realisation): chunk- and order-independent.
4. ``weighted_quantiles`` (in ``_building_values``): the inverse weighted empirical CDF
   (logictree.weighted_quantile), by a weighted selection (``_select_quantiles``) that returns the
   sort's bits (the sort, ``_sorted_quantiles``, decides where a sum is within rounding of a target).

Memory per building is O(R * Y * S + K * Y * U) (chunk_lpr holds a window of 16-128 buildings at a
time, ``window_size``); nothing scales with the number of buildings beyond the caller's output arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.core import cgutils
from llvmlite import ir
from numba.extending import intrinsic

from fragility.lognormal import death_given_nested, nest_exceedance
from hra.core import fastmath
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


#: Columns per register tile of :func:`_expand_block`.
EXPAND_COLS = 16


def _ir_splat(builder, x, typ):
    """LLVM: the scalar ``x`` broadcast to every lane of the vector type ``typ`` (insert into lane 0, then a
    shuffle with an all-zero mask): the vector codegens' broadcast."""
    one = builder.insert_element(ir.Constant(typ, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(typ, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), typ.count), [0] * typ.count))


def _ir_vptr(builder, base, at, vt):
    """LLVM: a pointer to the vector ``vt`` at element ``at`` of the scalar pointer ``base``."""
    return builder.bitcast(builder.gep(base, [at]), vt.as_pointer())


def _expand_codegen(context, builder, signature, argv):
    """LLVM code of :func:`_expand_block`: vectors of 4 doubles, the sums of :data:`EXPAND_COLS`
    columns held in registers over the terms (allocas that LLVM promotes to registers)."""
    width = 4
    vt = ir.VectorType(ir.DoubleType(), width)
    i64 = ir.IntType(64)
    out, basis, wts, cidx = [context.make_array(t)(context, builder, v)
                             for t, v in zip((signature.args[0], *signature.args[3:6]), (argv[0], *argv[3:6]))]
    row, off, n_c, c0, c1 = argv[1], argv[2], argv[6], argv[7], argv[8]
    n_out = cgutils.unpack_tuple(builder, out.shape, 2)[1]
    n_basis = cgutils.unpack_tuple(builder, basis.shape, 2)[1]
    start = builder.add(builder.mul(row, n_out), off)
    accp = [cgutils.alloca_once(builder, vt) for _ in range(EXPAND_COLS // width)]

    with cgutils.for_range_slice(builder, c0, c1, ir.Constant(i64, EXPAND_COLS)) as (col, _):
        for p in accp:
            builder.store(ir.Constant(vt, [0.0] * width), p)
        with cgutils.for_range(builder, n_c) as loop:
            w = builder.load(builder.gep(wts.data, [loop.index]))
            ws = _ir_splat(builder, w, vt)
            at = builder.add(builder.mul(builder.load(builder.gep(cidx.data, [loop.index])), n_basis), col)
            for k, p in enumerate(accp):
                b = builder.load(_ir_vptr(builder, basis.data, builder.add(at, ir.Constant(i64, k * width)), vt),
                                 align=8)
                builder.store(builder.fadd(builder.load(p), builder.fmul(ws, b)), p)
        for k, p in enumerate(accp):
            at = builder.add(builder.add(start, col), ir.Constant(i64, k * width))
            builder.store(builder.load(p), _ir_vptr(builder, out.data, at, vt), align=8)
    return context.get_dummy_value()


@intrinsic
def _expand_block(typingctx, out, row, off, basis, wts, cidx, n_c, c0, c1):
    """``out[row, off + v] = sum_t wts[t] basis[cidx[t], v]`` for the columns ``c0 <= v < c1`` (a
    multiple of :data:`EXPAND_COLS` of them), the terms added one by one from 0.0 in t order (IEEE
    multiply, then add: per column the bits of ``out = 0; out += w basis[c]`` row after row, as
    :func:`_axpy` does), the sums held in vector registers over the terms. ``out`` and ``basis``
    are C-contiguous 2-D float64 arrays, ``wts`` 1-D float64, ``cidx`` 1-D int64."""
    if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == types.float64
               for t in (out, basis)):
        return None
    if not (isinstance(wts, types.Array) and wts.ndim == 1 and wts.layout == "C" and wts.dtype == types.float64
            and isinstance(cidx, types.Array) and cidx.ndim == 1 and cidx.layout == "C" and cidx.dtype == types.int64):
        return None
    return types.void(out, types.intp, types.intp, basis, wts, cidx, types.intp, types.intp, types.intp), _expand_codegen


@jit
def _expand_rows(out, row, off, basis, wts, cidx, n_c):
    """``out[row, off + v] = sum_t wts[t] basis[cidx[t], v]`` for every column v of ``basis``, the
    terms added one by one from 0.0 in t order: :func:`_expand_block` for the multiples of
    :data:`EXPAND_COLS`, the plain loop for the rest."""
    n = basis.shape[1]
    n_full = (n // EXPAND_COLS) * EXPAND_COLS
    _expand_block(out, row, off, basis, wts, cidx, n_c, 0, n_full)
    for v in range(n_full, n):
        acc = 0.0
        for t in range(n_c):
            acc += wts[t] * basis[cidx[t], v]
        out[row, off + v] = acc


@jit(inline="always")
def _node_fraction(d2_m2, depth_km, ln_r0, dln, n_r, r_max_km):
    """Lower node i and fraction f of R_hyp = sqrt(d^2 + depth^2) [km] on the uniform ln R grid
    (``ln_r0 + i dln``, n_r nodes; clamped to the end nodes: below the first node f = 0, at or
    beyond the last i = n_r - 2 and f = 1), or i = -1 beyond ``r_max_km``. Selects only; ln by
    the C library (a branch-free log would let the loop vectorise, but moves f by ~1 ulp of
    ln R / dln: the cubic weights, and the histogram, would change by up to ~1e-14 relative)."""
    r_km = math.sqrt(d2_m2 * 1e-6 + depth_km * depth_km)
    u = (math.log(r_km) - ln_r0) / dln
    u = 0.0 if u < 0.0 else u
    i = int(u)
    end = i >= n_r - 1
    f = 1.0 if end else u - i
    i = n_r - 2 if end else i
    return (-1 if r_km > r_max_km else i), f


@jit(inline="always")
def _rule_slots(i, f, n_r, n_slot):
    """How R_hyp (lower node i, fraction f: :func:`_node_fraction`) shares a rate over the ln R
    nodes: ``(i0, w0, w1, w2, w3)``, weight ws at node i0 + s for the first ``n_slot`` slots
    (:func:`_rule_n_slot`; unused slots weigh 0). Branch-free.

    Linear (``n_slot = 2``): the two nodes around R, weights ``1 - f`` and ``f``.
    Cubic (``n_slot`` 3 or 4): 4-point Lagrange interpolation in ln R on nodes i-1..i+2 at
    ``g = f`` (exact for tables cubic in ln R; error O(h^4) against O(h^2))::

        w = (-g (g-1) (g-2) / 6, (g+1) (g-1) (g-2) / 2, -(g+1) g (g-2) / 2, (g+1) g (g-1) / 6)

    and 3-point (quadratic) Lagrange weights on nodes 0, 1, 2 at ``x = f`` in the first interval
    and on nodes n_r-3, n_r-2, n_r-1 at ``x = f + 1`` in the last (the clamped ends give the end
    node's weight 1 exactly)::

        w = ((x-1) (x-2) / 2, -x (x-2), x (x-1) / 2)

    there the slots start one node lower (i0 = n_r - 4, w0 = 0) when ``n_slot = 4``. The weights
    sum to 1 and are linear in the table values, so the building histogram stays a histogram
    (some weights are negative)."""
    if n_slot == 2:
        return i, 1.0 - f, f, 0.0, 0.0
    last = i >= n_r - 2
    x = f + 1.0 if last else f
    q0 = 0.5 * (x - 1.0) * (x - 2.0)
    q1 = -x * (x - 2.0)
    q2 = 0.5 * x * (x - 1.0)
    g = f
    c0 = -g * (g - 1.0) * (g - 2.0) / 6.0
    c1 = 0.5 * (g + 1.0) * (g - 1.0) * (g - 2.0)
    c2 = -0.5 * (g + 1.0) * g * (g - 2.0)
    c3 = (g + 1.0) * g * (g - 1.0) / 6.0
    if n_slot == 3:  # n_r = 3: always nodes 0, 1, 2
        return (-1 if i < 0 else 0), q0, q1, q2, 0.0
    first = i == 0
    mid = not first and not last
    i0 = i - 1 if mid else (n_r - 4 if last else 0)
    w0 = c0 if mid else (0.0 if last else q0)
    w1 = c1 if mid else (q0 if last else q1)
    w2 = c2 if mid else (q1 if last else q2)
    w3 = c3 if mid else (q2 if last else 0.0)
    return (-1 if i < 0 else i0), w0, w1, w2, w3


@jit
def _rule_n_slot(n_r, cubic):
    """Distance nodes one (sub-)cell's rate reaches: 2 (linear), 4 (cubic; 3 when ``n_r = 3``)."""
    if not cubic or n_r < 3:
        return 2
    return min(n_r, 4)


@jit(inline="always")
def _cos_2az(dx_m, dy_m, d2_m2, cos2s, sin2s):
    """cos(2 az) of the site's azimuth relative to the mean strike seen from the (sub-)cell
    (:func:`_folded_azimuth`; folding into [0, 90] leaves cos(2 az) unchanged), without
    trigonometry: with phi = atan2(dx, dy), cos 2phi = (dy^2 - dx^2)/d^2 and
    sin 2phi = 2 dx dy / d^2, ``cos(2 (strike - phi)) = cos 2strike cos 2phi + sin 2strike sin 2phi``
    (``cos2s``, ``sin2s``: of the strike); d = 0 is phi = 0 as atan2(0, 0)."""
    d2 = d2_m2 if d2_m2 > 0.0 else 1.0
    c2phi = (dy_m * dy_m - dx_m * dx_m) / d2 if d2_m2 > 0.0 else 1.0
    s2phi = 2.0 * dx_m * dy_m / d2
    return cos2s * c2phi + sin2s * s2phi


@jit
def _folded_azimuth(dx_m, dy_m, strike_deg):
    """Azimuth of the site seen from the (sub-)cell relative to the mean strike, folded into [0, 90]
    [degree] (:func:`hra.gmm.rupture.relative_azimuth_deg`)."""
    az = (strike_deg - math.degrees(math.atan2(dx_m, dy_m))) % 180.0
    if az > 90.0:
        az = 180.0 - az
    return az


@jit(inline="always")
def _azimuth_weights(aval, n_a, harmonic, wa):
    """The azimuth rows' weights ``wa`` (n_a,) of one (sub-)cell: with ``harmonic`` the harmonics
    ``cos(2 a az)``, a = 0..n_a-1, from ``aval = cos(2 az)`` by the Chebyshev recurrence
    ``cos(2 (a+1) az) = 2 cos(2 az) cos(2 a az) - cos(2 (a-1) az)``; else linear in the folded
    azimuth ``aval = az`` [degree] between its two nodes of n_a equally spaced ones on [0, 90];
    1 when ``n_a = 1``."""
    if n_a <= 1:
        wa[0] = 1.0
        return
    if harmonic:
        wa[0] = 1.0
        wa[1] = aval
        for a in range(2, n_a):
            wa[a] = 2.0 * aval * wa[a - 1] - wa[a - 2]
        return
    ua = aval * (n_a - 1) / 90.0
    ia = int(ua)
    if ia >= n_a - 1:
        ia = n_a - 2
    g = ua - ia
    for a in range(n_a):
        wa[a] = 0.0
    wa[ia] = 1.0 - g
    wa[ia + 1] = g


@jit
def _cell_geometry(bx, by, cx, cy, c0, nb, depth_km, ln_r0, dln, n_r, n_a, strike_deg, harmonic, r_max_km, sub2_m2,
                   n_sub, n_slot, base, wd, aval):
    """First pass over cells ``c0 + j``, j < nb: each cell's first distance node
    ``base[j]`` (-1 beyond ``r_max_km``, -2 for a near cell that :func:`_subcells` splits), its
    ``n_slot`` distance weights ``wd[s, j]`` (:func:`_rule_slots`) and its azimuth value
    ``aval[j]`` (cos(2 az) with ``harmonic``, else the folded azimuth az [degree]; unused when
    n_a = 1)."""
    split = n_sub > 1
    for j in range(nb):
        dx = cx[c0 + j] - bx
        dy = cy[c0 + j] - by
        d2 = dx * dx + dy * dy
        i, f = _node_fraction(d2, depth_km, ln_r0, dln, n_r, r_max_km)
        i0, w0, w1, w2, w3 = _rule_slots(i, f, n_r, n_slot)
        base[j] = -2 if split and d2 < sub2_m2 else i0
        wd[0, j] = w0
        wd[1, j] = w1
        wd[2, j] = w2
        wd[3, j] = w3
    if n_a <= 1:
        return
    if harmonic:
        s2 = 2.0 * math.radians(strike_deg)
        cos2s = math.cos(s2)
        sin2s = math.sin(s2)
        for j in range(nb):
            dx = cx[c0 + j] - bx
            dy = cy[c0 + j] - by
            aval[j] = _cos_2az(dx, dy, dx * dx + dy * dy, cos2s, sin2s)
        return
    for j in range(nb):
        aval[j] = _folded_azimuth(cx[c0 + j] - bx, cy[c0 + j] - by, strike_deg)


@jit
def _subcells(dx, dy, rate_row, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic, r_max_km, cell_size_m,
              n_sub, n_slot, wa, wbuf, hist):
    """A near cell split into n_sub x n_sub sub-cells, each carrying 1/n_sub^2 of the rate and
    shared by the cell's rule (:func:`_rule_slots`, :func:`_azimuth_weights`): their weights per
    (distance node, azimuth row) are summed first in ``wbuf`` (they share the cell's rates), then
    each non-zero row block gets one pass over the rates (instead of one per sub-cell:
    ~n_sub^2 / 3 fewer passes; the sums differ from sub-cell by sub-cell deposits only by rounding)."""
    step = cell_size_m / n_sub
    frac = 1.0 / (n_sub * n_sub)
    if harmonic:
        s2 = 2.0 * math.radians(strike_deg)
        cos2s = math.cos(s2)
        sin2s = math.sin(s2)
    else:
        cos2s = 1.0
        sin2s = 0.0
    lo = wbuf.shape[0]
    hi = 0
    for i in range(n_sub):
        sx = dx + (i + 0.5) * step - 0.5 * cell_size_m
        for j in range(n_sub):
            sy = dy + (j + 0.5) * step - 0.5 * cell_size_m
            d2 = sx * sx + sy * sy
            ir, f = _node_fraction(d2, depth_km, ln_r0, dln, n_r, r_max_km)
            i0, w0, w1, w2, w3 = _rule_slots(ir, f, n_r, n_slot)
            if i0 < 0:
                continue
            if n_a > 1:
                aval = _cos_2az(sx, sy, d2, cos2s, sin2s) if harmonic else _folded_azimuth(sx, sy, strike_deg)
            else:
                aval = 0.0
            _azimuth_weights(aval, n_a, harmonic, wa)
            lo = min(lo, i0 * n_a)
            hi = max(hi, (i0 + n_slot) * n_a)
            for s in range(n_slot):
                wds = w0 if s == 0 else (w1 if s == 1 else (w2 if s == 2 else w3))
                row = (i0 + s) * n_a
                for a in range(n_a):
                    wbuf[row + a] += wds * wa[a] * frac
    n_v = hist.shape[1]
    for ra in range(lo, hi):
        w = wbuf[ra]
        if w == 0.0:
            continue
        wbuf[ra] = 0.0
        row = ra * n_k
        for k in range(n_k):
            _axpy(w, rate_row[k * n_v:(k + 1) * n_v], hist[row + k])


#: Columns per vector of :func:`_cells_rows` (the histogram's accumulate pass).
HIST_VEC = 4

#: Rows per pass of :func:`_cells_rows` (each cell's rates loaded once for them).
HIST_ROWS = 4


def _vector_cells(nvec, nrow, masked=False):
    """An intrinsic ``block(hist, row, col, rates, c0, n, wd, wa, slot_row, t, n_pass, first)``: for
    each of ``n_pass`` passes p (``row`` and ``t`` advanced by ``p * nrow``), sets, for the
    ``nvec * HIST_VEC`` columns v = col.. of the ``nrow`` rows ``row + i``,
    ``hist[row + i, v] = ((hist[row + i, v] + w(c0, t + i) rates[c0, v]) + w(c0 + 1, t + i)
    rates[c0 + 1, v]) + ...`` over the n cells c0.., with the weight
    ``w(c, t) = wd[s, c] * wa[c, a]`` (s = ``slot_row[0, t]``, a = ``slot_row[1, t]``: the cell's
    distance-slot weight times its azimuth-row weight). ``hist``, ``rates``, ``wd``, ``wa``: 2-D
    float64 arrays; ``slot_row``: 2-D int64. The columns are ``nvec`` vectors per row held in
    registers over the cells (one load and store of the histogram per n cells, each cell's rates
    loaded once for the rows, ``nvec * nrow`` independent chains of additions). IEEE multiply, then
    add, in cell order: per entry the bits of the scalar ``w = wd * wa; hist[row, v] += w * x[v]``
    cell by cell (no fused multiply-add, no reordering). C-contiguous ``hist`` and ``rates`` take
    vector loads; others (any strides) element by element. numba leaves LLVM's SLP vectoriser off,
    and its loop vectoriser gives each short row a scalar remainder and a reload of the row per
    cell: this is the vector code written out (as :func:`_vector_block`). With ``masked`` (one
    vector) only the columns ``col + i`` with ``i >= first`` are changed (the others are written
    back as they were): a row's last ``V % HIST_VEC`` columns as the vector that ends at its end."""

    @intrinsic
    def block(typingctx, hist, row, col, rates, c0, n, wd, wa, slot_row, t, n_pass, first):
        for a in (hist, rates, wd, wa):
            if not (isinstance(a, types.Array) and a.ndim == 2 and a.dtype == types.float64):
                return None
        if not (isinstance(slot_row, types.Array) and slot_row.ndim == 2 and slot_row.dtype == types.int64):
            return None
        sig = types.void(hist, types.intp, types.intp, rates, types.intp, types.intp, wd, wa, slot_row, types.intp,
                         types.intp, types.intp)

        def codegen(context, builder, signature, args):
            width = HIST_VEC
            f64 = ir.DoubleType()
            vt = ir.VectorType(f64, width)
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            where = (0, 3, 6, 7, 8)  # hist, rates, wd, wa, slot_row
            arys = [context.make_array(signature.args[i])(context, builder, args[i]) for i in where]
            contig = [signature.args[i].layout == "C" for i in where]

            def addr(k, i, j, typ=f64):  # element (i, j) of array k
                ary = arys[k]
                s0, s1 = cgutils.unpack_tuple(builder, ary.strides, 2)
                off = builder.add(builder.mul(i, s0), builder.mul(j, s1))
                return builder.inttoptr(builder.add(builder.ptrtoint(ary.data, i64), off), typ.as_pointer())

            def vaddr(k, i, j):  # C-contiguous: element (i, j) from the shape
                ary = arys[k]
                _, n1 = cgutils.unpack_tuple(builder, ary.shape, 2)
                return builder.bitcast(builder.gep(ary.data, [builder.add(builder.mul(i, n1), j)]), vt.as_pointer())

            def load4(k, i, j):
                if contig[k]:
                    return builder.load(vaddr(k, i, j), align=8)
                v = ir.Constant(vt, ir.Undefined)
                for e in range(width):
                    x = builder.load(addr(k, i, builder.add(j, ir.Constant(i64, e))), align=8)
                    v = builder.insert_element(v, x, ir.Constant(i32, e))
                return v

            def store4(k, i, j, v):
                if contig[k]:
                    builder.store(v, vaddr(k, i, j), align=8)
                    return
                for e in range(width):
                    builder.store(builder.extract_element(v, ir.Constant(i32, e)),
                                  addr(k, i, builder.add(j, ir.Constant(i64, e))), align=8)

            _, row1, col, _, c0, n, _, _, _, t1, n_pass, first = args
            zero, one = ir.Constant(i64, 0), ir.Constant(i64, 1)
            cols = [builder.add(col, ir.Constant(i64, width * q)) for q in range(nvec)]
            accs = [[cgutils.alloca_once(builder, vt) for _ in range(nvec)] for _ in range(nrow)]
            with cgutils.for_range(builder, n_pass) as pas:
                step = builder.mul(pas.index, ir.Constant(i64, nrow))
                rows = [builder.add(builder.add(row1, step), ir.Constant(i64, i)) for i in range(nrow)]
                ts = [builder.add(builder.add(t1, step), ir.Constant(i64, i)) for i in range(nrow)]
                slots = [builder.load(addr(4, zero, ts[i], i64), align=8) for i in range(nrow)]
                arows = [builder.load(addr(4, one, ts[i], i64), align=8) for i in range(nrow)]
                for i in range(nrow):
                    for q in range(nvec):
                        builder.store(load4(0, rows[i], cols[q]), accs[i][q])
                with cgutils.for_range(builder, n) as loop:
                    c = builder.add(c0, loop.index)
                    xs = [load4(1, c, cols[q]) for q in range(nvec)]  # the cell's rates, once for the rows
                    for i in range(nrow):
                        w = builder.fmul(builder.load(addr(2, slots[i], c), align=8),
                                         builder.load(addr(3, c, arows[i]), align=8))
                        wv = _ir_splat(builder, w, vt)
                        for q in range(nvec):
                            acc = builder.fadd(builder.load(accs[i][q]), builder.fmul(wv, xs[q]))
                            builder.store(acc, accs[i][q])
                for i in range(nrow):
                    for q in range(nvec):
                        x = builder.load(accs[i][q])
                        if masked:
                            it = ir.VectorType(i64, width)
                            fv = _ir_splat(builder, first, it)
                            keep = builder.icmp_signed(">=", ir.Constant(it, list(range(width))), fv)
                            x = builder.select(keep, x, load4(0, rows[i], cols[q]))
                        store4(0, rows[i], cols[q], x)
            return context.get_dummy_value()

        return sig, codegen

    return block


#: The intrinsics of :func:`_cells_rows`: ``_cells_<nvec>_m`` (HIST_ROWS rows a pass) and
#: ``_cells_<nvec>_1`` (one row) (:func:`_vector_cells`).
_cells_1_1 = _vector_cells(1, 1)
_cells_2_1 = _vector_cells(2, 1)
_cells_3_1 = _vector_cells(3, 1)
_cells_4_1 = _vector_cells(4, 1)
_cells_5_1 = _vector_cells(5, 1)
_cells_6_1 = _vector_cells(6, 1)
_cells_1_m = _vector_cells(1, HIST_ROWS)
_cells_2_m = _vector_cells(2, HIST_ROWS)
_cells_3_m = _vector_cells(3, HIST_ROWS)
_cells_4_m = _vector_cells(4, HIST_ROWS)
_cells_5_m = _vector_cells(5, HIST_ROWS)
_cells_6_m = _vector_cells(6, HIST_ROWS)
_cells_tail_1 = _vector_cells(1, 1, True)
_cells_tail_m = _vector_cells(1, HIST_ROWS, True)


@jit(inline="always")
def _cells_cols(hist, r, col, m, rates, c0, n, wd, wa, slot_row, t, multi, n_pass):
    """``m`` (<= 6) vectors of columns from ``col`` of rows ``r..r + n_pass - 1`` (multi: of
    ``r..r + HIST_ROWS n_pass - 1``, HIST_ROWS at a time) by :func:`_vector_cells`."""
    if multi:
        if m == 6:
            _cells_6_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 5:
            _cells_5_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 4:
            _cells_4_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 3:
            _cells_3_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 2:
            _cells_2_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 1:
            _cells_1_m(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
    else:
        if m == 6:
            _cells_6_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 5:
            _cells_5_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 4:
            _cells_4_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 3:
            _cells_3_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 2:
            _cells_2_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)
        elif m == 1:
            _cells_1_1(hist, r, col, rates, c0, n, wd, wa, slot_row, t, n_pass, 0)


@jit(inline="always")
def _cells_rows(hist, r0, rates, c0, n, wd, wa, slot_row):
    """Cells ``c0..c0+n-1`` that share their first row ``r0`` (n_k = 1): ``hist[r0 + t, v] +=
    w(c, t) rates[c, v]``, ``w(c, t) = wd[s, c] * wa[c, a]`` (s, a = ``slot_row[:, t]``, the
    cell's distance-slot and azimuth-row weights), for the rows t < ``slot_row.shape[1]``, cell
    after cell: :data:`HIST_ROWS` rows at a time, each row's columns in vectors of
    :data:`HIST_VEC`, up to 6 at a time (:func:`_vector_cells`: the rows loaded and stored once for
    the n cells), the last ``V % HIST_VEC`` as one more vector that ends at the row's end and
    changes only those (one by one where V < HIST_VEC). Per entry the sum of the cells' shares in
    cell order: the bits of the cell-by-cell loop."""
    width = slot_row.shape[1]
    n_v = hist.shape[1]
    n_q = n_v // HIST_VEC
    n_v4 = n_q * HIST_VEC
    n_multi = width // HIST_ROWS
    t1 = n_multi * HIST_ROWS
    q = 0
    while q < n_q:
        m = min(6, n_q - q)
        if n_multi > 0:
            _cells_cols(hist, r0, q * HIST_VEC, m, rates, c0, n, wd, wa, slot_row, 0, True, n_multi)
        if width > t1:
            _cells_cols(hist, r0 + t1, q * HIST_VEC, m, rates, c0, n, wd, wa, slot_row, t1, False, width - t1)
        q += m
    if n_q == 0 or n_v4 == n_v:  # no tail, or fewer than HIST_VEC columns: one by one (below)
        tail0 = n_v4
    else:  # the tail as the vector that ends at the row's end, changing only its last columns
        tail0 = n_v
        c_w = n_v - HIST_VEC
        if n_multi > 0:
            _cells_tail_m(hist, r0, c_w, rates, c0, n, wd, wa, slot_row, 0, n_multi, n_v4 - c_w)
        if width > t1:
            _cells_tail_1(hist, r0 + t1, c_w, rates, c0, n, wd, wa, slot_row, t1, width - t1, n_v4 - c_w)
    for t in range(width if tail0 < n_v else 0):
        s = slot_row[0, t]
        a = slot_row[1, t]
        for v in range(tail0, n_v):
            h = hist[r0 + t, v]
            for c in range(c0, c0 + n):
                h += (wd[s, c] * wa[c, a]) * rates[c, v]
            hist[r0 + t, v] = h


@jit(inline="never")
def _add_outer_k(blk, w, rate_row, n_k):
    """``blk[t * n_k + k, v] += w[t] rate_row[k * V + v]``: one cell's weights times its rates of
    each basis function k into its rows (views indexed from 0: the v loop vectorises)."""
    n_v = blk.shape[1]
    for k in range(n_k):
        x = rate_row[k * n_v:(k + 1) * n_v]
        for t in range(w.shape[0]):
            wt = w[t]
            out = blk[t * n_k + k]
            for v in range(n_v):
                out[v] += wt * x[v]


@jit
def distance_histogram(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, r_max_km,
                       cell_size_m, sub_radius_m, n_sub, hist, cubic=False):
    """Accumulate one building's rates per hypocentral-distance node into ``hist`` (r, v).

    :func:`distance_histogram_k` with one rate per (cell, v) (``n_k = 1``); see there.
    """
    distance_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, 1, r_max_km,
                         cell_size_m, sub_radius_m, n_sub, hist, cubic)


@jit
def distance_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, n_k, r_max_km,
                         cell_size_m, sub_radius_m, n_sub, hist, cubic=False):
    """Accumulate one building's rates per hypocentral-distance node into ``hist`` (r * n_k + k, v).

    bx, by        : building position [m]
    cx, cy        : (c,) cell centres [m]
    rates         : (c, k * V + v) rates per cell, basis function k (n_k of them; a forecast's
                    magnitude basis, 1 for a rate grid) and v = y * S + s [yr^-1]
    ln_r0, dln    : ln of the first node (= depth) and the node spacing in ln R
    cell_size_m   : cell side [m]; cells whose centre lies within ``sub_radius_m`` are split into
                    ``n_sub`` x ``n_sub`` equal sub-cells, each carrying 1/n_sub^2 of the rate.
    cubic         : share each rate over the ln R nodes by 4-point Lagrange weights instead of
                    linearly (:func:`_rule_slots`)
    R_hyp = sqrt(d_epi^2 + depth^2) >= depth, so no building gets R -> 0.

    :func:`distance_azimuth_histogram_k` with ``n_a = 1`` (the same two passes, see there).
    """
    distance_azimuth_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, 1, n_k, 0.0, False, r_max_km,
                                 cell_size_m, sub_radius_m, n_sub, hist, cubic)


@jit
def distance_azimuth_histogram_k(bx, by, cx, cy, rates, depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic,
                                 r_max_km, cell_size_m, sub_radius_m, n_sub, hist, cubic=False):
    """Accumulate one building's rates per (hypocentral-distance node, relative-azimuth node).

    ``hist`` rows are ``(r * n_a + a) * n_k + k``: r the ln R_hyp node, a the node of the site's
    azimuth seen from the (sub-)cell centre relative to the mean strike ``strike_deg`` [degree],
    folded into [0, 90] (n_a equally spaced nodes, :func:`hra.gmm.rupture.relative_azimuth_deg`),
    k the basis function. Each (sub-)cell's rate is shared bilinearly: linear in ln R between
    two distance nodes (or over 4 nodes with ``cubic``, :func:`_rule_slots`) times linear in the
    azimuth between two azimuth nodes; with ``harmonic``
    the azimuth rows a are instead the harmonics ``cos(2 a az)`` (a = 0..n_a-1) of tables
    expanded in them (:func:`hra.integration.condtables.azimuth_projection`), and each (sub-)cell
    adds its rate times ``cos(2 a az)`` to every row a (computed without trigonometry:
    :func:`_cos_2az`, :func:`_azimuth_weights`). ``n_a = 1`` is :func:`distance_histogram_k`
    (no azimuth axis). Other arguments as there.

    Method: three passes over the cells: one without branches or trigonometry
    (:func:`_cell_geometry`) for each
    cell's first distance node, distance weights and azimuth value; one forming each cell's
    ``n_slot x n_a`` weights (distance weight x azimuth weight, rows ``(i0 + s) * n_a + a``); one
    adding each cell's weights times its rates into its consecutive rows of ``hist`` (near cells
    by :func:`_subcells`; with ``n_k = 1`` each run of consecutive cells with the same first node
    at once, in vectors of :data:`HIST_VEC` columns: :func:`_cells_rows`, fastest where V is a
    multiple of it). Each entry sums its cells' shares in cell order.
    """
    n_c = cx.shape[0]
    n_slot = _rule_n_slot(n_r, cubic)
    width = n_slot * n_a
    base = np.empty(n_c, dtype=np.int64)
    wd = np.zeros((4, n_c))
    aval = np.zeros(n_c)
    _cell_geometry(bx, by, cx, cy, 0, n_c, depth_km, ln_r0, dln, n_r, n_a, strike_deg, harmonic, r_max_km,
                   sub_radius_m * sub_radius_m, n_sub, n_slot, base, wd, aval)
    wa = np.zeros(n_a)
    # each cell's weight of row t = s * n_a + a is wd[s, c] * wa[a]: with n_k = 1 formed where the
    # rows are accumulated (_cells_rows, from the azimuth weights per cell wac), else here (wcell)
    wac = np.empty((n_c if n_k == 1 else 0, n_a))
    wcell = np.empty((0 if n_k == 1 else n_c, width))
    slot_row = np.empty((2, width), dtype=np.int64)
    for s in range(n_slot):
        for a in range(n_a):
            slot_row[0, s * n_a + a] = s
            slot_row[1, s * n_a + a] = a
    for c in range(n_c):
        if n_k == 1:
            _azimuth_weights(aval[c], n_a, harmonic, wac[c])
            continue
        _azimuth_weights(aval[c], n_a, harmonic, wa)
        for s in range(n_slot):
            wds = wd[s, c]
            for a in range(n_a):
                wcell[c, s * n_a + a] = wds * wa[a]
    wbuf = np.zeros(n_r * n_a)
    c = 0
    while c < n_c:
        b = base[c]
        if b == -1:
            c += 1
            continue
        if b == -2:
            _subcells(cx[c] - bx, cy[c] - by, rates[c], depth_km, ln_r0, dln, n_r, n_a, n_k, strike_deg, harmonic,
                      r_max_km, cell_size_m, n_sub, n_slot, wa, wbuf, hist)
            c += 1
            continue
        start = b * n_a * n_k
        if n_k == 1:  # the run of cells with this first node: their rows are the same (_cells_rows)
            e = c + 1
            while e < n_c and base[e] == b:
                e += 1
            _cells_rows(hist, start, rates, c, e - c, wd, wac, slot_row)
            c = e
            continue
        blk = hist[start:start + width * n_k]  # rows ((b + s) * n_a + a) * n_k + k
        _add_outer_k(blk, wcell[c], rates[c], n_k)
        c += 1


# ------------------------------------------------------------------------------------------
# per-building reduction
# ------------------------------------------------------------------------------------------


#: Below this many values :func:`_select_quantiles` sorts the rest of its range by insertion.
SELECT_SMALL = 12

#: Unit roundoff of float64 (2^-53), for :func:`_select_quantiles`' bound on the rounding of its sums.
_UNIT_ROUNDOFF = 2.0 ** -53


@jit
def weighted_quantiles(values, weights, n, probs, order_buf, out):
    """Inverse weighted empirical CDF of values[:n] at probs -> out (same as logictree.weighted_quantile).

    ``out[i]`` is the first of ``values[:n]`` in ascending order (ties in index order) whose
    cumulative weight reaches ``probs[i] * total * (1 - 1e-12)`` (``total`` summed in index order;
    the largest value if none does). ``values`` and ``weights`` are left as they are (the selection
    of :func:`_select_quantiles` runs on copies); ``order_buf`` is not used (kept for the callers).
    """
    _select_quantiles(values, weights, n, probs, np.empty(n), np.empty(n), out)


@jit
def _sorted_quantiles(values, weights, n, probs, out):
    """:func:`weighted_quantiles` by a full (stable) sort: the definition, and the fallback of
    :func:`_select_quantiles`."""
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


@jit(inline="always")
def _swap_pair(v, w, i, j):
    """Swap entries i and j of the values ``v`` and, alongside, of their weights ``w``."""
    x = v[i]
    wi = w[i]
    v[i] = v[j]
    w[i] = w[j]
    v[j] = x
    w[j] = wi


@jit
def _select_quantiles(values, weights, n, probs, v, w, out):
    """:func:`weighted_quantiles` of ``values[:n]``, ``weights[:n]`` by weighted selection, to the
    bit; ``v``, ``w`` (n or more) are the scratch that is reordered (the inputs are not changed).

    Per probability (in the order given; where one is below the previous the search starts over),
    a quickselect with a 3-way partition (median-of-3 pivot, insertion sort below
    :data:`SELECT_SMALL` values) narrows the range holding the answer, carrying the weight ``base``
    of the values below the range: the answer is below the pivot if the values below it reach the
    target, the pivot if the values up to it do, else above. Each such sum ``S'`` is the
    sort-based method's cumulative weight at the same point (the same set of values: those below,
    or up to, the pivot) summed in another order: both are within ``(n - 1) u / (1 - (n - 1) u)``
    of the exact sum (u = 2^-53, non-negative terms, any order), so a decision is taken only where
    ``|S' - target| > (2 n + 4) u S'``, where the sort's sum decides the same; else (a sum within
    ~2e-13 relative of the target for n = 1,000, which the ``1 - 1e-12`` slack of the target keeps
    away from a cumulative weight that reaches ``p * total`` exactly) the values go to
    :func:`_sorted_quantiles`. Ties carry the same bits, so the value returned is the sort's; NaN
    values, signed zeros (-0.0 ties 0.0 with other bits), negative or NaN weights or an infinite
    total go to :func:`_sorted_quantiles` as well. Returns whether the selection decided (False:
    :func:`_sorted_quantiles` did)."""
    total = 0.0
    vmax = -np.inf
    odd = False
    for i in range(n):
        x = values[i]
        wi = weights[i]
        v[i] = x
        w[i] = wi
        total += wi
        if x > vmax:
            vmax = x
        if x != x or not (wi >= 0.0) or (x == 0.0 and math.copysign(1.0, x) < 0.0):
            odd = True
    if odd or n == 0 or not (total < np.inf):
        _sorted_quantiles(values, weights, n, probs, out)
        return False
    lo0 = 0  # the previous probability's answer: values [0, lo0) lie below it, weight base0
    base0 = 0.0
    p_prev = -np.inf
    c_tol = (2.0 * n + 4.0) * _UNIT_ROUNDOFF
    for p_i in range(probs.shape[0]):
        p = probs[p_i]
        target = p * total * (1.0 - 1e-12)
        if not (p >= p_prev):
            lo0 = 0
            base0 = 0.0
        p_prev = p
        lo = lo0
        hi = n
        base = base0
        res = vmax
        ok = True
        while lo < hi:
            if hi - lo <= SELECT_SMALL:
                # insertion sort of [lo, hi), then the cumulative weight at the end of each tie group
                for i in range(lo + 1, hi):
                    x = v[i]
                    wi = w[i]
                    k = i - 1
                    while k >= lo and v[k] > x:
                        v[k + 1] = v[k]
                        w[k + 1] = w[k]
                        k -= 1
                    v[k + 1] = x
                    w[k + 1] = wi
                i = lo
                found = False
                while i < hi:
                    g = i
                    s = base
                    x = v[i]
                    while i < hi and v[i] == x:
                        s += w[i]
                        i += 1
                    tol = c_tol * s
                    if s - tol >= target:
                        res = x
                        lo0 = g
                        base0 = base
                        found = True
                        break
                    if not (s + tol < target):
                        ok = False
                        break
                    base = s
                if not found and ok:  # no value reaches the target: the largest
                    lo0 = n
                    base0 = base
                break
            # median of three as the pivot
            a = v[lo]
            bb = v[(lo + hi) // 2]
            c = v[hi - 1]
            if a < bb:
                piv = bb if bb < c else (c if a < c else a)
            else:
                piv = a if a < c else (c if bb < c else bb)
            # partition without branches (Lomuto, every element swapped): [lo, lt) < piv <= [lt, hi),
            # with the weights below and at the pivot (an added 0.0 changes no sum)
            lt = lo
            w_lt = 0.0
            w_eq = 0.0
            for i in range(lo, hi):
                x = v[i]
                wi = w[i]
                _swap_pair(v, w, i, lt)
                below = x < piv
                w_lt += wi if below else 0.0
                w_eq += wi if x == piv else 0.0
                lt += below
            s1 = base + w_lt
            if lt > lo:
                tol = c_tol * s1
                if s1 - tol >= target:
                    hi = lt
                    continue
                if not (s1 + tol < target):
                    ok = False
                    break
            s2 = s1 + w_eq
            tol = c_tol * s2
            if s2 - tol >= target:
                res = piv
                lo0 = lt
                base0 = s1
                break
            if not (s2 + tol < target):
                ok = False
                break
            # the answer is above the pivot: [lt, hi) -> == piv, then > piv from gt
            gt = lt
            for i in range(lt, hi):
                x = v[i]
                _swap_pair(v, w, i, gt)
                gt += x == piv
            lo = gt
            base = s2
        if lo >= hi and ok:  # the range ran out above every value: none reaches the target
            lo0 = n
            base0 = base
        if not ok:
            _sorted_quantiles(values, weights, n, probs, out)
            return False
        out[p_i] = res
    return True


#: Distance rows per pass of :func:`_contract_rows` over a building's accumulators.
ROW_GROUP = 4

#: Buildings whose distance rows :func:`chunk_lpr` runs in step (factored rates): at least this many,
#: up to :data:`BUILDING_WINDOW_MAX` while their accumulators fit :data:`WINDOW_BYTES`
#: (:func:`window_size`). A table row read from memory serves every building of the window that reads
#: it; a larger window finds more buildings that share their second and further typology candidates
#: (the window is sorted by the first one only).
BUILDING_WINDOW = 16

#: (Distance, azimuth) rows that :func:`chunk_lpr` expands for every building of the window at a time
#: and then contracts (:func:`_tile_group`): the expanded rows stay in the cache.
RA_BLOCK = 8

#: The largest building window of :func:`chunk_lpr`.
BUILDING_WINDOW_MAX = 128

#: Bytes of per-building accumulators (``amat``, ``acomp``, ``pair_w``, ``pair_u``) and expanded
#: histogram rows (``hfull``) a window may hold.
WINDOW_BYTES = 64 << 20


@jit
def window_size(n_j, n_t, n_u, n_h=0):
    """Buildings per window of :func:`chunk_lpr` with ``n_j`` typology candidates, ``n_t`` time rows,
    ``n_u`` model combinations and ``n_h`` expanded histogram values per building (factored rates: the
    distance rows times the time and branch columns; 0 otherwise): as many as fit :data:`WINDOW_BYTES`
    (8 bytes per ``amat``/``acomp`` entry, per ``pair_w`` entry and per histogram value, 4 per
    ``pair_u`` entry), clipped to [:data:`BUILDING_WINDOW`, :data:`BUILDING_WINDOW_MAX`]. The window
    changes no value, only speed."""
    per = n_j * n_u * (16 * n_t + 12) + 8 * n_h
    n = WINDOW_BYTES // max(per, 1)
    return max(BUILDING_WINDOW, min(BUILDING_WINDOW_MAX, n))


#: Time rows (years, or time components of the rates) from which :func:`chunk_lpr` contracts only
#: the drawn (candidate, combination) pairs of a building with several epistemic candidates (a
#: gather per table row, paid back over the time rows); below it every pair is contracted (the drawn
#: pairs' values are the same bits either way).
SPARSE_MIN_TIMES = 2

#: Columns per vector block of :func:`_contract_rows`.
VEC = 4


def _block_codegen(width, masked, n_acc, q32=False):
    """LLVM code of the vector blocks of :func:`_vector_block` (``n_acc`` accumulator rows: arguments
    ``acc.., q0..q3, c, first`` then the 4 factors of each accumulator). ``q32``: the table rows
    ``q0..q3`` are float32, each vector widened to float64 as it is loaded (exact)."""

    def codegen(context, builder, signature, argv):
        vt = ir.VectorType(ir.DoubleType(), width)
        rows = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:n_acc + 4], argv[:n_acc + 4])]
        col = argv[n_acc + 4]
        first = argv[n_acc + 5]
        fac = argv[n_acc + 6:]

        def ptr(ary, typ=vt):
            return builder.bitcast(builder.gep(ary.data, [col]), typ.as_pointer())

        if q32:
            vt32 = ir.VectorType(ir.FloatType(), width)
            qv = [builder.fpext(builder.load(ptr(rows[n_acc + i], vt32), align=4), vt) for i in range(4)]
        else:
            qv = [builder.load(ptr(rows[n_acc + i]), align=8) for i in range(4)]
        keep = None
        if masked:
            it = ir.VectorType(ir.IntType(64), width)
            keep = builder.icmp_signed(">=", ir.Constant(it, list(range(width))), _ir_splat(builder, first, it))
        for b in range(n_acc):
            p_acc = ptr(rows[b])
            old = builder.load(p_acc, align=8)
            x = old
            for i in range(4):
                x = builder.fadd(x, builder.fmul(_ir_splat(builder, fac[4 * b + i], vt), qv[i]))
            if masked:
                x = builder.select(keep, x, old)
            builder.store(x, p_acc, align=8)
        return context.get_dummy_value()

    return codegen


def _rows_ok(arrays, dtype=types.float64):
    return all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype == dtype
               for t in arrays)


def _table_dtype(arrays):
    """The element type shared by the table rows or tables ``arrays`` (float64 or float32: q's two
    precisions, ``[run] table_precision``), else ``None``."""
    dt = arrays[0].dtype if isinstance(arrays[0], types.Array) else None
    if dt not in (types.float64, types.float32) or any(getattr(t, "dtype", None) != dt for t in arrays):
        return None
    return dt


def _vector_block(width, masked):
    """An intrinsic ``block(acc, q0, q1, q2, q3, c, first, a0, a1, a2, a3)`` that sets, for the
    ``width`` columns ``c..c+width-1`` of the contiguous float64 rows,
    ``acc = (((acc + a0 q0) + a1 q1) + a2 q2) + a3 q3`` as vector operations (IEEE multiply, then
    add: per column the bits of the scalar expression; no fused multiply-add, no reordering).
    With ``masked`` only the columns ``c + i`` with ``i >= first`` are changed (the others are
    written back as they were). numba leaves LLVM's SLP vectoriser off, and the loop vectoriser
    gives short segments a scalar remainder: this is the vector code written out."""

    @intrinsic
    def block(typingctx, acc, q0, q1, q2, q3, c, first, a0, a1, a2, a3):
        qt = _table_dtype((q0, q1, q2, q3))
        if not _rows_ok((acc,)) or qt is None or not _rows_ok((q0, q1, q2, q3), qt):
            return None
        sig = types.void(acc, q0, q1, q2, q3, types.intp, types.intp, *([types.float64] * 4))
        return sig, _block_codegen(width, masked, 1, qt == types.float32)

    return block


_block = _vector_block(VEC, False)
_block_tail = _vector_block(VEC, True)


#: (Building, candidate) pairs of one table whose sums :func:`_tile_contract` keeps in registers
#: together (each table vector loaded once for all of them).
TILE_PAIRS = 4

#: Doubles per vector and vectors per accumulator row in a tile: :data:`TILE_WIDTH` x
#: :data:`TILE_VECS` columns at a time.
TILE_WIDTH = 4
TILE_VECS = 2
TILE_COLS = TILE_WIDTH * TILE_VECS

#: Table rows per tile call (the sums stay in registers over them); the row count is padded to a
#: multiple (rows of zero rates: they add +-0).
TILE_STEP = 8



def _tile_codegen(n_acc, q32=False):
    """LLVM code of :func:`_vector_tile`: over the source branches' segments of columns, ``n_acc``
    accumulator rows of :data:`TILE_COLS` columns held in vector registers over :data:`TILE_STEP`
    table rows, column block after column block (the rows' table and histogram offsets worked out
    once for all segments, each segment's histogram values loaded once for its blocks). ``q32``: the
    table is float32, each vector widened to float64 as it is loaded (exact: the products and sums
    are those of the float64 copy of the table)."""
    width, nv, steps = TILE_WIDTH, TILE_VECS, TILE_STEP

    def codegen(context, builder, signature, argv):
        vt = ir.VectorType(ir.DoubleType(), width)
        vt32 = ir.VectorType(ir.FloatType(), width)
        i64 = ir.IntType(64)
        acc, arow, q, ridx, h, hidx, hbase, s_start = [context.make_array(t)(context, builder, v)
                                                       for t, v in zip(signature.args[:8], argv[:8])]
        y_row, g = argv[8:]
        n_acc_cols = cgutils.unpack_tuple(builder, acc.shape, 2)[1]
        n_q_cols = cgutils.unpack_tuple(builder, q.shape, 2)[1]
        n_h_cols = cgutils.unpack_tuple(builder, h.shape, 2)[1]
        n_src = builder.sub(cgutils.unpack_tuple(builder, s_start.shape, 1)[0], ir.Constant(i64, 1))

        def const(x):
            return ir.Constant(i64, x)

        a_start = [builder.mul(builder.add(builder.load(builder.gep(arow.data, [const(i)])), y_row), n_acc_cols)
                   for i in range(n_acc)]
        h_base = [builder.load(builder.gep(hbase.data, [const(i)])) for i in range(n_acc)]
        v0 = builder.mul(y_row, n_src)
        q_start, h_start = [], []
        for step in range(steps):
            gi = builder.add(g, const(step))
            q_start.append(builder.mul(builder.load(builder.gep(ridx.data, [gi])), n_q_cols))
            rh = builder.load(builder.gep(hidx.data, [gi]))
            h_start.append([builder.add(builder.mul(builder.add(h_base[i], rh), n_h_cols), v0) for i in range(n_acc)])

        def block(col, hs, keep_range=None):
            ptrs = [[_ir_vptr(builder, acc.data, builder.add(builder.add(a_start[i], col), const(k * width)), vt)
                     for k in range(nv)] for i in range(n_acc)]
            old = [[builder.load(p, align=8) for p in row] for row in ptrs]
            x = [list(row) for row in old]
            for step in range(steps):
                qc = builder.add(q_start[step], col)
                if q32:
                    qv = [builder.fpext(builder.load(_ir_vptr(builder, q.data, builder.add(qc, const(k * width)), vt32),
                                                     align=4), vt) for k in range(nv)]
                else:
                    qv = [builder.load(_ir_vptr(builder, q.data, builder.add(qc, const(k * width)), vt), align=8)
                          for k in range(nv)]
                for i in range(n_acc):
                    for k in range(nv):
                        x[i][k] = builder.fadd(x[i][k], builder.fmul(hs[step][i], qv[k]))
            if keep_range is not None:
                first, last = keep_range
                it = ir.VectorType(i64, width)
                for k in range(nv):
                    lanes = ir.Constant(it, [k * width + lane for lane in range(width)])
                    keep = builder.and_(builder.icmp_signed(">=", lanes, _ir_splat(builder, first, it)),
                                        builder.icmp_signed("<", lanes, _ir_splat(builder, last, it)))
                    for i in range(n_acc):
                        x[i][k] = builder.select(keep, x[i][k], old[i][k])
            for i in range(n_acc):
                for k in range(nv):
                    builder.store(x[i][k], ptrs[i][k], align=8)

        with cgutils.for_range(builder, n_src) as loop:
            s = loop.index
            u0 = builder.load(builder.gep(s_start.data, [s]))
            hi = builder.load(builder.gep(s_start.data, [builder.add(s, const(1))]))
            hs = [[_ir_splat(builder, builder.load(builder.gep(h.data, [builder.add(h_start[step][i], s)])), vt)
                   for i in range(n_acc)] for step in range(steps)]
            lo = builder.add(u0, builder.mul(builder.sdiv(builder.sub(hi, u0), const(TILE_COLS)), const(TILE_COLS)))
            with cgutils.for_range_slice(builder, u0, lo, const(TILE_COLS)) as (col, _):
                block(col, hs)
            with builder.if_then(builder.icmp_signed("<", lo, hi)):
                c_tail = builder.select(builder.icmp_signed(">=", hi, const(TILE_COLS)), builder.sub(hi, const(TILE_COLS)),
                                        const(0))
                block(c_tail, hs, (builder.sub(lo, c_tail), builder.sub(hi, c_tail)))
        return context.get_dummy_value()

    return codegen


def _vector_tile(n_acc):
    """An intrinsic ``tile(acc, arow, q, ridx, h, hidx, hbase, s_start, y, g)`` that adds, for the
    :data:`TILE_STEP` table rows ``r = ridx[g + step]`` (histogram rows ``hidx[g + step]``), in that
    order, and each of the ``n_acc`` accumulator rows ``acc[arow[i] + y]`` the terms
    ``h[hbase[i] + hidx[g + step], y*S + s] * q[r, col]`` to every column ``col`` of each source
    branch s (``s_start[s] <= col < s_start[s + 1]``): per column ``a = (a + h0 q0) + h1 q1 ...``,
    IEEE multiply then add, so per column the bits of the scalar loop over the rows in order. A
    segment's columns go :data:`TILE_COLS` at a time, their sums in vector registers over the rows,
    each table vector loaded once for all ``n_acc`` rows (a register tile; :func:`_contract_rows`
    loads and stores its accumulators every four rows, for one row); its last ``n % TILE_COLS``
    columns as one more block that ends at the segment's end (or starts at column 0), its other
    columns written back as they were. The table needs at least :data:`TILE_COLS` columns.
    ``acc``, ``q``, ``h`` are C-contiguous 2-D float64 arrays, ``arow``, ``ridx``, ``hidx``,
    ``hbase``, ``s_start`` 1-D int64."""

    @intrinsic
    def tile(typingctx, acc, arow, q, ridx, h, hidx, hbase, s_start, y, g):
        qt = _table_dtype((q,))
        if qt is None or not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == d
                                 for t, d in ((acc, types.float64), (q, qt), (h, types.float64))):
            return None
        if not all(isinstance(t, types.Array) and t.ndim == 1 and t.dtype == types.int64 and t.layout == "C"
                   for t in (arow, ridx, hidx, hbase, s_start)):
            return None
        sig = types.void(acc, arow, q, ridx, h, hidx, hbase, s_start, types.intp, types.intp)
        return sig, _tile_codegen(n_acc, qt == types.float32)

    return tile


_tile1, _tile2, _tile3, _tile4 = (_vector_tile(n) for n in range(1, 5))


@jit
def _tile_contract(n_acc, acc, arow, q, ridx, hidx, g0, g1, h, hbase, s_start, n_t, n_src):
    """``acc[arow[i] + y, u] += sum_g h[hbase[i] + hidx[g], y*S + s_u] q[ridx[g], u]`` for the ``n_acc``
    (1 to :data:`TILE_PAIRS`) accumulators of one table ``q`` (r, u), the rows ``g0 <= g < g1``
    (``ridx`` ascending; ``g1 - g0`` a multiple of :data:`TILE_STEP`) and the time rows y, each sum's
    terms added one by one in row order: the bits of the plain loop r -> y -> s -> u
    (:func:`_contract_rows`' sums).

    h     : (rows, y*S + s) histogram rows of the accumulators' buildings: building i's row for
            ``ridx[g]`` at ``hbase[i] + hidx[g]`` (padding rows point at a row of zeros)
    arow  : (n_acc,) accumulator i's row for time row 0 (time row y: ``arow[i] + y``)
    :data:`TILE_STEP` rows at a time by the register tiles of :func:`_vector_tile`."""
    n_u = q.shape[1]
    if n_u < TILE_COLS:  # narrower than one tile: the plain loop
        for g in range(g0, g1):
            r = ridx[g]
            for y in range(n_t):
                for s in range(n_src):
                    for i in range(n_acc):
                        hv = h[hbase[i] + hidx[g], y * n_src + s]
                        a = acc[arow[i] + y]
                        for u in range(s_start[s], s_start[s + 1]):
                            a[u] = a[u] + hv * q[r, u]
        return
    for g in range(g0, g1, TILE_STEP):
        for y in range(n_t):
            if n_acc == 4:
                _tile4(acc, arow, q, ridx, h, hidx, hbase, s_start, y, g)
            elif n_acc == 3:
                _tile3(acc, arow, q, ridx, h, hidx, hbase, s_start, y, g)
            elif n_acc == 2:
                _tile2(acc, arow, q, ridx, h, hidx, hbase, s_start, y, g)
            else:
                _tile1(acc, arow, q, ridx, h, hidx, hbase, s_start, y, g)


@jit
def _contract_rows(h0, h1, h2, h3, q0, q1, q2, q3, seg_start, n_years, n_src, acc):
    """Add four histogram rows times their table rows to the accumulators, segment by segment.

    h0..h3    : (y*S + s,) histogram rows (rates of four distance rows) [yr^-1]
    q0..q3    : (u,) the four rows' table values per accumulator column (a table row, or its
                drawn columns gathered)
    seg_start : (S + 1,) columns ``seg_start[s]:seg_start[s + 1]`` belong to source branch s
    acc       : (y, u) ``acc[y, t] += h0[y*S + s] q0[t] + ... + h3[y*S + s] q3[t]``, the four
                terms added one by one in row order: the sums of a row-by-row loop, to the bit

    One load and store of an accumulator per four products. A (y, s) whose four rates are all zero
    is skipped; a zero rate beside non-zero ones adds +-0, which changes no sum (finite tables).
    A segment runs in vector blocks of :data:`VEC` columns, its last ``n % VEC`` columns as one
    more block that ends at the segment's end (or starts at column 0) and changes only those:
    segments of any length (many have 1-10 columns) take no scalar remainder loop.
    """
    for s in range(n_src):
        u0 = seg_start[s]
        n = seg_start[s + 1] - u0
        if n <= 0:
            continue
        lo = u0 + (n // VEC) * VEC  # columns lo..hi-1: the tail
        hi = u0 + n
        w0 = hi - VEC if hi >= VEC else 0  # the tail's block: columns w0..w0+VEC-1
        for y in range(n_years):
            v = y * n_src + s
            a0 = h0[v]
            a1 = h1[v]
            a2 = h2[v]
            a3 = h3[v]
            if a0 == 0.0 and a1 == 0.0 and a2 == 0.0 and a3 == 0.0:
                continue
            arow = acc[y]
            for c in range(u0, lo, VEC):
                _block(arow, q0, q1, q2, q3, c, 0, a0, a1, a2, a3)
            if lo == hi:
                continue
            if hi >= VEC:
                _block_tail(arow, q0, q1, q2, q3, w0, lo - w0, a0, a1, a2, a3)
            else:  # fewer than VEC columns up to the segment's end: one by one
                for c in range(lo, hi):
                    arow[c] = (((arow[c] + a0 * q0[c]) + a1 * q1[c]) + a2 * q2[c]) + a3 * q3[c]


@jit
def _contract_group(hrows, ridx, g, zt_row, nj, q_table, qbar, s_weights, s_start, n_years, n_src, sparse, pair_u,
                    pair_start, qg, acomp, amat, msum):
    """Rows ``g..g+3`` of ``hrows`` (distance rows ``ridx[g..g+3]``, ascending) into each candidate's
    tree-mean sums ``msum`` (j, y, 1) (with time components, per (j, t, s) unweighted: ``msum.shape[2] > 1``)
    and per-combination sums: ``amat`` (j, y, u), or with ``sparse``
    ``acomp`` (j, y, n_p) over the drawn combinations ``pair_u[j, :n_p]`` (branch segments
    ``pair_start[j]``). Every sum takes its terms in row order (see :func:`chunk_lpr`)."""
    h0 = hrows[g]
    h1 = hrows[g + 1]
    h2 = hrows[g + 2]
    h3 = hrows[g + 3]
    for j in range(nj):
        zt = zt_row[j]
        _msum_rows(hrows, ridx, g, zt, qbar, s_weights, n_years, n_src, msum[j])
        if sparse:
            n_p = pair_start[j, n_src]
            if n_p == 0:
                continue
            uj = pair_u[j, :n_p]
            for i in range(ROW_GROUP):  # the rows' drawn entries gathered once, for every year
                qrow = q_table[zt, ridx[g + i]]
                dst = qg[i]
                for t in range(n_p):
                    dst[t] = qrow[uj[t]]
            _contract_rows(h0, h1, h2, h3, qg[0], qg[1], qg[2], qg[3], pair_start[j], n_years, n_src, acomp[j])
        else:
            _contract_rows(h0, h1, h2, h3, q_table[zt, ridx[g]], q_table[zt, ridx[g + 1]], q_table[zt, ridx[g + 2]],
                           q_table[zt, ridx[g + 3]], s_start, n_years, n_src, amat[j])


@jit
def _flush_groups(hrows, ridx, n_pend, final, zt_row, nj, q_table, qbar, s_weights, s_start, n_years, n_src, sparse,
                  pair_u, pair_start, qg, acomp, amat, msum):
    """Contract the full groups of the ``n_pend`` waiting rows (with ``final``, the rest too, padded
    with rows of zeros: they add nothing), move the rest to the front; returns how many wait."""
    g = 0
    while n_pend - g >= ROW_GROUP:
        _contract_group(hrows, ridx, g, zt_row, nj, q_table, qbar, s_weights, s_start, n_years, n_src, sparse, pair_u,
                        pair_start, qg, acomp, amat, msum)
        g += ROW_GROUP
    rest = n_pend - g
    if g > 0:
        for i in range(rest):
            hrows[i] = hrows[g + i]
            ridx[i] = ridx[g + i]
    if final and rest > 0:
        for i in range(rest, ROW_GROUP):
            hrows[i] = 0.0
            ridx[i] = ridx[0]
        _contract_group(hrows, ridx, 0, zt_row, nj, q_table, qbar, s_weights, s_start, n_years, n_src, sparse, pair_u,
                        pair_start, qg, acomp, amat, msum)
        rest = 0
    return rest


@jit
def _msum_rows(hrows, ridx, g, zt, qbar, s_weights, n_years, n_src, msum_j):
    """The tree-mean sums of one candidate (:func:`_contract_group`'s ``msum[j]``) for the rows
    ``g..g+3`` of ``hrows`` (distance rows ``ridx``): the same products and sums in the same order."""
    for i in range(ROW_GROUP):
        _msum_row(hrows[g + i], ridx[g + i], zt, qbar, s_weights, n_years, n_src, msum_j)


@jit(inline="always")
def _msum_row(hr, r, zt, qbar, s_weights, n_years, n_src, msum_j):
    """One histogram row ``hr`` (distance row r) into a candidate's tree-mean sums ``msum_j``
    (y, 1), or with time components (y, S) per (time row, branch) unweighted."""
    n_qs = qbar.shape[2]
    per_branch = msum_j.shape[1] > 1
    for y in range(n_years):
        if per_branch:
            for s in range(n_src):
                msum_j[y, s] += hr[y * n_src + s] * qbar[zt, r, 0 if n_qs == 1 else s]
            continue
        sj = msum_j[y, 0]
        if n_qs == 1:
            h = 0.0
            for s in range(n_src):
                h += s_weights[s] * hr[y * n_src + s]
            sj += h * qbar[zt, r, 0]
        else:
            for s in range(n_src):
                sj += s_weights[s] * hr[y * n_src + s] * qbar[zt, r, s]
        msum_j[y, 0] = sj


@jit
def _tile_group(keys, k0, k1, n_win, n_j, n_t, n_src, row0, n_rows, hblk, hlive, q_table, qbar, s_weights, s_start,
                amat, msum, ridx, hidx, p_arow, p_hbase):
    """The (building, candidate) pairs ``keys[k0:k1]`` (``(zt * n_win + w) * n_j + j``, all of one table
    zt) of a window of :func:`chunk_lpr`, over one block of distance rows ``row0 .. row0 + n_rows - 1``:
    their tree-mean sums (each over its own rows, ascending) and their per-combination sums ``amat``
    over the union of their non-zero rows in the block (a row of zeros for one of them adds +-0 to
    its sums: no change), in tiles of up to :data:`TILE_PAIRS` pairs (:func:`_tile_contract`), all
    tiles :data:`TILE_STEP` rows at a time: a table row is read from memory once for every pair of
    the group.

    hblk  : (n_win, n_block + 1, n_v) each window building's expanded histogram rows of the block
            (zero where ``hlive`` (n_win, n_block) is False) and a row of zeros last (the padding's)
    p_arow, p_hbase : per pair (key order) its accumulator row in ``amat`` flattened to
            (w, j, y) rows, and its building's first row in ``hblk`` flattened to (w, row) rows
    ridx, hidx : scratch of n_block + TILE_STEP entries"""
    n_pairs = k1 - k0
    n_hrows = hblk.shape[1]
    zt = keys[k0] // (n_win * n_j)
    m = 0
    for lr in range(n_rows):
        for i in range(k0, k1):
            if hlive[(keys[i] // n_j) % n_win, lr]:
                ridx[m] = row0 + lr
                hidx[m] = lr
                m += 1
                break
    if m == 0:
        return
    for g in range(m):  # the pairs' tree-mean sums side by side (independent chains), each in row order
        lr = hidx[g]
        for i in range(k0, k1):
            key = keys[i]
            w = (key // n_j) % n_win
            if hlive[w, lr]:
                _msum_row(hblk[w, lr], ridx[g], zt, qbar, s_weights, n_t, n_src, msum[w, key % n_j])
    while m % TILE_STEP != 0:  # padding: the last table row again, with the row of zeros
        ridx[m] = ridx[m - 1]
        hidx[m] = n_hrows - 1
        m += 1
    acc = amat.reshape((amat.shape[0] * n_j * n_t, amat.shape[3]))
    h = hblk.reshape((hblk.shape[0] * n_hrows, hblk.shape[2]))
    q = q_table[zt]
    n_tiles = (n_pairs + TILE_PAIRS - 1) // TILE_PAIRS  # as even as can be: 5 pairs -> 3 + 2
    for g0 in range(0, m, TILE_STEP):  # the step's table rows read from memory once, for every tile
        for tt in range(n_tiles):
            t0 = k0 + (tt * n_pairs) // n_tiles
            t1 = k0 + ((tt + 1) * n_pairs) // n_tiles
            _tile_contract(t1 - t0, acc, p_arow[t0:t1], q, ridx, hidx, g0, g0 + TILE_STEP, h, p_hbase[t0:t1], s_start,
                           n_t, n_src)


@jit
def _nonzero(row):
    """Whether any entry of the 1-D ``row`` is non-zero."""
    for v in range(row.shape[0]):
        if row[v] != 0.0:
            return True
    return False


@jit
def chunk_lpr(bx, by, zt_idx, typ_idx, typ_prob, bkeys,
              cx, cy, rates, rates_basis, year_factor, n_years, n_src, depth_km, ln_r0, dln, n_r, n_k, r_max_km,
              cell_size_m, sub_radius_m, n_sub, n_a, strike_deg, az_harmonic,
              q_table, combo_s, s_start, combo_w, qbar, s_weights,
              mixture, monte_carlo, real_combo, seed_key, probs,
              out_mean, out_q, out_real, out_real_w, dist_cubic=False, window=0):
    """LPR statistics for a chunk of buildings.

    bx, by       : (b,) positions [m]
    zt_idx       : (b, j) table row of each typology candidate at the building's site
    typ_idx      : (b, j) typology index per candidate (-1 = none); typ_prob (b, j) probabilities
    bkeys        : (b,) uint64 building keys (hash of the id) for the typology draws
    rates        : (c, k*Y*S + y*S + s); n_k > 1: a forecast's magnitude-basis coefficients, and the
                   tables' distance axis is (r, k) flattened (r * n_k + k)
    rates_basis  : (J, k*Y*S + y*S + s) or (0, 0): with J > 0 ``rates`` is (c, J), a factor of the
                   rates (rates = ``rates @ rates_basis``, :func:`hra.inputs.forecast.compress_rates`):
                   the histogram is taken over the J columns (n_k = 1) and expanded row by row
                   (J / (k*Y*S) of the work of the histogram; the same sums to ~1e-13)
    year_factor  : (Y, T, S) or (0, 0, 0): with T > 0 the rates' years are T time components per
                   branch (:func:`hra.inputs.forecast.factor_years`): ``rates`` and ``rates_basis`` have
                   T in place of Y, the histogram and the contraction run over the T components and
                   each year's values are ``A[j, y, u] = sum_t year_factor[y, t, s_u] A_t[j, t, u]``
                   (the tree mean likewise, per (t, s)): T / Y of the contraction's work
    n_a, strike_deg, az_harmonic : rows of the tables' azimuth axis (a strike model; 1: none), the
                   mean strike [degree] and whether the rows are harmonics (else nodes): the distance
                   axis is then (r, a, k) flattened, (r * n_a + a) * n_k + k
                   (:func:`distance_azimuth_histogram_k`)
    q_table      : (zt, r, u) expected death probability per event, model combination u (float64, or
                   float32: each value widened to float64 as it is read, so the sums are those of the
                   float64 copy of the table)
    combo_s      : (u,) source branch of combination u; combos sorted by s, ``s_start`` (S+1,)
                   gives the u-range of each source branch
    combo_w      : (u,) realisation weight of each combination (sums to 1)
    qbar, s_weights : (zt, r, n) tree-mean table (n = 1: shared by the source branches; n = S: per
                   branch, a forecast) and (S,) source weights -> exact mean LPR
    mixture      : typology uncertainty as a mixture (True) or an epistemic choice (False)
    monte_carlo  : realisations are draws (True): real_combo (N,) maps realisation -> u
    probs        : (p,) quantile probabilities
    dist_cubic   : the source histogram's distance rule: 4-point Lagrange in ln R (True) or linear
                   (:func:`_distance_rule`)
    window       : buildings run in step with factored rates (0: :func:`window_size`); no effect on
                   any value
    out_mean (b, y), out_q (b, y, p); out_real (b, y, R) and out_real_w (b, R) if R > 0

    The contraction ``A[j, y, u] = sum_r H[r, y, s_u] Q[zt_j, r, u]`` (and the tree mean) runs over
    each building's non-zero histogram rows in groups of :data:`ROW_GROUP` (:func:`_contract_rows`).
    With factored rates the buildings are taken a window at a time (:func:`window_size`, in the
    order of their first candidate's table row) and each one's rows are expanded once; the window's
    (building, candidate) pairs are sorted by table, and up to :data:`TILE_PAIRS` pairs of one table
    are contracted together over the union of their rows (:func:`_tile_group`, :func:`_tile_contract`:
    their sums held in vector registers over :data:`TILE_STEP` rows, each table vector loaded once for
    all of them; a row of zeros adds nothing). Every sum keeps its terms in ascending distance row,
    so none of this changes a bit: a building's values do not depend on the other buildings of the
    chunk, and the drawn pairs (Monte Carlo, several candidates; contracted building by building)
    get the bits of the dense loop.
    """
    n_b = bx.shape[0]
    n_j = typ_idx.shape[1]
    n_u = q_table.shape[2]
    # the time axis of the rates, histogram and contraction: the years, or T time components
    yfac = year_factor.shape[1] > 0
    n_t = year_factor.shape[1] if yfac else n_years
    n_ms = n_src if yfac else 1  # tree-mean sums per (time, branch) with components, else per year
    n_v = n_t * n_src
    n_keep = out_real.shape[2]
    n_mc = real_combo.shape[0]
    n_ra = n_r * n_a
    n_rk = n_ra * n_k
    n_cmp = rates_basis.shape[0]
    factored = n_cmp > 0
    # factored rates: the J columns padded with zero columns to a multiple of HIST_VEC, the
    # histogram's vectors (_cells_rows): a zero column adds +-0 to zeros (its entries stay 0) and is
    # never expanded (c < n_cmp below), so no value changes
    n_cpad = n_cmp
    if factored and n_cmp % HIST_VEC != 0:
        n_cpad = n_cmp + HIST_VEC - n_cmp % HIST_VEC
        rates_pad = np.zeros((rates.shape[0], n_cpad))
        rates_pad[:, :n_cmp] = rates
        rates = rates_pad
    # buildings are taken a window at a time (factored rates, window_size; one at a time otherwise:
    # the full histogram is large): each window building's histogram rows are expanded once, then the
    # window's (building, candidate) pairs that read the same table are contracted together, up to
    # TILE_PAIRS at a time (_tile_group; they are taken in the order of their first candidate's table
    # row, so the further candidates meet in larger windows). Each building's sums are its own, in its
    # own order: neither the window nor the order changes a bit.
    n_win = 1
    if factored:
        n_win = window if window > 0 else window_size(n_j, n_t, n_u, (min(RA_BLOCK, n_ra) * n_k + 1) * n_v + n_ra * n_cpad)
        n_win = max(1, min(n_win, n_b))
    # factored rates: the histogram of the factor's J columns per (distance, azimuth) row, expanded
    # into hfull (with a row of zeros last, the tiles' padding); else the full histogram
    hist = np.zeros((0 if factored else n_rk, n_v))
    hist_c = np.zeros((n_win, n_ra, n_cpad))
    n_blk = min(RA_BLOCK, n_ra) * n_k
    hblk = np.zeros((n_win if factored else 0, n_blk + 1, n_v))
    hbflat = hblk.reshape((hblk.shape[0], (n_blk + 1) * n_v))
    hlive = np.zeros((n_win if factored else 0, n_blk), dtype=np.bool_)
    # per building (the drawn pairs of factored rates: per building of the window): the non-zero
    # histogram rows waiting for a group of ROW_GROUP (in ascending distance row ridx)
    hrows = np.zeros((n_win, ROW_GROUP, n_v))
    ridx = np.zeros((n_win, ROW_GROUP), dtype=np.int64)
    n_pend = np.zeros(n_win, dtype=np.int64)
    win_nj = np.zeros(n_win, dtype=np.int64)
    win_sparse = np.zeros(n_win, dtype=np.bool_)
    amat = np.empty((n_win, n_j, n_t, n_u))
    msum = np.empty((n_win, n_j, n_t, n_ms))
    pair_w = np.empty((n_win, n_j, n_u))
    draw = np.empty((n_win, n_mc), dtype=np.int64)
    # the (candidate, combination) pairs some realisation draws: with several candidates per
    # building only those are contracted (at most n_mc of n_j * n_u; ~half with 2 candidates)
    pair_u = np.empty((n_win, n_j, n_u), dtype=np.uint32)  # unsigned: no wraparound test, the gathers vectorise
    pair_start = np.empty((n_win, n_j, n_src + 1), dtype=np.int64)
    acomp = np.empty((n_win, n_j, n_t, n_u))
    # per-year values from the time components (year_factor), for _building_values
    amat_y = np.empty((n_j, n_years, n_u) if yfac else (0, 0, 0))
    acomp_y = np.empty((n_j, n_years, n_u) if yfac else (0, 0, 0))
    msum_y = np.empty((n_j, n_years, 1) if yfac else (0, 0, 0))
    qg = np.empty((ROW_GROUP, n_u))
    # factored rates: the window's pairs by table and the tiles' scratch
    n_cap = n_win * n_j if factored else 0
    u_key = np.empty(n_cap, dtype=np.int64)
    rates_basis = np.ascontiguousarray(rates_basis)  # rows for the expansion's vectors (no copy: the engine's is)
    e_w = np.empty(n_cmp)
    e_c = np.empty(n_cmp, dtype=np.int64)
    g_start = np.empty(n_cap + 1, dtype=np.int64)
    p_arow = np.empty(n_cap, dtype=np.int64)
    p_hbase = np.empty(n_cap, dtype=np.int64)
    t_ridx = np.empty(n_blk + TILE_STEP, dtype=np.int64)
    t_hidx = np.empty(n_blk + TILE_STEP, dtype=np.int64)
    q_table = np.ascontiguousarray(q_table)  # rows for the vector blocks (no copy: the engine's is)
    vals = np.empty(n_u * n_j)
    wts = np.empty(n_u * n_j)
    qout = np.empty(probs.shape[0])
    order_buf = np.empty(n_u * n_j, dtype=np.int64)
    order = np.argsort(zt_idx[:, 0], kind="mergesort")  # buildings by their first table row
    for b0 in range(0, n_b, n_win):
        b1 = min(n_b, b0 + n_win)
        for w in range(b1 - b0):
            b = order[b0 + w]
            if factored:
                distance_azimuth_histogram_k(bx[b], by[b], cx, cy, rates, depth_km, ln_r0, dln, n_r, n_a, 1,
                                             strike_deg, az_harmonic, r_max_km, cell_size_m, sub_radius_m, n_sub,
                                             hist_c[w], dist_cubic)
            else:
                distance_azimuth_histogram_k(bx[b], by[b], cx, cy, rates, depth_km, ln_r0, dln, n_r, n_a, n_k,
                                             strike_deg, az_harmonic, r_max_km, cell_size_m, sub_radius_m, n_sub,
                                             hist, dist_cubic)
            # number of candidates
            nj = 0
            for j in range(n_j):
                if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0.0:
                    nj += 1
            win_nj[w] = nj
            # several candidates as an epistemic choice, Monte Carlo: each realisation draws one
            drawn = (not mixture) and nj > 1 and monte_carlo
            # the draws first, and with several time rows only the drawn pairs are contracted (their
            # gather pays where each gathered entry serves n_t rows; with few, all pairs are cheaper)
            sparse = drawn and n_t >= SPARSE_MIN_TIMES
            win_sparse[w] = sparse
            if drawn:
                pair_w[w, :nj] = 0.0
                for i in range(n_mc):
                    jj = draw_candidate(seed_key, bkeys[b], i, typ_prob[b], nj)
                    draw[w, i] = jj
                    pair_w[w, jj, real_combo[i]] += 1.0 / n_mc
            if sparse:
                for j in range(nj):
                    n_p = 0
                    for s in range(n_src):
                        pair_start[w, j, s] = n_p
                        for u in range(s_start[s], s_start[s + 1]):
                            if pair_w[w, j, u] > 0.0:
                                pair_u[w, j, n_p] = u
                                n_p += 1
                    pair_start[w, j, n_src] = n_p
                    acomp[w, j, :, :n_p] = 0.0
            else:
                amat[w, :nj] = 0.0
            msum[w, :nj] = 0.0
            n_pend[w] = 0
        # exact tree mean and per-combination values: the non-zero histogram rows, nearest to
        # farthest distance row, each sum taking its terms in ascending row as the plain loop
        # r -> y -> s -> u (zero rows add nothing), so no grouping changes a bit, and the drawn pairs
        # (sparse) get the bits of the dense loop
        if factored:
            # the dense pairs sorted by table (groups of one table from g_start), each with its
            # accumulator row and histogram rows
            n_keys = 0
            for w in range(b1 - b0):
                if not win_sparse[w]:
                    b = order[b0 + w]
                    for j in range(win_nj[w]):
                        u_key[n_keys] = (zt_idx[b, j] * n_win + w) * n_j + j
                        n_keys += 1
            keys = np.sort(u_key[:n_keys])
            n_groups = 0
            for i in range(n_keys):
                w = (keys[i] // n_j) % n_win
                p_arow[i] = (w * n_j + keys[i] % n_j) * n_t
                p_hbase[i] = w * (n_blk + 1)
                if i == 0 or keys[i] // (n_win * n_j) != keys[i - 1] // (n_win * n_j):
                    g_start[n_groups] = i
                    n_groups += 1
            g_start[n_groups] = n_keys
            # block by block of RA_BLOCK (distance, azimuth) rows: each window building's rows expanded
            # (n_k each), then contracted: the drawn pairs building by building in groups of ROW_GROUP
            # rows (_flush_groups), the others by table, up to TILE_PAIRS pairs at a time (_tile_group)
            for ra0 in range(0, n_ra, RA_BLOCK):
                ra1 = min(n_ra, ra0 + RA_BLOCK)
                n_rows = (ra1 - ra0) * n_k
                for w in range(b1 - b0):
                    for ra in range(ra0, ra1):
                        lr0 = (ra - ra0) * n_k
                        n_c = 0
                        for c in range(n_cmp):
                            wc = hist_c[w, ra, c]
                            if wc != 0.0:
                                e_w[n_c] = wc
                                e_c[n_c] = c
                                n_c += 1
                                hist_c[w, ra, c] = 0.0  # the next building starts from zeros
                        if n_c > 0:
                            _expand_rows(hbflat, w, lr0 * n_v, rates_basis, e_w, e_c, n_c)
                        else:  # zeros: the rows of the other pairs' union read them
                            hbflat[w, lr0 * n_v:(lr0 + n_k) * n_v] = 0.0
                        for k in range(n_k):
                            hlive[w, lr0 + k] = n_c > 0 and _nonzero(hbflat[w, (lr0 + k) * n_v:(lr0 + k + 1) * n_v])
                    if win_sparse[w]:
                        b = order[b0 + w]
                        for lr in range(n_rows):
                            if hlive[w, lr]:
                                hrows[w, n_pend[w]] = hblk[w, lr]
                                ridx[w, n_pend[w]] = ra0 * n_k + lr
                                n_pend[w] += 1
                                n_pend[w] = _flush_groups(hrows[w], ridx[w], n_pend[w], False, zt_idx[b], win_nj[w],
                                                          q_table, qbar, s_weights, s_start, n_t, n_src, True,
                                                          pair_u[w], pair_start[w], qg, acomp[w], amat[w], msum[w])
                for gi in range(n_groups):
                    _tile_group(keys, g_start[gi], g_start[gi + 1], n_win, n_j, n_t, n_src, ra0 * n_k, n_rows, hblk,
                                hlive, q_table, qbar, s_weights, s_start, amat, msum, t_ridx, t_hidx, p_arow, p_hbase)
        else:  # one building
            w = 0
            b = order[b0]
            for r in range(n_rk):
                if _nonzero(hist[r]):
                    hrows[w, n_pend[w]] = hist[r]
                    hist[r] = 0.0  # the next building starts from zeros
                    ridx[w, n_pend[w]] = r
                    n_pend[w] += 1
                    n_pend[w] = _flush_groups(hrows[w], ridx[w], n_pend[w], False, zt_idx[b], win_nj[w], q_table,
                                              qbar, s_weights, s_start, n_t, n_src, win_sparse[w], pair_u[w],
                                              pair_start[w], qg, acomp[w], amat[w], msum[w])
        for w in range(b1 - b0):
            b = order[b0 + w]
            nj = win_nj[w]
            sparse = win_sparse[w]
            if not factored or sparse:
                _flush_groups(hrows[w], ridx[w], n_pend[w], True, zt_idx[b], nj, q_table, qbar, s_weights, s_start,
                              n_t, n_src, sparse, pair_u[w], pair_start[w], qg, acomp[w], amat[w], msum[w])
            if yfac:
                _years_from_components(year_factor, nj, sparse, amat[w], msum[w], acomp[w], pair_u[w], pair_start[w],
                                       combo_s, s_weights, amat_y, msum_y, acomp_y)
                _building_values(b, nj, sparse, amat_y, msum_y, acomp_y, pair_u[w], pair_start[w], pair_w[w], draw[w],
                                 typ_prob, combo_w, mixture, monte_carlo, real_combo, probs, n_years, n_src, vals, wts,
                                 order_buf, qout, out_mean, out_q, out_real, out_real_w)
            else:
                _building_values(b, nj, sparse, amat[w], msum[w], acomp[w], pair_u[w], pair_start[w], pair_w[w],
                                 draw[w], typ_prob, combo_w, mixture, monte_carlo, real_combo, probs, n_years, n_src,
                                 vals, wts, order_buf, qout, out_mean, out_q, out_real, out_real_w)


@jit
def _years_from_components(year_factor, nj, sparse, amat, msum, acomp, pair_u, pair_start, combo_s, s_weights, amat_y,
                           msum_y, acomp_y):
    """Per-year sums from the time components' (:func:`chunk_lpr` with ``year_factor`` (Y, T, S)):
    ``amat_y[j, y, u] = sum_t year_factor[y, t, s_u] amat[j, t, u]`` (with ``sparse`` the drawn pairs
    of ``acomp``, branch segments ``pair_start[j]``) and the tree mean
    ``msum_y[j, y, 0] = sum_s s_weights[s] sum_t year_factor[y, t, s] msum[j, t, s]``."""
    n_y, n_t, n_src = year_factor.shape
    n_u = amat.shape[2]
    for j in range(nj):
        for y in range(n_y):
            acc = 0.0
            for s in range(n_src):
                h = 0.0
                for t in range(n_t):
                    h += year_factor[y, t, s] * msum[j, t, s]
                acc += s_weights[s] * h
            msum_y[j, y, 0] = acc
            if sparse:
                dst = acomp_y[j, y]
                for s in range(n_src):
                    for i in range(pair_start[j, s], pair_start[j, s + 1]):
                        v = 0.0
                        for t in range(n_t):
                            v += year_factor[y, t, s] * acomp[j, t, i]
                        dst[i] = v
            else:
                dst = amat_y[j, y]
                for u in range(n_u):
                    s = combo_s[u]
                    v = 0.0
                    for t in range(n_t):
                        v += year_factor[y, t, s] * amat[j, t, u]
                    dst[u] = v


@jit
def _building_values(b, nj, sparse, amat, msum, acomp, pair_u, pair_start, pair_w, draw, typ_prob, combo_w, mixture,
                     monte_carlo, real_combo, probs, n_years, n_src, vals, wts, order_buf, qout, out_mean, out_q,
                     out_real, out_real_w):
    """Building b's outputs from its contracted sums (:func:`chunk_lpr`): the tree mean from the
    candidates' sums ``msum`` (j, y, 1), and per year the quantiles (and kept realisations) of the
    per-combination values ``amat`` (j, y, u) (with ``sparse``: the drawn pairs, from ``acomp``).
    The weights are filled once (they do not depend on the year), and with Monte Carlo draws of
    several candidates the drawn pairs' combinations once into ``order_buf``; the quantiles come
    from :func:`_select_quantiles` (``vals``, ``wts`` keep the fill order)."""
    n_j = amat.shape[0]
    n_u = amat.shape[2]
    n_keep = out_real.shape[2]
    n_mc = real_combo.shape[0]
    epistemic = (not mixture) and nj > 1
    for y in range(n_years):
        acc = 0.0
        for j in range(nj):
            acc += typ_prob[b, j] * msum[j, y, 0]
        out_mean[b, y] = acc
    # sparse (Monte Carlo draws of several candidates): the drawn pairs' values straight from
    # acomp, in pair_u's ascending u per candidate (the order of the scan of pair_w > 0); amat
    # only where kept realisations read it
    if sparse and n_keep > 0:
        for j in range(nj):
            for y in range(n_years):
                for t in range(pair_start[j, n_src]):
                    amat[j, y, pair_u[j, t]] = acomp[j, y, t]
    # the weights do not depend on the year: once per building
    n = 0
    jb = np.empty(nj + 1, dtype=np.int64)
    if not epistemic:
        for u in range(n_u):
            wts[n] = combo_w[u]
            n += 1
    elif sparse:
        for j in range(nj):
            for t in range(pair_start[j, n_src]):
                wts[n] = pair_w[j, pair_u[j, t]]
                n += 1
    elif monte_carlo:  # the drawn pairs, once: their combinations in order_buf, candidate j's from jb[j]
        for j in range(nj):
            jb[j] = n
            for u in range(n_u):
                if pair_w[j, u] > 0.0:
                    wts[n] = pair_w[j, u]
                    order_buf[n] = u
                    n += 1
        jb[nj] = n
    else:
        for j in range(nj):
            for u in range(n_u):
                wts[n] = combo_w[u] * typ_prob[b, j]
                n += 1
    # selection scratch (reordered by _select_quantiles; vals and wts stay in fill order)
    sel_v = np.empty(n)
    sel_w = np.empty(n)
    for y in range(n_years):
        n = 0
        if not epistemic:
            for u in range(n_u):
                v = 0.0
                for j in range(nj):
                    v += typ_prob[b, j] * amat[j, y, u]
                vals[n] = v
                n += 1
        elif sparse:
            for j in range(nj):
                src = acomp[j, y]
                for t in range(pair_start[j, n_src]):
                    vals[n] = src[t]
                    n += 1
        elif monte_carlo:
            for j in range(nj):
                row = amat[j, y]
                for i in range(jb[j], jb[j + 1]):
                    vals[i] = row[order_buf[i]]
            n = jb[nj]
        else:
            for j in range(nj):
                for u in range(n_u):
                    vals[n] = amat[j, y, u]
                    n += 1
        _select_quantiles(vals, wts, n, probs, sel_v, sel_w, qout)
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



#: Nodes between restarts of :func:`mixture_density`'s recurrence (two exponentials per restart,
#: most of the kernel's cost at 16; 64: most components take one restart, the rounding stays below
#: 3e-13 relative, far below the float32 grid products that follow).
DENSITY_RESTART = 64


@jit(inline="always")
def _gauss_setup(w, mu, s, x0, h, n_sd, nx):
    """One Gaussian component of :func:`mixture_density`: its node factor ``c = w h / (s sqrt(2 pi))``,
    its nodes ``j0..j1`` (within ``n_sd`` sd of ``mu``), ``d = h / s`` and ``exp(-d^2)`` of the recurrence."""
    c = w * h * (1.0 / math.sqrt(2.0 * math.pi)) / s
    j0 = max(0, int(math.ceil((mu - n_sd * s - x0) / h)))
    j1 = min(nx - 1, int(math.floor((mu + n_sd * s - x0) / h)))
    d = h / s
    return c, j0, j1, d, math.exp(-d * d)


@jit(inline="always")
def _gauss_node(row, j, x0, h, mu, s, c, d, e_d2, g, rr, left):
    """Add one component's term at node j to ``row`` and step its recurrence (restarted from the
    node's exact value when ``left`` reaches 0); returns the new ``(g, rr, left)``."""
    if left == 0:
        z = (x0 + j * h - mu) / s
        g = math.exp(-0.5 * z * z)
        rr = math.exp(-z * d - 0.5 * d * d)
        left = DENSITY_RESTART
    row[j] += c * g
    return g * rr, rr * e_d2, left - 1


@jit
def mixture_density(mean, sd, weight, x0, h, n_sd, out):
    """Gaussian-mixture density of ln IM times the grid step, on the grid x_j = x0 + j h.

    mean, sd, weight : (n, q) mixture per row [ln g]
    out              : (n, nx), accumulated into (the caller zeroes it); float64, or float32 for
                       the grid products (each row is summed in float64 and added to ``out`` once,
                       so a zeroed float32 ``out`` holds the float64 density rounded once)

    ``out[i, j] = h sum_q w_q phi((x_j - mean_q) / sd_q) / sd_q`` within ``n_sd`` sd of each mean.
    With h <= sd / 1.5 the trapezoid sum ``sum_j out[i, j] g(x_j)`` equals ``E[g(ln IM)]`` to
    ~exp(-2 pi^2 (sd/h)^2) < 1e-16 for smooth g (Gaussian fragility curves). Components whose
    sd is below h / 4 are deposited on the two nearest nodes (mean and mass kept).
    """
    n, nq = mean.shape
    nx = out.shape[1]
    row = np.empty(nx)
    for i in range(n):
        for j in range(nx):
            row[j] = 0.0
        q = 0
        while q < nq:
            w = weight[i, q]
            if w == 0.0:
                q += 1
                continue
            mu = mean[i, q]
            s = sd[i, q]
            if s < 0.25 * h:
                u = (mu - x0) / h
                j = int(math.floor(u))
                f = u - j
                if 0 <= j < nx:
                    row[j] += w * (1.0 - f)
                if 0 <= j + 1 < nx:
                    row[j + 1] += w * f
                q += 1
                continue
            # the next component with a weight: if it is a Gaussian too, both go through one loop
            # over the nodes (two independent recurrences: twice the work per multiply latency),
            # each node adding this component's term before the next one's (the order of one
            # component after the other: the same sums)
            q2 = q + 1
            while q2 < nq and weight[i, q2] == 0.0:
                q2 += 1
            pair = q2 < nq and sd[i, q2] >= 0.25 * h
            # exp(-z^2/2) on the uniform nodes by the recurrence g_{j+1} = g_j r_j,
            # r_{j+1} = r_j exp(-d^2) (d = h/s); restarted every DENSITY_RESTART nodes from the
            # component's first node to bound rounding (relative error of g after n steps
            # <= ~n^2/2 ulp: < 3e-13 for 64)
            c, j0, j1, d, e_d2 = _gauss_setup(w, mu, s, x0, h, n_sd, nx)
            if not pair:
                g = rr = 0.0
                left = 0
                for j in range(j0, j1 + 1):
                    g, rr, left = _gauss_node(row, j, x0, h, mu, s, c, d, e_d2, g, rr, left)
                q += 1
                continue
            mu2 = mean[i, q2]
            s2 = sd[i, q2]
            c2, k0, k1, d2, e2_d2 = _gauss_setup(weight[i, q2], mu2, s2, x0, h, n_sd, nx)
            g = rr = g2 = rr2 = 0.0
            left = left2 = 0  # nodes to the next restart
            for j in range(min(j0, k0), max(j1, k1) + 1):
                if j0 <= j <= j1:
                    g, rr, left = _gauss_node(row, j, x0, h, mu, s, c, d, e_d2, g, rr, left)
                if k0 <= j <= k1:
                    g2, rr2, left2 = _gauss_node(row, j, x0, h, mu2, s2, c2, d2, e2_d2, g2, rr2, left2)
            q = q2 + 1
        for j in range(nx):
            out[i, j] += row[j]


@jit
def _grid_interval(ln_grid, x):
    """Interval ``[i0, i0 + 1]`` of the ascending grid holding x, the fraction f of x in it, and x
    clamped to the grid's ends (outside the grid: the end interval with f = 0 or 1)."""
    n_g = ln_grid.shape[0]
    if x <= ln_grid[0]:
        return 0, 0.0, ln_grid[0]
    if x >= ln_grid[n_g - 1]:
        return n_g - 2, 1.0, ln_grid[n_g - 1]
    i0 = np.searchsorted(ln_grid, x) - 1
    return i0, (x - ln_grid[i0]) / (ln_grid[i0 + 1] - ln_grid[i0]), x


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
                i0, f, x = _grid_interval(ln_grid, ln_nodes[m, r, k])
                for j in range(n_j):
                    a = ln_p[m, i0, j]
                    b = ln_p[m, i0 + 1, j]
                    if a < -650.0 and b < -650.0:  # both below 1e-282: nothing to add
                        continue
                    out[m, r, j] += w * math.exp(a + f * (b - a))


#: ln P below which an interval of the R_rup grid adds nothing in :func:`lnr_interpolate_cubic` (1e-20,
#: the level below which the upper-bound screen drops whole grid points).
LN_P_NEGLIGIBLE = -46.0

# exp without a libm call, so that the column loops vectorise (:mod:`hra.core.fastmath`)
_exp_fast = fastmath.exp_fast
_log_fast = fastmath.log_fast
_bits_as_float = fastmath.bits_as_float
_expf_fast = fastmath.expf_fast
_logf_fast = fastmath.logf_fast


@jit
def lnr_interpolate_cubic(ln_p, ln_grid, kink, ln_nodes, weights, out, j_major=False):
    """:func:`lnr_interpolate` with cubic (4-point Lagrange) interpolation of ln P in ln R_rup.

    kink : (g,) bool, grid points where ln P is not smooth (e.g. hinges of the path term); the
           stencil of an interval stays between the kinks around it (shifted at the ends of that
           piece; a piece of fewer than 4 points gives a lower order).
    An interval whose two ends are below :data:`LN_P_NEGLIGIBLE` (P < 1e-20) adds nothing (its
    contribution is below ~1e-19, where the tables carry no information; more than half the
    entries of a zone's tables are that small). Where a stencil value is below -600 (P < 1e-260;
    screened points carry ln 1e-300) the interval is interpolated linearly, as in
    :func:`lnr_interpolate`. ln P above 0 is cut at 0. ``ln_p`` is finite (callers clamp P at 1e-300).

    Several rules per (M, R_hyp) (e.g. one per relative azimuth) are passed as more rows ``r``
    of ``ln_nodes``/``weights`` (rules with fewer nodes padded with weight 0).

    ``out`` is (m, r, j), or with ``j_major`` (m, j, r) (the same values; the layout of
    :func:`death_from_nested`, whose sums then run over contiguous distance rows).

    **Precision: float32 sums** (relative error <= ~2e-6 per value, ~4e-8 typically; the death tables
    keep 16 significant bits, 1.5e-5, and the interpolation's own error is ~5e-4 at the 99th
    percentile). Per magnitude and interval [i, i + 1] of the grid, each column's stencil is stored
    relative to the interval's larger end, ``ref = max(ln P_i, ln P_i+1)``, as float32 differences
    (rounded once from float64: the difference's magnitude, not ln P's, sets their error), with
    ``P(ref)`` (float64 exp, rounded to float32), the cut ``-ref`` and the linear flag. A node of a
    rule then adds ``w P(ref) e^(y - ref)`` in one float32 loop over the columns
    (:func:`hra.core.fastmath.expf_fast`: 8 lanes per AVX2 instruction, a degree-6 polynomial, where
    the float64 loop took 4 lanes and degree 13; this loop was ~85 % of the kernel). Terms
    below ``e^-87`` of their interval's ``P(ref)`` add nothing; a sum is 0 only where every term is
    (float32's subnormals kept: the smallest value 1.4e-45; the float64 kernel cut at 1e-290).

    A node whose interval is negligible in every column is skipped, and on each interval only the
    columns that reach 1e-20 at or beyond its left end are taken (the others add exactly 0).
    """
    n_m, n_g, n_j = ln_p.shape
    n_r, n_n = ln_nodes.shape[1], ln_nodes.shape[2]
    n_i = n_g - 1
    f32 = np.float32
    # per magnitude: the live columns (ln P >= LN_P_NEGLIGIBLE somewhere on the grid; the others
    # add nothing) copied side by side, lp[g, c] = ln_p[m, g, live[c]], ordered by their last grid
    # point with ln P >= LN_P_NEGLIGIBLE (descending), so that the columns that can add anything on
    # the interval [i, i + 1] are the first n_at[i] (the others have both ends below it: they add
    # exactly 0, whatever the shape of ln P)
    live = np.empty(n_j, dtype=np.int64)
    last = np.empty(n_j, dtype=np.int64)
    n_at = np.empty(n_g, dtype=np.int64)
    start = np.empty(n_g, dtype=np.int64)
    lp = np.empty((n_g, n_j))
    used = np.empty(n_i, dtype=np.bool_)
    acc = np.empty(n_j, dtype=np.float32)
    # per interval i and live column c: the stencil's 4 values minus ref (float32), P(ref) (0 where the
    # interval is negligible), the cut of y - ref (ln P <= 0) and 1 where the interval is linear
    dif = np.empty((n_i, 4, n_j), dtype=np.float32)
    p_ref = np.empty((n_i, n_j), dtype=np.float32)
    cut = np.empty((n_i, n_j), dtype=np.float32)
    linear = np.empty((n_i, n_j), dtype=np.float32)
    # the stencil of each interval: first point a0 and size, inside the smooth piece around it
    a0s = np.empty(n_i, dtype=np.int64)
    npts = np.empty(n_i, dtype=np.int64)
    for i in range(n_i):
        lo = i
        while lo > 0 and not kink[lo]:
            lo -= 1
        hi = i + 1
        while hi < n_g - 1 and not kink[hi]:
            hi += 1
        a0 = max(lo, min(i - 1, hi - 3))
        a0s[i] = a0
        npts[i] = min(4, hi - a0 + 1)
    for m in range(n_m):
        for g in range(n_g):
            n_at[g] = 0
        for j in range(n_j):
            lj = -1
            for g in range(n_g):
                lj = g if ln_p[m, g, j] >= LN_P_NEGLIGIBLE else lj
            last[j] = lj
            if lj >= 0:
                n_at[lj] += 1
        # n_at[g]: columns whose last point is >= g; start[g]: where those ending at g begin
        n_c = 0
        for g in range(n_g - 1, -1, -1):
            start[g] = n_c
            n_c += n_at[g]
            n_at[g] = n_c
        for j in range(n_j):
            lj = last[j]
            if lj >= 0:
                live[start[lj]] = j
                start[lj] += 1
        if j_major:
            for j in range(n_j):
                for r in range(n_r):
                    out[m, j, r] = 0.0
        else:
            for r in range(n_r):
                for j in range(n_j):
                    out[m, r, j] = 0.0
        if n_c == 0:
            continue
        for g in range(n_g):
            for c in range(n_c):
                lp[g, c] = ln_p[m, g, live[c]]
        for i in range(n_i):
            used[i] = False
        for r in range(n_r):
            for k in range(n_n):
                if weights[m, r, k] != 0.0:
                    used[_grid_interval(ln_grid, ln_nodes[m, r, k])[0]] = True
        for i in range(n_i):
            nu = n_at[i]  # the columns with an end of [i, i + 1] possibly at or above 1e-20
            if nu == 0 or not used[i]:
                continue
            a0 = a0s[i]
            npt = npts[i]
            g1 = a0 + 1
            g2 = a0 + 2 if npt > 2 else g1
            g3 = a0 + 3 if npt > 3 else g2  # (a stencil of fewer points repeats its last row, weight 0)
            d0, d1, d2, d3 = dif[i, 0], dif[i, 1], dif[i, 2], dif[i, 3]
            pr, ct, ln_ = p_ref[i], cut[i], linear[i]
            for c in range(nu):
                a = lp[i, c]
                b = lp[i + 1, c]
                ref = a if a > b else b
                v0 = lp[a0, c]
                v1 = lp[g1, c]
                v2 = lp[g2, c]
                v3 = lp[g3, c]
                d0[c] = f32(v0 - ref)
                d1[c] = f32(v1 - ref)
                d2[c] = f32(v2 - ref)
                d3[c] = f32(v3 - ref)
                ok = ref >= LN_P_NEGLIGIBLE
                pr[c] = f32(_exp_fast(ref)) if ok else f32(0.0)
                ct[c] = f32(-ref) if ok else f32(0.0)
                ln_[c] = f32(1.0) if min(min(v0, v1), min(v2, v3)) < -600.0 else f32(0.0)
        for r in range(n_r):
            for c in range(n_c):
                acc[c] = 0.0
            for k in range(n_n):
                w = weights[m, r, k]
                if w == 0.0:
                    continue
                i0, f, x = _grid_interval(ln_grid, ln_nodes[m, r, k])
                n_use = n_at[i0]
                if n_use == 0:
                    continue  # both ends below 1e-20 in every column: nothing to add
                a0 = a0s[i0]
                npt = npts[i0]
                # Lagrange weights (float64, then float32); a stencil of fewer points has weight 0 on
                # its repeated last row
                c0 = c1 = c2 = c3 = 0.0
                for u in range(npt):
                    cu = 1.0
                    xu = ln_grid[a0 + u]
                    for v in range(npt):
                        if v != u:
                            cu *= (x - ln_grid[a0 + v]) / (xu - ln_grid[a0 + v])
                    if u == 0:
                        c0 = cu
                    elif u == 1:
                        c1 = cu
                    elif u == 2:
                        c2 = cu
                    else:
                        c3 = cu
                w0, w1, w2, w3, ff, wf = f32(c0), f32(c1), f32(c2), f32(c3), f32(f), f32(w)
                d0, d1, d2, d3 = dif[i0, 0], dif[i0, 1], dif[i0, 2], dif[i0, 3]
                da, db = dif[i0, i0 - a0], dif[i0, i0 - a0 + 1]  # the interval's ends
                pr, ct, ln_ = p_ref[i0], cut[i0], linear[i0]
                for c in range(n_use):  # (both forms computed, then selected: no branch in the loop)
                    yc = (w0 * d0[c] + w1 * d1[c]) + (w2 * d2[c] + w3 * d3[c])
                    ya = da[c]
                    yl = ya + ff * (db[c] - ya)
                    y = yl if ln_[c] != f32(0.0) else yc
                    y = y if y < ct[c] else ct[c]
                    acc[c] += (wf * pr[c]) * _expf_fast(y)
            if j_major:
                for c in range(n_c):
                    v = acc[c]
                    if v > 0.0:
                        out[m, live[c], r] = v
            else:
                for c in range(n_c):
                    v = acc[c]
                    if v > 0.0:
                        out[m, r, live[c]] = v


#: Significant bits (the leading one included) that every physical death table keeps: 16, i.e. 15 of
#: float32's 23 explicit mantissa bits (relative rounding error <= 2^-16 = 1.5e-5 per value). The
#: tables' own numerical error is ~30x larger (R_rup interpolation: 5e-4 at the 99th percentile), and
#: the float32 bytes of such values end in a zero byte, which the table store's byte-shuffled LZ4
#: stores for nothing: the store is ~0.69x the size (:mod:`hra.integration.tablestore`, format 7).
TABLE_SIGNIFICANT_BITS = 16
#: Veltkamp's splitting factor for :data:`TABLE_SIGNIFICANT_BITS` of a float64 (53 bits).
TABLE_SPLIT = float(2 ** (53 - TABLE_SIGNIFICANT_BITS) + 1)
#: The same for a float32 (24 bits): :func:`round_table_value32`.
TABLE_SPLIT32 = np.float32(2 ** (24 - TABLE_SIGNIFICANT_BITS) + 1)


@jit(inline="always")
def round_table_value(x):
    """``x`` (float64) rounded to :data:`TABLE_SIGNIFICANT_BITS` significant bits, as float32.

    Veltkamp's split: ``c = x (2^s + 1)``, ``hi = c - (c - x)`` (s = 53 - 16) is ``x`` rounded to the
    nearest value of 16 significant bits (T. J. Dekker, "A floating-point technique for extending the
    available precision", Numer. Math. 18, 1971; error <= 2^-16 |x|); ``hi`` then converts to float32
    exactly (for |x| >= 2^-126; below, float32's subnormals round it once more). Idempotent (a value
    of <= 16 bits is returned unchanged), IEEE multiply and subtract only (no fused multiply-add).
    Finite |x| < 2^970 (the tables: probabilities). Arrays: :func:`round_table`."""
    c = x * TABLE_SPLIT
    return np.float32(c - (c - x))


@jit(inline="always")
def round_table_value32(x):
    """:func:`round_table_value` of a float32 ``x`` in float32 arithmetic (split factor ``2^8 + 1``): the
    same value for every float32 in [0, 2], subnormals included (checked for all 1,073,741,825 of them,
    ``tests/test_kernel_twins.py``), at twice the lanes per vector instruction."""
    c = x * TABLE_SPLIT32
    return c - (c - x)


@jit
def round_table(a):
    """:func:`round_table_value` of every value of the array ``a`` (float64 or float32, any shape and
    strides): a new C-contiguous float32 array of ``a``'s shape."""
    out = np.empty(a.shape, dtype=np.float32)
    flat = out.reshape(-1)
    i = 0
    for x in np.nditer(a):
        flat[i] = round_table_value(x.item())
        i += 1
    return out


@jit
def death_from_nested(pexc, coef, direct, direct_factor, round_f32, out, m_offset=0):
    """Death probability per event from P(CS >= k), written in the tables' layout.

    pexc   : (m, t, f, k, r) P(CS >= k) given (M, R) (the layout the R_rup interpolation writes
             with ``j_major``, :func:`lnr_interpolate_cubic`); nested here from the top state
             down, ``P(CS >= k) = max(P(CS >= k), P(CS >= k + 1))`` (exact: already nested values
             are unchanged)
    coef   : (t, c, k) death weight of state k (``p dPd_in + (1 - p) dPd_out``)
    direct : (m, t, c, r) P(direct death outside) or an empty array (none)
    round_f32 : round each value to the physical tables' precision (:func:`round_table_value`:
             16 significant bits, a float32 value; :data:`hra.integration.tablestore.TABLE_DTYPE`), in
             this pass rather than another one
    out    : (t, f, c, m, r) ``sum_k pexc coef + direct_factor * direct``, float64 or (with
             ``round_f32``) float32: the same values in half the bytes
    m_offset : magnitude row of ``out`` that ``pexc[0]`` goes to (a block of magnitudes at a time:
             ``out[:, :, :, m_offset + m]``)

    Each output row ``out[t, f, c, m, :]`` is summed over the distance nodes at once,
    ``((0 + p_0 c_0) + p_1 c_1) + ...`` in k order, then ``+ direct_factor * direct`` and the
    rounding to the tables' precision: per value the same operations in the same order as a scalar sum
    over k (the same bits), in contiguous loops over r that the compiler vectorises.
    """
    n_m, n_t, n_f, n_k, n_r = pexc.shape
    n_c = coef.shape[1]
    use_direct = direct.shape[0] > 0
    nest = np.empty((n_k, n_r))
    acc = np.empty(n_r)
    for m in range(n_m):
        for t in range(n_t):
            for f in range(n_f):
                for i in range(n_r):
                    nest[n_k - 1, i] = pexc[m, t, f, n_k - 1, i]
                for k in range(n_k - 2, -1, -1):
                    for i in range(n_r):
                        a = pexc[m, t, f, k, i]
                        b = nest[k + 1, i]
                        nest[k, i] = a if a >= b else b
                for c in range(n_c):
                    for i in range(n_r):
                        acc[i] = 0.0
                    for k in range(n_k):
                        w = coef[t, c, k]
                        for i in range(n_r):
                            acc[i] += nest[k, i] * w
                    if use_direct:
                        for i in range(n_r):
                            acc[i] += direct_factor * direct[m, t, c, i]
                    if round_f32:  # (into a float64 or float32 ``out``: the same value)
                        for i in range(n_r):
                            out[t, f, c, m_offset + m, i] = round_table_value(acc[i])
                    else:
                        for i in range(n_r):
                            out[t, f, c, m_offset + m, i] = acc[i]


@jit
def scaled_table_add(d, coef, out, first):
    """``out[t, f, c, m, r] = d[t, f, c, m, r] coef[m]`` (``first``) or ``+=`` that product: one term of a
    tree mean over physical tables (:meth:`hra.integration.engine.EngineDeath.tree_mean`) in one pass,
    without temporaries; each value the same product and sum as numpy's ``out + d * coef[:, None]``.

    d : (t, f, c, m, r) death table (float64, or float32 as stored); coef : (m,); out : like d, float64
    """
    n_t, n_f, n_c, n_m, n_r = d.shape
    for t in range(n_t):
        for f in range(n_f):
            for c in range(n_c):
                for m in range(n_m):
                    w = coef[m]
                    src = d[t, f, c, m]
                    dst = out[t, f, c, m]
                    if first:
                        for r in range(n_r):
                            dst[r] = src[r] * w
                    else:
                        for r in range(n_r):
                            dst[r] = dst[r] + src[r] * w


@jit
def forecast_q_layout(acc, proj, out):
    """``out[t, r, b, k, u] = sum_a proj[b, a] acc[k, u, t, r, a]`` (``proj`` of no rows: ``acc[k, u, t, r, b]``):
    a forecast's per-combination tables, accumulated basis-major (:func:`hra.integration.engine._forecast_gemm`),
    into the (t, r, u) layout of q, with a wide strike law's azimuth nodes a onto its harmonics b
    (:func:`hra.integration.condtables.azimuth_projection`) in the same pass.

    acc  : (K, u, t, r, a) per basis function k, combination u, typology t, distance node r, azimuth node a
    proj : (b, a) projection, or (0, 0) for none (then b = a)
    out  : (t, r, b, K, u), C order (q's (t, (r, b, k), u))

    Each value the same sum as :func:`hra.integration.condtables.project_azimuth`'s einsum:
    ``((0 + p_0) + p_1) + ...`` over a ascending, ``p_a = proj[b, a] acc[..., a]``. A blocked transpose
    (per k, tiles of 32 combinations x 32 (t, r) rows: what it reads and writes of a tile stays in cache;
    acc and out C-contiguous), scalar indexing only (no per-element sub-array: with one azimuth row and
    no projection 0.22 -> 0.10 s CPU for 340 MB; with the 3 azimuth nodes and projection of a V7 field
    zone ~0.14 s either way, bound by the memory traffic)."""
    n_k, n_u, n_t, n_r, n_a = acc.shape
    n_b = out.shape[2]
    has_proj = proj.shape[0] > 0
    src = acc.reshape(n_k, n_u, n_t * n_r, n_a)
    dst = out.reshape(n_t * n_r, n_b, n_k, n_u)
    n_tr = n_t * n_r
    for k in range(n_k):
        for u0 in range(0, n_u, 32):
            u1 = min(u0 + 32, n_u)
            for i0 in range(0, n_tr, 32):
                i1 = min(i0 + 32, n_tr)
                if has_proj:
                    for u in range(u0, u1):
                        for i in range(i0, i1):
                            for b in range(n_b):
                                s = 0.0
                                for a in range(n_a):
                                    s += proj[b, a] * src[k, u, i, a]
                                dst[i, b, k, u] = s
                elif n_a == 1:
                    for u in range(u0, u1):
                        for i in range(i0, i1):
                            dst[i, 0, k, u] = src[k, u, i, 0]
                else:
                    for u in range(u0, u1):
                        for i in range(i0, i1):
                            for b in range(n_b):
                                dst[i, b, k, u] = src[k, u, i, b]


@jit
def add_rows_scattered(acc, term, k_of_row, u_of_row, fresh):
    """``acc[k_of_row[i], u_of_row[i], :] += term[i, :]`` for every row i of ``term``: one BLAS block's
    products of a forecast slice added to the per-combination sums of
    :func:`hra.integration.engine._forecast_gemm`, in one call without the interpreter (and its lock)
    between rows.

    acc   : (K, u, x) float64, accumulated in place (basis function k, combination u, (t, r) flattened)
    term  : (n, x) float64, the block's product rows
    k_of_row, u_of_row : (n,) int64 the basis function and combination of each row (distinct pairs)
    fresh : (K, u) bool, the rows of acc not written yet (their memory undefined): such a row is set to
            ``term[i] + 0.0`` and marked written (no pass to zero acc first, and no read of zeros);
            (0, 0): every row of acc is accumulated

    Each element one IEEE addition, as numpy's ``acc[k, u] += term[i]`` on a zeroed ``acc``
    (``term + 0.0`` is ``0.0 + term``, -0.0 included): the same bits."""
    n_x = term.shape[1]
    track = fresh.shape[0] > 0
    for i in range(term.shape[0]):
        k, u = k_of_row[i], u_of_row[i]
        dst = acc[k, u]
        src = term[i]
        if track and fresh[k, u]:
            fresh[k, u] = False
            for x in range(n_x):
                dst[x] = src[x] + 0.0
        else:
            for x in range(n_x):
                dst[x] += src[x]


@jit
def weighted_table_sum(d, rows, wfc, coef, out):
    """``out[i, m, r] += sum_f sum_c (wfc[f, c] coef[m]) d[rows[i], f, c, m, r]``: one physical table's
    share of a forecast's tree mean, in one pass over the table.

    d    : (t, f, c, m, r) death table (all typologies of the zone task)
    rows : (n,) typology rows of d to take, in the order of out
    wfc  : (f, c) fragility x consequence branch weights; coef : (m,) per-magnitude weight of the table
    out  : (n, m, r) accumulated in place

    Each element adds its (f, c) terms in ascending (f, c), each term the rounded product
    ``(wfc coef) * d`` (as ``acc += d * w`` with numpy); zero weights are skipped (adding +0 to a
    sum of non-negative terms changes nothing)."""
    n_f, n_c, n_m, n_r = d.shape[1], d.shape[2], d.shape[3], d.shape[4]
    for i in range(rows.shape[0]):
        t = rows[i]
        for f in range(n_f):
            for c in range(n_c):
                for m in range(n_m):
                    w = wfc[f, c] * coef[m]
                    if w == 0.0:
                        continue
                    src = d[t, f, c, m]
                    dst = out[i, m]
                    for r in range(n_r):
                        dst[r] += src[r] * w


@jit
def weighted_slice_sum(d, rows, f, c, w, out, lo, dst):
    """``out[i, m, r] += w[m] d[rows[i], f, c, m, r]`` (one (f, c) slice's share of a forecast's tree mean,
    :func:`weighted_table_sum`'s terms of that slice) and, in the same pass over the slice,
    ``dst[m - lo, i, r] = d[rows[i], f, c, m, r]`` for ``lo <= m < lo + dst.shape[0]`` (its copy in float64
    for the BLAS products of :func:`hra.integration.engine._forecast_gemm`): the table is read once.

    d    : (t, f, c, m, r) death table (float32 as stored, or float64)
    rows : (n,) typology rows of d, in the order of out and dst
    w    : (m,) weights ``wfc[f, c] * coef[m]`` (zeros: no term, as :func:`weighted_table_sum` skips them)
    out  : (n, m, r) float64, accumulated in place; dst : (k, n, r) float64 (k = 0: no copy)

    Each ``out`` element adds the rounded product ``d * w`` (float64), as :func:`weighted_table_sum`:
    called for the slices in ascending (f, c) and tables in the same order, the same sums to the bit."""
    n_m, n_r = d.shape[3], d.shape[4]
    n_k = dst.shape[0]
    for i in range(rows.shape[0]):
        t = rows[i]
        for m in range(n_m):
            src = d[t, f, c, m]
            wm = w[m]
            if wm != 0.0:
                acc = out[i, m]
                for r in range(n_r):
                    acc[r] += src[r] * wm
            k = m - lo
            if 0 <= k < n_k:
                cp = dst[k, i]
                for r in range(n_r):
                    cp[r] = src[r]


@jit(inline="always")
def _bin_expectation(lo, hi, ln_lo, ln_hi, beta_h, decay, frac_hi, inv_exprel_neg):
    """E_bin[g] of one magnitude bin from g at its edges (lo, hi; their logs): the rule of
    :meth:`hra.inputs.source.MagnitudeBins.bin_expectations`, branch-free (loops over it vectorise).

    ``lo exprel(x) / exprel(-beta_h)`` with ``x = ln hi - ln lo - beta_h`` where lo, hi > 0, computed as
    ``(hi e^-beta_h - lo) / x`` (no transcendental), by the series of exprel to x^4 where
    ``|x| < 1e-3`` (the difference would cancel; truncation < 2e-18 relative); else the linear
    fallback ``lo (1 - frac_hi) + hi frac_hi``. Relative difference to the expm1 form < 1e-12."""
    x = ln_hi - ln_lo - beta_h
    small = lo * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0))))) * inv_exprel_neg
    big = (hi * decay - lo) / x * inv_exprel_neg
    lin = lo * (1.0 - frac_hi) + hi * frac_hi
    e = small if abs(x) < 1e-3 else big
    return e if (lo > 0.0 and hi > 0.0) else lin


@jit
def magnitude_integrate_picked(tabs, ln_tabs, pick, beta_h, decay, frac_hi, inv_exprel_neg, prob, out):
    """E[g(M)] per (b-value, Mmax) branch of ``g(m) = tabs[pick[m], t, m, r]``: the rule of
    :meth:`hra.inputs.source.MagnitudeBins.integrate` (log-linear within each bin against the bin's
    exact GR density, linear where an edge value is 0), for tables that a magnitude-dependent
    branch choice reads (a virtual w(M) median branch of a one-hot :class:`hra.chain.MedianMap`
    takes physical median ``pick[m]`` at node m).

    tabs, ln_tabs : (K, T, M, R) values and their ln (-inf where 0) of K tables
    pick          : (M,) table read at each magnitude node
    beta_h, decay, frac_hi, inv_exprel_neg : (B, bins) per b-value and bin ``b ln10 h``,
                    ``exp(-beta_h)``, the linear fallback's upper-edge weight, ``1 / exprel(-beta_h)``
    prob          : (B, X, bins) bin probabilities per (b-value, Mmax) branch
    out           : (B, X, T, R) written

    Each bin by :func:`_bin_expectation` (no transcendental: the loop over r vectorises); the sum over
    bins in ascending order.
    """
    K, T, M, R = tabs.shape
    B, X, NB = prob.shape
    e = np.empty(R)
    for b in range(B):
        for x in range(X):
            for t in range(T):
                for r in range(R):
                    out[b, x, t, r] = 0.0
    for t in range(T):
        for i in range(NB):
            a = pick[i]
            c = pick[i + 1]
            p_lo = tabs[a, t, i]
            p_hi = tabs[c, t, i + 1]
            l_lo = ln_tabs[a, t, i]
            l_hi = ln_tabs[c, t, i + 1]
            for b in range(B):
                bh = beta_h[b, i]
                dc = decay[b, i]
                fh = frac_hi[b, i]
                ie = inv_exprel_neg[b, i]
                for r in range(R):
                    e[r] = _bin_expectation(p_lo[r], p_hi[r], l_lo[r], l_hi[r], bh, dc, fh, ie)
                for x in range(X):
                    w = prob[b, x, i]
                    if w == 0.0:
                        continue
                    o = out[b, x, t]
                    for r in range(R):
                        o[r] += w * e[r]


@jit
def magnitude_bin_expectations(p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, decay, frac_hi, inv_exprel_neg,
                               out):
    """E_bin[g] of magnitude bins from tables at the bins' edge nodes, read where the R_rup
    interpolation writes them: the rule of :meth:`hra.inputs.source.MagnitudeBins.bin_expectations`.

    p              : (m, r, c) P at magnitude node m, distance row r, column c
    ln_tab         : (K, m, r, l) ln P of table k (-inf where P = 0): ``ln p[:, :, branch_col[k] + l]``
    branch_col     : (K,) first column of table k in ``p``
    cell_lo, cell_hi : (n,) table k at the lower / upper edge of cell n (they may differ: a
                     virtual median branch changes its physical branch between nodes)
    cell_bin       : (n,) bin i of cell n: edges at magnitude nodes i and i + 1
    beta_h, decay, frac_hi, inv_exprel_neg : (bins,) ``b ln10 h``, ``exp(-beta_h)``, the linear
                     fallback's upper-edge weight and ``1 / exprel(-beta_h)`` per bin
    out            : (n, r, l) ``lo exprel(ln(hi / lo) - beta_h) / exprel(-beta_h)`` where
                     lo, hi > 0, else ``lo (1 - frac_hi) + hi frac_hi``

    Each cell by :func:`_bin_expectation` (no transcendental function: the loop over l vectorises).
    """
    n_r, n_l = ln_tab.shape[2], ln_tab.shape[3]
    n_n = cell_bin.size
    for r in range(n_r):
        for n in range(n_n):
            i = cell_bin[n]
            bh = beta_h[i]
            c = decay[i]
            fh = frac_hi[i]
            ie = inv_exprel_neg[i]
            a, b = cell_lo[n], cell_hi[n]
            # contiguous slices: the loop over l vectorises (indexing the 3-D array would not)
            p_lo = p[i, r, branch_col[a]:branch_col[a] + n_l]
            p_hi = p[i + 1, r, branch_col[b]:branch_col[b] + n_l]
            ln_lo = ln_tab[a, i, r]
            ln_hi = ln_tab[b, i + 1, r]
            o = out[n, r]
            for k in range(n_l):
                o[k] = _bin_expectation(p_lo[k], p_hi[k], ln_lo[k], ln_hi[k], bh, c, fh, ie)


@jit
def expand_magnitudes(sub, src, weights, n_used, lin_idx, lin_w, rounded, out):
    """Tables at every magnitude node from tables computed at some of them (:mod:`hra.integration.magnitudes`).

    sub     : (n, ms, r) the computed nodes' values (float32 or float64), P >= 0
    src     : (M, 4) int64, per node the computed nodes of its stencil (rows of ``sub``)
    weights : (M, 4) Lagrange weights in M of those nodes (ln P is interpolated: ``exp(sum w ln P)``)
    n_used  : (M,) stencil size; 1 = a computed node, copied
    lin_idx, lin_w : (M, 2) the two computed nodes around the node and their linear weights, used
              where a stencil value is 0 or below float32's normal range (1.2e-38): P interpolated
              linearly there (0 between zeros)
    rounded : each interpolated value rounded to the tables' precision (:func:`round_table_value`)
    out     : (n, M, r) float32 or float64

    Per row, ``ln P`` of each computed value once, then per node one vectorised pass over the contiguous
    distance rows (its weighted sum, the zero test, exp and rounding); an interpolated value above 1 is
    cut at 1. **ln P, its weighted sums and exp in float32** (:func:`hra.core.fastmath.logf_fast`,
    :func:`hra.core.fastmath.expf_fast`: 8 lanes per AVX2 instruction where float64 took 4, polynomials
    of half the degree): an interpolated value is within ~1e-5 relative (|ln P| <= 87 times float32's
    6e-8, summed over the stencil) of the same interpolation in float64, against the interpolation's own
    error of ~0.1-1 % (`docs/groningen-models.md`) and the tables' 16 bits (1.5e-5); a computed node's
    values are copied bit for bit. A node none of whose stencil rows holds a value below float32's normal
    range (counted in the ln P pass) takes a loop without the fallback, rounded in float32
    (:func:`round_table_value32`): the same values, ~13 % less time on the field's stored chunks."""
    n, ms, R = sub.shape
    M = src.shape[0]
    f32 = np.float32
    tiny = f32(1.1754944e-38)  # float32's smallest normal number: logf_fast needs a normal argument
    lp = np.empty((ms, R), dtype=np.float32)
    low = np.empty(ms, dtype=np.int64)  # per computed row, its values below tiny (0 mostly)
    for i in range(n):
        for s in range(ms):
            c = 0
            for r in range(R):
                v = f32(sub[i, s, r])
                ok = v >= tiny
                c += 0 if ok else 1
                lp[s, r] = _logf_fast(v if ok else f32(1.0))
            low[s] = c
        for m in range(M):
            k = n_used[m]
            if k == 1:
                s0 = src[m, 0]
                for r in range(R):
                    out[i, m, r] = sub[i, s0, r]
                continue
            # one pass per node: a stencil of 2 or 3 nodes padded to 4 with weight 0 on its first node
            # (y + 0 ln P is y: the same sums as term by term)
            s0, s1 = src[m, 0], src[m, 1]
            s2 = src[m, 2] if k > 2 else s0
            s3 = src[m, 3] if k > 3 else s0
            w0, w1 = f32(weights[m, 0]), f32(weights[m, 1])
            w2 = f32(weights[m, 2]) if k > 2 else f32(0.0)
            w3 = f32(weights[m, 3]) if k > 3 else f32(0.0)
            l0, l1, l2, l3 = lp[s0], lp[s1], lp[s2], lp[s3]
            o = out[i, m]
            if low[s0] + low[s1] + low[s2] + low[s3] == 0:
                # no linear fallback on this row (the usual case): float32 throughout, rounded by
                # round_table_value32 (the same value as round_table_value of the float64)
                for r in range(R):
                    y = (w0 * l0[r] + w1 * l1[r]) + (w2 * l2[r] + w3 * l3[r])
                    e = _expf_fast(y if y < f32(0.0) else f32(0.0))
                    o[r] = round_table_value32(e) if rounded else e
                continue
            wa, wb = lin_w[m, 0], lin_w[m, 1]
            p0, p1, p2, p3 = sub[i, s0], sub[i, s1], sub[i, s2], sub[i, s3]
            pa, pb = sub[i, lin_idx[m, 0]], sub[i, lin_idx[m, 1]]
            for r in range(R):
                y = (w0 * l0[r] + w1 * l1[r]) + (w2 * l2[r] + w3 * l3[r])
                pos = (p0[r] >= tiny) & (p1[r] >= tiny) & (p2[r] >= tiny) & (p3[r] >= tiny)
                e = np.float64(_expf_fast(y if y < f32(0.0) else f32(0.0)))
                lin = wa * np.float64(pa[r]) + wb * np.float64(pb[r])
                v = e if pos else lin
                o[r] = round_table_value(v) if rounded else v
