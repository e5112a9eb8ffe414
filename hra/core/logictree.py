"""Epistemic logic trees: nodes, branches, weights, enumeration and Monte-Carlo realisations.

A logic tree here is a list of independent **nodes** (source-rate model, b-value, Mmax, GMM median
level, ...), each with mutually exclusive **branches** whose weights sum to one. A *realisation*
picks one branch per node; its weight is the product of the branch weights.

Two ways to explore the tree:

* :meth:`LogicTree.enumerate` lists every combination with its weight (exact);
* :meth:`LogicTree.sample` draws ``n`` realisations, each node independently with its weights as
  probabilities, from a generator keyed by ``(seed, purpose)`` so that the draw never depends on
  chunking or on the number of workers.

:func:`weighted_quantile` is the one definition of a weighted quantile used everywhere in the
project (inverse of the weighted empirical CDF, numpy's ``inverted_cdf``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

WEIGHT_TOLERANCE = 1e-6

#: Purpose ids for random streams (``SeedSequence(seed, spawn_key=(purpose, ...))``).
PURPOSE_TREE = 1
PURPOSE_TYPOLOGY = 2
PURPOSE_EVENTS = 3
PURPOSE_GMF = 4
PURPOSE_BOOTSTRAP = 12  # F-N bootstrap draws (hra.eventbased.risk)


@dataclass(frozen=True)
class Node:
    """One node of the logic tree.

    Parameters
    ----------
    name
        Node name, e.g. ``"m_max"`` or ``"gmm_median"``.
    labels
        Branch labels (strings), in a fixed order.
    weights
        Branch weights, same order; must be non-negative and sum to 1 (within 1e-6).
    values
        Optional numeric value per branch (e.g. the Mmax value); informative only.
    """

    name: str
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.labels) == 0:
            raise ValueError(f"logic-tree node {self.name!r} has no branches")
        if len(self.labels) != len(self.weights):
            raise ValueError(
                f"logic-tree node {self.name!r}: {len(self.labels)} labels but {len(self.weights)} weights"
            )
        w = np.asarray(self.weights, dtype=float)
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"logic-tree node {self.name!r}: weights must be finite and >= 0, got {list(w)}")
        if abs(w.sum() - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(
                f"logic-tree node {self.name!r}: weights sum to {w.sum():.6g}, not 1; "
                "fix the weights so that they add up to 1"
            )

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def weight_array(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=float)

    @classmethod
    def single(cls, name: str, label: str = "default", value: float | None = None) -> "Node":
        return cls(name, (label,), (1.0,), None if value is None else (float(value),))


@dataclass(frozen=True)
class Realisations:
    """A set of logic-tree realisations.

    ``index[r, j]`` is the branch of node ``j`` in realisation ``r``; ``weight[r]`` its weight
    (sums to 1). ``exact`` is True for a full enumeration, False for Monte-Carlo draws.
    """

    nodes: tuple[Node, ...]
    index: np.ndarray  # (n_realisations, n_nodes) int64
    weight: np.ndarray  # (n_realisations,) float64
    exact: bool

    @property
    def n(self) -> int:
        return int(self.index.shape[0])

    def column(self, name: str) -> np.ndarray:
        j = [n.name for n in self.nodes].index(name)
        return self.index[:, j]

    def unique(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Distinct branch combinations of the named nodes.

        Returns ``(combos, inverse)`` where ``combos[u]`` are the branch indices of the distinct
        combination ``u`` (in the order of ``names``) and ``inverse[r]`` maps realisation ``r`` to it.
        """
        cols = [[n.name for n in self.nodes].index(nm) for nm in names]
        sub = self.index[:, cols]
        combos, inverse = np.unique(sub, axis=0, return_inverse=True)
        return combos.astype(np.int64), inverse.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class LogicTree:
    """An ordered collection of independent nodes."""

    nodes: tuple[Node, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"logic tree has duplicate node names: {sorted(dup)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def n_combinations(self) -> int:
        return int(np.prod([n.size for n in self.nodes], dtype=np.int64)) if self.nodes else 1

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def __add__(self, other: "LogicTree") -> "LogicTree":
        return LogicTree(self.nodes + other.nodes)

    def enumerate(self) -> Realisations:
        """All branch combinations (C order: last node varies fastest) with product weights."""
        sizes = [n.size for n in self.nodes]
        if not sizes:
            return Realisations(self.nodes, np.zeros((1, 0), np.int64), np.ones(1), True)
        index = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
        weight = np.ones(len(index))
        for j, n in enumerate(self.nodes):
            weight *= n.weight_array[index[:, j]]
        return Realisations(self.nodes, index, weight, True)

    def sample(self, n: int, seed: int) -> Realisations:
        """``n`` Monte-Carlo realisations, equally weighted.

        Node ``j`` is drawn from ``default_rng(SeedSequence(seed, spawn_key=(PURPOSE_TREE, j)))``,
        so adding a node at the end of the tree does not change the draws of the earlier ones.
        """
        if n < 1:
            raise ValueError(f"number of realisations must be >= 1, got {n}")
        index = np.zeros((n, len(self.nodes)), dtype=np.int64)
        for j, node in enumerate(self.nodes):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSE_TREE, j)))
            cdf = np.cumsum(node.weight_array)
            cdf /= cdf[-1]
            u = rng.random(n)
            index[:, j] = np.minimum(np.searchsorted(cdf, u, side="right"), node.size - 1)
        return Realisations(self.nodes, index, np.full(n, 1.0 / n), False)

    def realisations(self, spec: int | str, seed: int) -> Realisations:
        """``"all"`` -> :meth:`enumerate`; an int -> :meth:`sample`."""
        if spec == "all":
            return self.enumerate()
        return self.sample(int(spec), seed)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float | Sequence[float]) -> np.ndarray:
    """Weighted quantile: the inverse of the weighted empirical CDF.

    ``Q(p) = min{ v_i : F(v_i) >= p }`` with ``F(v) = sum_{v_j <= v} w_j / sum_j w_j``; no
    interpolation between values. This equals ``numpy.quantile(..., method="inverted_cdf")`` and,
    for integer weights, the plain ``inverted_cdf`` quantile of the sample in which each value is
    repeated ``w_i`` times. Cumulative sums are compared with a relative tolerance of 1e-12 so
    that float rounding does not move a quantile that falls exactly on a step.

    Parameters
    ----------
    values, weights
        1-D arrays of equal length; weights >= 0 with a positive sum.
    q
        Probability or sequence of probabilities in [0, 1].
    """
    v = np.asarray(values, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    if v.shape != w.shape:
        raise ValueError("values and weights must have the same length")
    if v.size == 0:
        raise ValueError("weighted_quantile of an empty array")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be >= 0 with a positive sum")
    qa = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any((qa < 0) | (qa > 1)):
        raise ValueError("quantile probabilities must lie in [0, 1]")
    order = np.argsort(v, kind="stable")
    vs, ws = v[order], w[order]
    cum = np.cumsum(ws)
    total = cum[-1]
    idx = np.searchsorted(cum, qa * total * (1.0 - 1e-12), side="left")
    idx = np.clip(idx, 0, v.size - 1)
    out = vs[idx]
    return out if np.ndim(q) else out[0]
