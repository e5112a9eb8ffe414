"""Physical death tables computed at every other magnitude node, the others interpolated in ln P.

``[source] magnitude_table_stride = 2`` (default 1: every node computed). Most of the table stage's
cost is proportional to the number of magnitude nodes (every (M, R_rup) point of every physical
table), so computing every other node cuts it by about a third on the field benchmark (the
interpolation itself, the forecast's products over all nodes and the kink nodes remain); the nodes
between are interpolated:

    ln P(m) = sum_u L_u(m) ln P(m_u)

with the 4-point Lagrange weights ``L_u`` of the nearest computed nodes ``m_u`` (two on each side;
shifted to one side at the ends of a piece; a lower order only in pieces of fewer than 4 computed
nodes). The ground-motion model's kinks in M (``gmm.magnitude_kinks``: GMM V7's source-term hinge
4.75, the path term's switch at 3.875, the component-to-component clip at 3.6 and 5.6) split the
nodes into pieces: the node on a kink, or the two nodes around it, are always computed and no
stencil crosses a kink. Where a stencil value is 0 (below the tables' floors) P is
interpolated linearly between the two computed neighbours instead. Interpolated values are rounded
to the tables' precision (16 significant bits) like computed ones, so a run with the table store
equals one without it to the bit.

Accuracy (``benchmarks/README.md``, the fifth 2026-12-05 stop; the field benchmark's zone 110 with
the 24-branch forecast on the 0.05 grid, the full V7 tree, 1,000 realisations): the buildings' mean
LPR within 2.8e-5 of the tables at every node, P50/P90 within 5.5e-4 (above 1e-9 /yr: 9.1e-6 and
4.1e-4); GMM V7 + FCM V7 on a rate grid at 0.1 (``tests/groningen/test_strike_v7.py``): 4-6e-5. The
interpolated tables themselves are off by more (in a first experiment, values above 1e-10: p99
0.65 %, max 3.5 %), which the magnitude integration averages out. Every node stays the
default of the config schema; ``model = "psdra-2024"`` with a forecast (the annual run) takes stride 2
(:data:`hra.config.PSDRA_2024_MAGNITUDE_TABLE_STRIDE`) at about two thirds of the table stage's CPU:
on 20,000 buildings of the field benchmark the mean LPR moves by <= 3.7e-5 and P50/P90 by <= 5.8e-4,
where another seed moves P50/P90 by 12-22 % in the median building (docs/forecast.md, "The preset's
magnitude stride"). The hazard tables (:mod:`hra.integration.hazard`)
are always computed at every node.

The expansion runs in :func:`hra.integration.kernels.expand_magnitudes`, in float32 (its ln P, weighted
sums and exp: ~1e-5 relative at most against the same interpolation in float64, 100x below its own error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hra.integration import kernels

#: Allowed values of ``[source] magnitude_table_stride``.
STRIDES = (1, 2)


@dataclass(frozen=True)
class StridePlan:
    """Which magnitude nodes are computed and how the others are interpolated from them.

    ``computed``: (ms,) indices of the computed nodes (ascending); ``src``/``weights``/``n_used``: per
    node its stencil (rows of the computed tables), Lagrange weights in M and size (1: computed);
    ``lin_idx``/``lin_w``: its two computed neighbours and their linear weights (the fallback where a
    stencil value is 0)."""

    computed: np.ndarray
    src: np.ndarray
    weights: np.ndarray
    n_used: np.ndarray
    lin_idx: np.ndarray
    lin_w: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.src.shape[0])


def stride_plan(nodes: np.ndarray, stride: int, kinks=()) -> StridePlan:
    """The plan for ``nodes`` (ascending magnitudes) computed every ``stride``-th node from the first,
    plus the last node and, for each kink inside the range, the node on it or the two nodes around it;
    the kinks split the nodes into pieces (a node on a kink ends one piece and starts the next), and
    an interpolated node's stencil stays within its piece."""
    nodes = np.asarray(nodes, dtype=np.float64)
    M = nodes.size
    if stride not in STRIDES:
        raise ValueError(f"magnitude_table_stride must be one of {STRIDES}, not {stride!r}")
    comp = np.zeros(M, dtype=bool)
    comp[::stride] = True
    comp[-1] = True
    shared = [0, M - 1]  # computed nodes that end one piece and start the next (a kink on the node)
    cuts = []  # (i, i + 1): a kink between these two computed nodes, each ends its own piece
    for k in kinks:
        if not nodes[0] < k < nodes[-1]:
            continue
        i = int(np.searchsorted(nodes, k, side="right")) - 1  # nodes[i] <= k < nodes[i + 1]
        if abs(nodes[i] - k) <= 1e-9 * max(1.0, abs(k)):
            comp[i] = True
            shared.append(i)
        elif abs(nodes[i + 1] - k) <= 1e-9 * max(1.0, abs(k)):
            comp[i + 1] = True
            shared.append(i + 1)
        else:
            comp[i] = comp[i + 1] = True
            cuts.append(i)
    computed = np.flatnonzero(comp)
    row = np.full(M, -1, dtype=np.int64)
    row[computed] = np.arange(computed.size)
    src = np.zeros((M, 4), dtype=np.int64)
    weights = np.zeros((M, 4))
    n_used = np.ones(M, dtype=np.int64)
    lin_idx = np.zeros((M, 2), dtype=np.int64)
    lin_w = np.zeros((M, 2))
    for m in range(M):
        if comp[m]:
            src[m, 0], weights[m, 0] = row[m], 1.0
            lin_idx[m] = row[m]
            lin_w[m] = (1.0, 0.0)
            continue
        lo = max([j for j in shared if j < m] + [i + 1 for i in cuts if i + 1 <= m])
        hi = min([j for j in shared if j > m] + [i for i in cuts if i >= m])
        piece = [i for i in range(lo, hi + 1) if comp[i]]
        left = [i for i in piece if i < m]
        right = [i for i in piece if i > m]
        # the 4 computed nodes of the piece nearest to m (two on each side inside a piece, shifted at its ends)
        st = sorted(sorted(piece, key=lambda i: (abs(i - m), i))[:4])
        x = nodes[st]
        for u, iu in enumerate(st):
            others = np.delete(x, u)
            src[m, u] = row[iu]
            weights[m, u] = float(np.prod((nodes[m] - others) / (x[u] - others)))
        n_used[m] = len(st)
        a, b = left[-1], right[0]
        lin_idx[m] = (row[a], row[b])
        f = (nodes[m] - nodes[a]) / (nodes[b] - nodes[a])
        lin_w[m] = (1.0 - f, f)
    return StridePlan(computed, src, weights, n_used, lin_idx, lin_w)


def gmm_plan(gmm, nodes: np.ndarray, stride: int) -> StridePlan | None:
    """:func:`stride_plan` with the model's kinks in M (``gmm.magnitude_kinks``), or ``None`` for
    stride 1 (every node computed)."""
    if stride == 1:
        return None
    return stride_plan(nodes, stride, tuple(getattr(gmm, "magnitude_kinks", ())))


def computed_nodes(gmm, mag) -> np.ndarray:
    """The magnitude nodes at which the tables of ``mag`` (with its ``table_stride``) are computed."""
    plan = gmm_plan(gmm, mag.nodes, getattr(mag, "table_stride", 1))
    return mag.nodes if plan is None else mag.nodes[plan.computed]


def expand(table: np.ndarray, plan: StridePlan, rounded: bool = True, dtype=None,
           out: np.ndarray | None = None) -> np.ndarray:
    """A table (..., ms, r) at the plan's computed nodes -> (..., M, r) at every node (``dtype``: of the
    result, default the table's; ``out``: a C-contiguous array of that shape and type to write it into,
    e.g. a stored entry's place in the tables of its zone)."""
    lead, (ms, R) = table.shape[:-2], table.shape[-2:]
    if ms != plan.computed.size:
        raise ValueError(f"table has {ms} magnitude nodes, the plan computes {plan.computed.size}")
    sub = np.ascontiguousarray(table).reshape(-1, ms, R)
    shape = lead + (plan.n_nodes, R)
    if out is None:
        out = np.empty(shape, dtype=dtype or table.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous array of shape {shape}, not {out.shape}")
    kernels.expand_magnitudes(sub, plan.src, plan.weights, plan.n_used, plan.lin_idx, plan.lin_w, bool(rounded),
                              out.reshape(sub.shape[0], plan.n_nodes, R))
    return out
