"""The int8 landmark model computes the same on x86 CPUs without VNNI as on this one.

ONNX Runtime's uint8 × int8 kernels multiply with VNNI's vpdpbusd where the CPU has it and
otherwise (AVX2, early AVX-512) with vpmaddubsw, which adds pairs of products in int16 and
saturates. ``quantize_int8`` stores weights on -64..64 so that no pair can overflow (see
``runtime.WEIGHT_BOUND``). The test runs the model on an AVX2-only CPU emulated by
qemu-user (``qemu-x86_64 -cpu Haswell``: AVX2 and FMA, no AVX-512, no VNNI) and on this
one; CI installs qemu-user (``.ci/run``). Where qemu is missing the test is skipped, unless
``POSEPIPE_REQUIRE_QEMU=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

from posepipe.models.assets import cache_dir
from posepipe.landmarks import MASK_OUTPUT
from posepipe.models.runtime import WEIGHT_BOUND, Int8Ranges, onnx_path_for, quantize_int8

QEMU = shutil.which("qemu-x86_64")
# Haswell as qemu's TCG emulates it (the features it cannot emulate switched off, so that it
# says nothing about them)
HASWELL = "Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm"
# The landmark model's raw coordinates are crop pixels (0..256). Both CPUs accumulate the
# int8 products exactly in int32; only float32 parts (the float stem, requantisation) may
# round differently, by at most a uint8 step here and there. One crop pixel is far above
# that and far below what saturation does (a median 28 px on real crops, 5-7 px for int8
# rounding itself; bench/int8_schemes.py).
AGREE_PX = 1.0

RUN = """
import sys, numpy as np, onnxruntime as ort
from numpy._core._multiarray_umath import __cpu_features__ as cpu
print({k: cpu[k] for k in ("AVX2", "FMA3", "AVX512F", "AVX512VNNI")})
batch = np.load(sys.argv[1])
for model in sys.argv[2:]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = np.concatenate([session.run(None, {session.get_inputs()[0].name: batch[i:i + 1]})[0] for i in range(len(batch))])
    np.save(model + ".out.npy", out)
"""


def qemu_or_skip():
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the saturating int8 kernels are x86's")
    if QEMU is None:
        if os.environ.get("POSEPIPE_REQUIRE_QEMU") == "1":
            pytest.fail("qemu-x86_64 is not installed (apt-get install qemu-user) and POSEPIPE_REQUIRE_QEMU=1")
        pytest.skip("qemu-x86_64 is not installed (apt-get install qemu-user)")


def run_models(prefix: list[str], script, batch_file, models) -> tuple[str, list[np.ndarray]]:
    proc = subprocess.run(prefix + [sys.executable, str(script), str(batch_file), *map(str, models)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs = [np.load(f"{m}.out.npy").reshape(-1, 39, 5)[:, :33, :2] for m in models]
    for m in models:
        os.remove(f"{m}.out.npy")
    return proc.stdout, outs


def test_int8_model_computes_the_same_on_an_avx2_cpu_without_vnni(tmp_path, model_paths):
    qemu_or_skip()
    import onnxruntime.quantization as quantization

    float_model = onnx_path_for(model_paths[1], cache_dir(), (MASK_OUTPUT,))
    rng = np.random.default_rng(3)
    calibration = rng.uniform(0, 1, (3, 3, 256, 256)).astype(np.float32)
    shipped = tmp_path / "int8.onnx"
    ranges = quantize_int8(float_model, shipped, calibration)
    assert ranges.weight_bound == WEIGHT_BOUND == Int8Ranges.of_model(shipped).weight_bound
    # the control: the same ranges with full-range (-127..127) weights, which can saturate
    full_range = tmp_path / "int8_full_range.onnx"
    real = quantization.quantize_static
    quantization.quantize_static = lambda *a, **kw: real(*a, **{**kw, "reduce_range": False})
    try:
        quantize_int8(float_model, full_range, calibration)
    finally:
        quantization.quantize_static = real
    assert Int8Ranges.of_model(full_range).weight_bound == 127

    batch = np.concatenate([rng.uniform(0, 1, (1, 3, 256, 256)), rng.uniform(0, 0.5, (1, 3, 256, 256))])
    np.save(tmp_path / "batch.npy", batch.astype(np.float32))
    script = tmp_path / "run.py"
    script.write_text(RUN)
    models = [shipped, full_range]
    _, native = run_models([], script, tmp_path / "batch.npy", models)
    said, haswell = run_models([QEMU, "-cpu", HASWELL], script, tmp_path / "batch.npy", models)
    assert "'AVX2': True" in said and "'AVX512F': False" in said and "'AVX512VNNI': False" in said, said

    shift = np.linalg.norm(haswell[0] - native[0], axis=2)
    control = np.median(np.linalg.norm(haswell[1] - native[1], axis=2), axis=1)
    print(f"shipped: largest landmark difference {shift.max():.3f} px; "
          f"full-range weights: median {control} px")
    assert shift.max() <= AGREE_PX
    # the emulated CPU is one where full-range weights do saturate: the check above means something
    assert control.min() > AGREE_PX
