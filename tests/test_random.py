"""hra.core.random: the one home of the stream primitives (keys, counter uniforms and normals)."""

import numpy as np

from hra.core import random as rnd
from hra.eventbased import kernels as ek


def test_seed_key_is_the_seed_sequence_state():
    for spawn in ((), (3,), (7, 2025, 4)):
        expected = np.random.SeedSequence(42, spawn_key=spawn).generate_state(1, dtype=np.uint64)[0]
        assert rnd.seed_key(42, *spawn) == expected


def test_event_kernels_use_the_core_primitives():
    for name in ("splitmix64", "counter_uniform", "counter_normal", "event_key", "fill_normals", "event_normals",
                 "event_uniforms", "normal_cdf"):
        assert getattr(ek, name) is getattr(rnd, name), name


def test_fill_normals_pairs_and_moments():
    key, tag = np.uint64(12345), np.uint64(7)
    out = np.empty(20001)
    rnd.fill_normals(key, tag, out)
    assert all(out[2 * i] == rnd.counter_normal(key, tag, i) for i in range(50))
    # hand value: Box-Muller of the first two counter uniforms
    u1 = 1.0 - rnd.counter_uniform(key, tag, 0)
    u2 = rnd.counter_uniform(key, tag, 1)
    assert out[1] == np.sqrt(-2 * np.log(u1)) * np.sin(2 * np.pi * u2)
    assert abs(out.mean()) < 4 / np.sqrt(out.size) and abs(out.std() - 1) < 0.02
    keys = np.array([rnd.event_key(np.uint64(5), i) for i in range(4)], dtype=np.uint64)
    v = np.empty(4)
    rnd.event_normals(keys, tag, 3, v)
    assert np.array_equal(v, [rnd.counter_normal(k, tag, 3) for k in keys])
    rnd.event_uniforms(keys, tag, 3, v)
    assert np.array_equal(v, [rnd.counter_uniform(k, tag, 3) for k in keys]) and len(set(keys.tolist())) == 4
