"""Branch-free ``exp`` and ``log1p`` for numba loops that must vectorise.

numba has no vector math library here (SVML is not installed), so a loop that calls
``math.exp`` or ``math.log1p`` runs one element at a time. The functions below use only
arithmetic, selects and bit casts, so the loop vectoriser can run them 4 or 8 lanes wide; they
agree with the C library to about one unit in the last place (checked against numpy in
``tests/test_condtables.py``). Use them inside ``@jit`` kernels (they are ``inline="always"``).

- :func:`exp_fast`: Cody and Waite range reduction ``y = n ln 2 + r`` (ln 2 split in two, so
  that ``n ln2_hi`` is exact), the Taylor polynomial of degree 13 on ``|r| <= ln(2)/2``
  (remainder < 5e-18 relative, Estrin's scheme), times ``2^n`` built from its exponent bits (``n``
  read from the bits of the rounding sum, without a float -> int conversion).
- :func:`log_fast`: ``log(x)`` for positive normal ``x`` by the same reduction and polynomial as the
  second branch of :func:`log1p_fast`.
- :func:`log1p_fast`: for ``u`` below :data:`LOG1P_SERIES_MAX` the 6-term series of log1p
  (truncation < ``u^6/7``); above, ``log(w) + (u - (w - 1))/w`` with ``w = 1 + u`` (the second
  term restores what rounding ``1 + u`` lost) and ``log(w) = k ln 2 + log(m)``, ``m`` in
  ``[sqrt(2)/2, sqrt(2))``, ``log(m) = 2 atanh(s)``, ``s = (m - 1)/(m + 1)``, by the classic
  minimax polynomial in ``s^2`` of degree 7 (error < 2^-58; the coefficients of the public-domain
  fdlibm ``e_log.c``, Sun Microsystems 1993).

Two float32 twins, for loops whose results are kept to far less than float64's precision (the death
tables keep 16 significant bits, :func:`hra.integration.kernels.round_table`): a float32 lane is half
the width of a float64 one, so a vector instruction does twice the values (8 per AVX2 register) with
a polynomial of half the degree. Both are within ~1 float32 ulp (6e-8 relative) of the exact value:

- :func:`expf_fast`: the same reduction in float32 (ln 2 split as 0.693359375 - 2.12194440e-4, the
  split of Cephes ``expf``), the minimax polynomial of degree 6 of Cephes ``expf.c`` (S. L. Moshier,
  1984-1995, public domain), ``2^n`` from exponent bits; 0 below -87 (float32's normal range).
- :func:`logf_fast`: ``log(x)`` for positive normal float32 ``x``: ``k ln 2 + log(m)``, ``m`` in
  ``[sqrt(2)/2, sqrt(2))``, ``log(1 + f)`` by the polynomial of degree 9 of Cephes ``logf.c``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir  # noqa: F401  (numba's intrinsics build LLVM IR)
from numba import types
from numba.extending import intrinsic

from hra.core._numba import jit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1.5 * 2^52: ``x + _ROUND - _ROUND`` rounds x to the nearest integer.
_ROUND = 6755399441055744.0
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND
#: Below this argument :func:`exp_fast` returns 0 (2^n with n >= -1022 stays a normal number).
_EXP_MIN = -708.0
#: Below this argument :func:`log1p_fast` takes log1p(u) from its series (6 terms: < 1.5e-19 relative).
LOG1P_SERIES_MAX = 1e-3
_SQRT2 = 1.4142135623730951
_TWO52 = 4503599627370496.0
_EXP_BITS = 0x4330000000000000  # the bits of 2^52
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_C3 = 1.0 / 3.0
_C6 = 1.0 / 6.0


def _bitcast(src, dst, doc: str):
    """An intrinsic reinterpreting the bits of a ``src`` scalar as a ``dst`` scalar (an LLVM bit cast,
    which the loop vectoriser keeps in vector lanes)."""

    @intrinsic
    def cast(typingctx, x):
        sig = dst(src)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return sig, codegen

    cast.__doc__ = doc
    return cast


bits_as_float = _bitcast(types.int64, types.float64, "The float64 whose IEEE-754 bits are the int64 ``bits``.")
float_bits = _bitcast(types.float64, types.int64, "The IEEE-754 bits of the float64 ``x`` as an int64.")
bits_as_float32 = _bitcast(types.int32, types.float32, "The float32 whose IEEE-754 bits are the int32 ``bits``.")
float32_bits = _bitcast(types.float32, types.int32, "The IEEE-754 bits of the float32 ``x`` as an int32.")

_F32 = np.float32
_LOG2E_F = _F32(_LOG2E)
#: 1.5 * 2^23: ``x + _ROUND_F - _ROUND_F`` rounds a float32 x to the nearest integer.
_ROUND_F = _F32(12582912.0)
_ROUND_F_BITS = np.int32(0x4B400000)  # the bits of _ROUND_F
_LN2_HI_F = _F32(0.693359375)  # 8 significant bits: n * _LN2_HI_F is exact for |n| < 2^16
_LN2_LO_F = _F32(-2.12194440e-4)
#: Below this argument :func:`expf_fast` returns 0 (2^n with n >= -126 stays a normal float32).
EXPF_MIN = _F32(-87.0)
_EXPF_P = tuple(_F32(c) for c in (5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3,
                                  1.3981999507e-3, 1.9875691500e-4))
_LOGF_P = tuple(_F32(c) for c in (3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1,
                                  1.4249322787e-1, -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1,
                                  7.0376836292e-2))
_SQRTH_F = _F32(0.70710678118654752440)
_F32_EXP_MASK = np.int32(0x7F800000)
_F32_MANTISSA = np.int32(0x007FFFFF)
_F32_HALF_BITS = np.int32(0x3F000000)  # the bits of 0.5


@jit(inline="always")
def exp_fast(y):
    """exp(y) for y <= 709 within 1 ulp, 0 for y < -708, without a libm call (module docstring)."""
    t = y * _LOG2E + _ROUND
    n = t - _ROUND
    r = (y - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q1 = 1.0 / 2.0 + (1.0 / 6.0) * r
    q2 = 1.0 / 24.0 + (1.0 / 120.0) * r
    q3 = 1.0 / 720.0 + (1.0 / 5040.0) * r
    q4 = 1.0 / 40320.0 + (1.0 / 362880.0) * r
    q5 = 1.0 / 3628800.0 + (1.0 / 39916800.0) * r
    q6 = 1.0 / 479001600.0 + (1.0 / 6227020800.0) * r
    u = ((q1 + q2 * r2) + (q3 + q4 * r2) * r4) + (q5 + q6 * r2) * r8
    p = 1.0 + (r + r2 * u)
    # n as an integer from t's bits (t = 1.5 2^52 + n: its low bits are n), not by a float -> int64
    # conversion, which AVX2 has no vector instruction for (the same n: 8 % off the R_rup interpolation)
    ni = float_bits(t) - _ROUND_BITS if y >= _EXP_MIN else np.int64(0)
    scale = bits_as_float((ni + 1023) << 52)
    return p * scale if y >= _EXP_MIN else 0.0


@jit(inline="always")
def log_fast(x):
    """log(x) for positive normal float64 ``x`` within ~1 ulp, branch-free (module docstring)."""
    bits = float_bits(x)
    # the exponent as a float without an int -> float conversion (AVX2 has none): 2^52 + e built
    # from its bits, minus 2^52
    e = bits_as_float((bits >> 52) | _EXP_BITS) - (_TWO52 + 1023.0)
    m = bits_as_float((bits & _MANTISSA) | _ONE_BITS)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = e + 1.0 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    z2 = z * z
    r = z * (_LG1 + z2 * (_LG3 + z2 * (_LG5 + z2 * _LG7))) + z2 * (_LG2 + z2 * (_LG4 + z2 * _LG6))
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@jit(inline="always")
def log1p_fast(u):
    """log1p(u) for u >= 0 (finite) within 1 ulp, branch-free (module docstring)."""
    series = u * (1.0 - u * (0.5 - u * (_C3 - u * (0.25 - u * (0.2 - u * _C6)))))
    w = 1.0 + u
    correction = (u - (w - 1.0)) / w
    return series if u < LOG1P_SERIES_MAX else log_fast(w) + correction


@jit(inline="always")
def expf_fast(y):
    """exp(y) of a float32 ``y <= 88`` as a float32, within ~1 float32 ulp; 0 below :data:`EXPF_MIN`
    (module docstring). Branch-free: a loop of it vectorises 8 lanes wide with AVX2."""
    t = y * _LOG2E_F + _ROUND_F
    n = t - _ROUND_F
    r = (y - n * _LN2_HI_F) - n * _LN2_LO_F
    r2 = r * r
    p0, p1, p2, p3, p4, p5 = _EXPF_P
    u = ((p0 + p1 * r) + r2 * (p2 + p3 * r)) + (r2 * r2) * (p4 + p5 * r)
    p = _F32(1.0) + (r + r2 * u)
    ni = float32_bits(t) - _ROUND_F_BITS if y >= EXPF_MIN else np.int32(0)
    scale = bits_as_float32((ni + np.int32(127)) << np.int32(23))
    return p * scale if y >= EXPF_MIN else _F32(0.0)


@jit(inline="always")
def logf_fast(x):
    """log(x) of a positive normal float32 ``x`` as a float32, within ~1 float32 ulp (module
    docstring). Branch-free (selects and bit casts)."""
    bits = float32_bits(x)
    e = _F32(((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126))
    m = bits_as_float32((bits & _F32_MANTISSA) | _F32_HALF_BITS)  # in [0.5, 1)
    small = m < _SQRTH_F
    e = e - _F32(1.0) if small else e
    f = (m + m if small else m) - _F32(1.0)
    z = f * f
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = _LOGF_P
    q = ((((((((c8 * f + c7) * f + c6) * f + c5) * f + c4) * f + c3) * f + c2) * f + c1) * f + c0)
    y = f * z * q + e * _LN2_LO_F - _F32(0.5) * z
    return (f + y) + e * _LN2_HI_F
