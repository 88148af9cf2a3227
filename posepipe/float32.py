"""MediaPipe's single-precision arithmetic, reproduced where an ulp matters.

MediaPipe's C++ calculators compute in ``float`` and call glibc's ``expf`` (through
``std::exp(float)``); numpy's float32 ``exp`` is another implementation and differs from it
in the last bit for about 40 % of inputs. Tracking carries every such bit into the next
frame's crop, so the sigmoids that place landmarks use :func:`expf`, glibc's algorithm
(ARM's optimized routines: a 32-entry table of 2^(i/32) and a cubic in double precision)
written out in numpy. It equals glibc's ``expf`` bit for bit (``tests/test_float32.py``).

The few scalar functions on each crop's angle (``atan2f``, ``cosf``, ``sinf``) are glibc's
own, called through ctypes where the C library has them, and otherwise the correctly rounded
value, which glibc's equal in all but rare last bits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

_TABLE_BITS = 5
_N = 1 << _TABLE_BITS
# __exp2f_data.tab: the bits of 2^(i/N), less i << (52 - TABLE_BITS), so that adding k << (52 -
# TABLE_BITS) gives 2^(k/N) for any integer k.
_TABLE = np.array([
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
], dtype=np.uint64)
_SHIFT = float.fromhex("0x1.8p+52")
_INV_LN2_N = float.fromhex("0x1.71547652b82fep+0") * _N
_C0 = float.fromhex("0x1.c6af84b912394p-5") / _N / _N / _N
_C1 = float.fromhex("0x1.ebfce50fac4f3p-3") / _N / _N
_C2 = float.fromhex("0x1.62e42ff0c52d6p-1") / _N


def expf(x: np.ndarray) -> np.ndarray:
    """glibc's ``expf`` of a float32 array (float32 result)."""
    x = np.asarray(x, np.float32)
    xd = x.astype(np.float64)
    z = _INV_LN2_N * xd
    kd = z + _SHIFT  # rounds z to an integer, ties to even, held in the low bits
    ki = kd.view(np.uint64)
    kd = kd - _SHIFT
    r = z - kd
    s = (_TABLE[ki % _N] + (ki << np.uint64(52 - _TABLE_BITS))).view(np.float64)
    y = (_C0 * r + _C1) * (r * r) + (_C2 * r + 1.0)
    with np.errstate(over="ignore"):
        out = (y * s).astype(np.float32)
    # Beyond about ±88 glibc takes its overflow and underflow paths; there the correctly
    # rounded value is what it returns (inf, 0, or a subnormal).
    far = np.abs(x) >= np.float32(88.0)
    if far.any():
        with np.errstate(over="ignore", under="ignore"):
            out[far] = np.exp(xd[far]).astype(np.float32)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    """MediaPipe's ``1.0f / (1.0f + std::exp(-x))`` in float32."""
    x = np.asarray(x, np.float32)
    one = np.float32(1.0)
    with np.errstate(over="ignore"):
        return one / (one + expf(-x))


def _libm():
    try:
        return ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    except OSError:
        return None


def _libm_function(library, name: str, arguments: int):
    function = getattr(library, name, None)
    if function is not None:
        function.restype = ctypes.c_float
        function.argtypes = [ctypes.c_float] * arguments
    return function


_LIBM = _libm()
_atan2f, _cosf, _sinf = (_libm_function(_LIBM, name, n) for name, n in (("atan2f", 2), ("cosf", 1), ("sinf", 1)))


def atan2f(y: float, x: float) -> np.float32:
    """C's ``atan2f`` (``std::atan2`` on floats)."""
    if _atan2f is not None:
        return np.float32(_atan2f(y, x))
    return np.float32(math.atan2(np.float32(y), np.float32(x)))


def cosf(x: float) -> np.float32:
    """C's ``cosf``."""
    return np.float32(_cosf(x)) if _cosf is not None else np.float32(math.cos(np.float32(x)))


def sinf(x: float) -> np.float32:
    """C's ``sinf``."""
    return np.float32(_sinf(x)) if _sinf is not None else np.float32(math.sin(np.float32(x)))
