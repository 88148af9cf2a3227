"""posepipe.float32: glibc's expf written out in numpy, against the C library's own."""

import ctypes
import ctypes.util

import numpy as np

from posepipe.float32 import expf, sigmoid


def c_expf():
    try:
        function = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6").expf
    except (OSError, AttributeError):
        return None
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


def test_expf_is_the_c_librarys_bit_for_bit():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-30, 30, 60000), rng.normal(0, 2, 30000), rng.uniform(-104, 89, 10000),
                        [0.0, -0.0, 1.0, -1.0, 88.0, -88.0, 88.7, -103.9, 1e-30, -1e-30]]).astype(np.float32)
    ours = expf(x)
    library = c_expf()
    if library is not None:  # glibc (Linux): its expf, which MediaPipe's calculators call
        theirs = np.array([library(float(v)) for v in x], np.float32)
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    else:  # another C library: at most one float ulp from the exact value
        exact = np.exp(x.astype(np.float64))
        assert (np.abs(ours - exact) <= np.spacing(exact.astype(np.float32))).all()


def test_sigmoid_is_mediapipes_formula():
    x = np.linspace(-40, 40, 8001, dtype=np.float32)
    s = sigmoid(x)
    one = np.float32(1)
    assert s.dtype == np.float32 and np.array_equal(s, one / (one + expf(-x)))
    assert (np.diff(s) >= 0).all() and s[0] > 0 and s[-1] == 1
