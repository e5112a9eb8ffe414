"""The weighted selection behind ``weighted_quantiles`` equals the sort-based definition to the bit.

The reference is the definition in numpy: a stable argsort, the total weight summed in index order,
the cumulative weight in ascending value order (``np.cumsum``, sequential) and the first value whose
cumulative weight reaches ``p * total * (1 - 1e-12)`` (the largest value if none does).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hra.integration.kernels as ik


def ref_quantiles(v, w, probs):
    """The definition (see the module docstring), in numpy."""
    n = v.size
    order = np.argsort(v, kind="stable")
    total = 0.0
    for x in w:  # index order, one addition at a time (the kernel's total)
        total += x
    cum = np.cumsum(w[order])
    out = np.empty(len(probs))
    for i, p in enumerate(probs):
        k = int(np.searchsorted(cum, p * total * (1.0 - 1e-12), side="left"))
        out[i] = v[order[min(k, n - 1)]]
    return out


def select(v, w, probs):
    """(quantiles, whether the selection decided) of the kernel; v and w must stay as they were."""
    v0, w0 = v.copy(), w.copy()
    out = np.empty(len(probs))
    decided = ik._select_quantiles(v, w, v.size, np.asarray(probs, float), np.empty(v.size), np.empty(v.size), out)
    assert np.array_equal(v, v0, equal_nan=True) and np.array_equal(w, w0, equal_nan=True)
    out2 = np.empty(len(probs))
    ik.weighted_quantiles(v, w, v.size, np.asarray(probs, float), np.empty(v.size, dtype=np.int64), out2)
    assert out2.tobytes() == out.tobytes()
    return out, bool(decided)


def assert_same_bits(v, w, probs):
    got, decided = select(v, w, probs)
    want = ref_quantiles(v, w, probs)
    assert got.tobytes() == want.tobytes(), (got, want)
    sorted_out = np.empty(len(probs))
    ik._sorted_quantiles(v, w, v.size, np.asarray(probs, float), sorted_out)
    assert sorted_out.tobytes() == want.tobytes()
    return decided


PROBS = [0.5, 0.9, 0.1, 0.0, 1.0, 0.9, 0.25]  # unsorted, repeated, both ends


def _accumulated(counts, n_mc):
    """Weights as chunk_lpr builds Monte Carlo pair weights: 1 / n_mc added count times."""
    w = np.zeros(counts.size)
    for i, c in enumerate(counts):
        for _ in range(int(c)):
            w[i] += 1.0 / n_mc
    return w


def test_steps_hit_exactly_are_decided_by_the_selection():
    """Weights k/1000 (as Monte Carlo draws give them) whose partial sums reach p exactly: the
    1e-12 slack of the target keeps them out of the band where the selection defers to the sort,
    so these cases run (and are checked) on the selection itself."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 12, 13, 40, 937, 1000, 2000):
        for trial in range(4):
            counts = rng.multinomial(1000, np.full(n, 1.0 / n)) if trial % 2 else rng.integers(0, 7, size=n)
            w = _accumulated(counts, 1000) if trial < 2 else counts / 1000.0
            v = rng.integers(0, max(1, n // 3), size=n) * 0.125 if trial == 3 else rng.lognormal(-12, 1.5, size=n)
            if w.sum() == 0.0:
                w[0] = 0.001
            assert assert_same_bits(v, w, PROBS), (n, trial)


def test_exact_steps_land_on_the_step():
    """Hand computation: values 1..10, weight 1/10 each: P50 is 5 (cumulative 0.5 reached at 5,
    not 6), P90 is 9, P10 is 1, P0 the smallest, P100 the largest."""
    v = np.arange(10, 0, -1, dtype=float)  # descending: the order does not matter
    w = np.full(10, 0.1)
    got, decided = select(v, w, [0.5, 0.9, 0.1, 0.0, 1.0])
    assert decided
    assert got.tolist() == [5.0, 9.0, 1.0, 1.0, 10.0]


def test_ties_zero_weights_and_one_value():
    assert_same_bits(np.array([3.5]), np.array([0.2]), PROBS)
    assert_same_bits(np.array([3.5]), np.array([0.0]), PROBS)  # total 0: the target is 0, the first value
    v = np.array([2.0, 1.0, 2.0, 2.0, 1.0, 3.0, 2.0, 0.5])
    assert_same_bits(v, np.array([0.0, 0.1, 0.2, 0.0, 0.1, 0.3, 0.3, 0.0]), PROBS)  # zero weights, ties
    assert_same_bits(np.full(500, 7.0), np.full(500, 0.002), PROBS)  # one tie group
    assert_same_bits(np.zeros(300), np.zeros(300), PROBS)  # all weights zero
    # zero weights at both ends: P0 is the smallest value even with no weight
    got, _ = select(np.array([0.1, 5.0, 2.0, 9.0]), np.array([0.0, 0.5, 0.5, 0.0]), [0.0, 1.0])
    assert got.tolist() == [0.1, 5.0]


def test_odd_inputs_go_to_the_sort():
    """NaN values, -0.0 next to 0.0 (ties of other bits), negative weights and an infinite total
    are left to the sort, whose answer is the definition's."""
    v = np.array([0.0, -0.0, 1.0, 0.0, -0.0, 2.0])
    w = np.full(6, 1.0 / 6)
    assert not assert_same_bits(v, w, PROBS)
    assert not assert_same_bits(np.array([1.0, np.nan, 0.5]), np.full(3, 1.0), [0.5, 0.9])
    assert not assert_same_bits(np.array([1.0, 2.0, 0.5]), np.array([1.0, -0.5, 1.0]), [0.5, 0.9])
    assert not assert_same_bits(np.array([1.0, 2.0, 0.5]), np.array([1.0, np.inf, 1.0]), [0.5, 0.9])


def test_sums_within_rounding_of_the_target_defer_to_the_sort():
    """A cumulative weight within a few ulps of the target is where another order of the sum
    could decide otherwise: there the sort decides (the result is the definition's either way)."""
    w2 = 0.5
    w1 = 0.5
    for _ in range(50):  # w1 = 0.5 (w1 + w2) (1 - 1e-12): the first value's weight is the P50 target
        w1 = 0.5 * (w1 + w2) * (1.0 - 1e-12)
    deferred = 0
    for shift in range(-4, 5):
        w1s = w1
        for _ in range(abs(shift)):
            w1s = math.nextafter(w1s, math.inf if shift > 0 else -math.inf)
        deferred += not assert_same_bits(np.array([2.0, 1.0, 3.0]), np.array([w2, w1s, 0.0]), [0.5])
    assert deferred > 0


def test_many_values_with_exact_steps_stay_right():
    """Beyond ~4,000 values the rounding band can cover an exact step: the sort decides there."""
    rng = np.random.default_rng(3)
    n = 10_000
    v = rng.lognormal(size=n)
    w = rng.integers(0, 4, size=n) / 1000.0
    assert_same_bits(v, w, PROBS)


values_st = st.one_of(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, -1.0, 1e-300, 3e-10]), min_size=1, max_size=200),  # ties
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=200),
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(values_st, st.data(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_selection_equals_the_sort_on_random_inputs(vals, data, probs):
    v = np.array(vals) + 0.0  # no -0.0 (the sort's own case, tested above)
    n = v.size
    kind = data.draw(st.sampled_from(["k/1000", "floats", "counts"]))
    if kind == "k/1000":
        w = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))) / 1000.0
    elif kind == "counts":
        w = _accumulated(np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))), 1000)
    else:
        w = np.array(data.draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), min_size=n, max_size=n)))
    assert_same_bits(v, w, probs + [0.5, 0.9])
