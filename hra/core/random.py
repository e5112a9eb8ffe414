"""Random-stream primitives shared by both engines (one place).

Every random draw of the project comes from a stream keyed by (seed, purpose, index), so results
do not depend on chunking, building order or the number of workers:

- :func:`seed_key`: the 64-bit key of a (seed, purpose) stream (numpy ``SeedSequence``);
- :func:`splitmix64`, :func:`counter_uniform`: a counter-based uniform from (key, key, counter)
  (SplitMix64 finaliser, Steele, Lea & Flood 2014), usable inside numba kernels;
- :func:`draw_candidate`: a building's typology candidate for one realisation (inverse CDF at
  the counter-based uniform), the same draw in the integration and the event-based engine;
- :func:`normal_cdf`: Phi(z) for the kernels.

The purposes (``PURPOSE_*``) are registered in :mod:`hra.core.logictree`.
"""

from __future__ import annotations

import math

import numpy as np

from hra.core._numba import jit

SQRT2 = math.sqrt(2.0)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@jit
def normal_cdf(z):
    """Standard normal CDF Phi(z) = erfc(-z / sqrt 2) / 2."""
    return 0.5 * math.erfc(-z / SQRT2)


@jit
def splitmix64(x):
    """SplitMix64 finaliser (Steele et al. 2014): a bijective 64-bit mix. uint64 -> uint64."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def counter_uniform(seed_key, building_key, counter):
    """Uniform [0, 1) from (seed key, building key, counter): a counter-based stream."""
    h = splitmix64(seed_key ^ building_key)
    h = splitmix64(h ^ (np.uint64(counter) * _GOLDEN))
    return np.float64(h >> _S11) * (1.0 / 9007199254740992.0)


@jit
def draw_candidate(seed_key, building_key, counter, typ_prob_row, n_candidates):
    """Typology candidate drawn for (building, realisation ``counter``): inverse CDF of the
    candidates' probabilities at the counter-based uniform. Shared by the integration and the
    event-based engines, so a realisation picks the same typology in both."""
    x = counter_uniform(seed_key, building_key, counter)
    cum = 0.0
    for j in range(n_candidates):
        cum += typ_prob_row[j]
        if x < cum:
            return j
    return n_candidates - 1


def seed_key(seed: int, purpose: int) -> np.uint64:
    """64-bit key of a (seed, purpose) stream for the counter-based draws in the kernels."""
    ss = np.random.SeedSequence(seed, spawn_key=(purpose,))
    return np.uint64(ss.generate_state(1, dtype=np.uint64)[0])
