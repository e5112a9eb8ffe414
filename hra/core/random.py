"""Random-stream primitives shared by both engines (one place).

Every random draw of the project comes from a stream keyed by (seed, purpose, index), so results
do not depend on chunking, building order or the number of workers:

- :func:`seed_key`: the 64-bit key of a (seed, purpose) stream (numpy ``SeedSequence``);
- :func:`splitmix64`, :func:`counter_uniform`: a counter-based uniform from (key, key, counter)
  (SplitMix64 finaliser, Steele, Lea & Flood 2014), usable inside numba kernels;
- :func:`draw_candidate`: a building's typology candidate for one realisation (inverse CDF at
  the counter-based uniform), the same draw in the integration and the event-based engine;
- :func:`event_key`: the key of item ``index`` (an event) of a stream;
- :func:`counter_normal`, :func:`fill_normals`, :func:`event_normals`, :func:`event_uniforms`:
  standard normals (Box-Muller on the counter uniforms) and uniforms of keyed streams;
- :func:`normal_cdf`: Phi(z) for the kernels.

The purposes (``PURPOSE_*``) are registered in :mod:`hra.core.logictree`.
"""

from __future__ import annotations

import math

import numpy as np

from hra.core._numba import jit

SQRT2 = math.sqrt(2.0)
TWO_PI = 2.0 * math.pi
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


def seed_key(seed: int, *spawn_key: int) -> np.uint64:
    """64-bit key of the stream ``(seed, purpose, index...)`` for the counter-based draws in the kernels
    (``SeedSequence(seed, spawn_key=spawn_key)``; ``seed_key(seed)`` is the plain seed's stream)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in spawn_key))
    return np.uint64(ss.generate_state(1, dtype=np.uint64)[0])


@jit
def event_key(base_key, index):
    """64-bit key of event ``index`` of the stream ``base_key`` (uint64, int -> uint64)."""
    return splitmix64(base_key ^ splitmix64(np.uint64(index + 1)))


@jit
def counter_normal(key, tag, counter):
    """Standard normal from two counter uniforms (Box-Muller, cosine branch)."""
    u1 = 1.0 - counter_uniform(key, tag, 2 * counter)  # (0, 1]
    u2 = counter_uniform(key, tag, 2 * counter + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(TWO_PI * u2)


@jit
def fill_normals(key, tag, out):
    """Fill ``out`` (any shape, C order) with standard normals of the stream (key, tag).

    Pairs ``out[2i], out[2i+1]`` are the cosine and sine branches of one Box-Muller transform of
    the uniforms with counters ``2i, 2i+1`` (so ``out[2i] = counter_normal(key, tag, i)``).
    """
    flat = out.reshape(-1)
    n = flat.shape[0]
    for i in range((n + 1) // 2):
        u1 = 1.0 - counter_uniform(key, tag, 2 * i)
        u2 = counter_uniform(key, tag, 2 * i + 1)
        rad = math.sqrt(-2.0 * math.log(u1))
        flat[2 * i] = rad * math.cos(TWO_PI * u2)
        if 2 * i + 1 < n:
            flat[2 * i + 1] = rad * math.sin(TWO_PI * u2)


@jit
def event_normals(keys, tag, counter, out):
    """``out[e] = counter_normal(keys[e], tag, counter)`` for a vector of event keys."""
    for e in range(keys.shape[0]):
        out[e] = counter_normal(keys[e], tag, counter)


@jit
def event_uniforms(keys, tag, counter, out):
    """``out[e] = counter_uniform(keys[e], tag, counter)`` for a vector of event keys."""
    for e in range(keys.shape[0]):
        out[e] = counter_uniform(keys[e], tag, counter)
