"""``auto``'s measured choice of runtime: the CPU description it is keyed on, the key, and
the cache (miss, hit, another CPU or runtime version, a busy machine), on the real models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from posepipe import PoseLandmarker
from posepipe.models import backend_choice, cpu
from posepipe.models.assets import sha256_of
from posepipe.models.backend_choice import (RETRY_S, TIE_MARGIN, choice_key, choose, key_digest,
                                     verdict_path, winner)
from posepipe.models.cpu import cpu_info, describe, installed_version, parse_cpuinfo, runtime_versions
from posepipe.models.runtime import LiteRTModel, OnnxRuntimeModel, load_model

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7763 64-Core Processor
stepping\t: 1
flags\t\t: fpu sse sse2 avx fma f16c avx2 sha_ni

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu sse sse2 avx fma f16c avx2 sha_ni
"""

GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp i8mm sve
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""

CLASSES = {"litert": LiteRTModel, "onnxruntime": OnnxRuntimeModel}


def test_cpuinfo_x86_and_arm():
    zen3 = parse_cpuinfo(ZEN3)
    assert zen3.model_name == "AMD EPYC 7763 64-Core Processor"
    assert (zen3.vendor, zen3.family, zen3.model) == ("AuthenticAMD", "25", "1")
    assert (zen3.avx2, zen3.avx512, zen3.vnni) == (True, False, False)
    assert zen3.flags == {"avx", "fma", "f16c", "avx2"}  # only flags that pick kernels
    arm = parse_cpuinfo(GRAVITON)
    assert arm.model_name == "Arm implementer 0x41 part 0xd40"
    assert (arm.avx2, arm.avx512, arm.vnni) == (False, False, False)
    assert {"asimddp", "i8mm", "sve"} <= arm.flags
    unknown = parse_cpuinfo("")
    assert unknown.flags is None and unknown.avx2 is None and unknown.model_name


def test_this_cpu_is_described():
    cpu = cpu_info()
    line = describe(cpu)
    assert cpu.model_name in line and "AVX2" in line and "AVX-512" in line and "VNNI" in line
    assert cpu.usable_cores >= 1 and cpu.logical_cores >= cpu.usable_cores
    versions = runtime_versions()
    assert versions["onnxruntime"] and f"onnxruntime {versions['onnxruntime']}" in line
    if Path("/proc/cpuinfo").is_file():
        assert cpu.flags is not None and cpu.avx2 is not None


def test_runtime_versions_are_the_installed_ones():
    """Read from the dist-info folders without importlib.metadata, they say what it says."""
    from importlib import metadata

    versions = runtime_versions()
    assert versions["onnxruntime"] == metadata.version("onnxruntime")
    assert versions["ai-edge-litert"] == metadata.version("ai-edge-litert")
    assert installed_version(("opencv-python-headless", "opencv-python"), "cv2") in (
        metadata.version(d) for d in ("opencv-python-headless", "opencv-python") if _installed(d))
    assert installed_version(("onnxruntime-gpu", "onnxruntime"), "onnxruntime") == metadata.version("onnxruntime")
    assert installed_version(("numpy",), "no_such_module_here") is None


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_key_changes_with_cpu_versions_model_and_threads():
    cpu, versions = cpu_info(), runtime_versions()
    base = choice_key("ab" * 32, (2,), 0, cpu, versions)
    assert key_digest(base) == key_digest(choice_key("ab" * 32, (2,), 0, cpu, versions))
    others = [
        choice_key("ab" * 32, (2,), 0, replace(cpu, flags=frozenset({"avx", "avx2", "fma"})), versions),
        choice_key("ab" * 32, (2,), 0, replace(cpu, model_name="Another CPU"), versions),
        choice_key("ab" * 32, (2,), 0, replace(cpu, usable_cores=cpu.usable_cores + 1), versions),
        choice_key("ab" * 32, (2,), 0, cpu, {**versions, "onnxruntime": "0.0.1"}),
        choice_key("ab" * 32, (2,), 0, cpu, {**versions, "ai-edge-litert": "0.0.1"}),
        choice_key("cd" * 32, (2,), 0, cpu, versions),
        choice_key("ab" * 32, (), 0, cpu, versions),
        choice_key("ab" * 32, (2,), 1, cpu, versions),
    ]
    digests = {key_digest(k) for k in others}
    assert len(digests) == len(others) and key_digest(base) not in digests


@pytest.fixture
def fresh_process(monkeypatch):
    """Forget verdicts measured earlier in this process, as a new process would."""
    monkeypatch.setattr(backend_choice, "_MEASURED", {})


def opener(path: Path, cache: Path, drop=()):
    opened = []

    def open_backend(name):
        opened.append(name)
        return load_model(path, name, cache, drop_outputs=drop)
    return open_backend, opened


def test_miss_measures_and_caches_then_hit_loads_only_the_winner(model_paths, tmp_path, fresh_process):
    detector = model_paths[0]
    key = choice_key(sha256_of(detector), (), 0)
    open_backend, opened = opener(detector, tmp_path)
    first = choose(detector, (), 0, tmp_path, open_backend, key, quiet=1.0)  # any load counts as quiet
    assert first.source == "measured" and sorted(opened) == ["litert", "onnxruntime"]
    record = json.loads(first.path.read_text())
    best = record["best_ms"]
    assert record["quiet"] and record["key"] == key and record["attempts"] == 1
    assert first.backend == record["backend"] == winner(best) and all(v > 0 for v in best.values())
    assert isinstance(first.model, CLASSES[first.backend])
    assert record["runs"] >= backend_choice.MIN_RUNS

    backend_choice._MEASURED.clear()  # a new process: the verdict comes from the file
    open_backend, opened = opener(detector, tmp_path)
    again = choose(detector, (), 0, tmp_path, open_backend, key)
    assert again.source == "cache" and again.backend == first.backend and opened == [first.backend]
    assert json.loads(again.path.read_text()) == record  # not measured again
    x = np.zeros((1, 3, *again.model.input_size), np.float32)
    assert [o.shape for o in again.model.run(x)] == [o.shape for o in first.model.run(x)]

    # another CPU, or another runtime version: another file, measured afresh
    for other in (choice_key(sha256_of(detector), (), 0, replace(cpu_info(), flags=frozenset({"avx2"}))),
                  choice_key(sha256_of(detector), (), 0, versions={**runtime_versions(), "onnxruntime": "0.0.1"})):
        open_backend, opened = opener(detector, tmp_path)
        result = choose(detector, (), 0, tmp_path, open_backend, other, quiet=1.0)
        assert result.source == "measured" and sorted(opened) == ["litert", "onnxruntime"]
        assert result.path != first.path and json.loads(result.path.read_text())["key"] == other
    assert len(list((tmp_path / "auto-backend").glob("*.json"))) == 3


def test_unreadable_or_foreign_record_is_measured_again(model_paths, tmp_path, fresh_process):
    detector = model_paths[0]
    key = choice_key(sha256_of(detector), (), 0)
    path = verdict_path(tmp_path, detector.stem, key)
    path.parent.mkdir(parents=True)
    for text in ("{not json", json.dumps({"backend": "litert", "quiet": True, "key": {**key, "threads": 3}}),
                 json.dumps({"backend": "tensorflow", "quiet": True, "key": key})):
        path.write_text(text)
        backend_choice._MEASURED.clear()
        result = choose(detector, (), 0, tmp_path, opener(detector, tmp_path)[0], key, quiet=1.0)
        assert result.source == "measured" and json.loads(path.read_text())["key"] == key


def test_busy_machine_decides_by_median_for_an_hour_then_measures_again(model_paths, tmp_path, fresh_process):
    if cpu.cpu_ticks() is None:
        pytest.skip("no /proc/stat: whether the machine was busy is unknown here")
    landmark = model_paths[1]
    drop = (2,)
    key = choice_key(sha256_of(landmark), drop, 0)
    # quiet=0.0: no measurement counts as quiet, as on a machine other processes keep busy
    result = choose(landmark, drop, 0, tmp_path, opener(landmark, tmp_path, drop)[0], key, quiet=0.0)
    record = json.loads(result.path.read_text())
    assert result.source == "measured" and not record["quiet"] and record["attempts"] == 1
    assert record["by"] == "median_ms" and result.backend == record["backend"] == winner(record["median_ms"])
    assert isinstance(result.model, CLASSES[result.backend])

    backend_choice._MEASURED.clear()  # another process within the hour: the same verdict, not measured
    open_backend, opened = opener(landmark, tmp_path, drop)
    assert choose(landmark, drop, 0, tmp_path, open_backend, key, quiet=0.0).source == "cache"
    assert opened == [result.backend]

    record["time"] -= RETRY_S + 1  # an hour later: measured again, quiet this time, and settled
    result.path.write_text(json.dumps(record))
    backend_choice._MEASURED.clear()
    again = choose(landmark, drop, 0, tmp_path, opener(landmark, tmp_path, drop)[0], key, quiet=1.0)
    record = json.loads(again.path.read_text())
    assert again.source == "measured" and record["quiet"] and record["attempts"] == 2 and record["by"] == "best_ms"
    assert again.backend == record["backend"] == winner(record["best_ms"])
    record["time"] -= 10 * RETRY_S  # a quiet verdict does not expire
    again.path.write_text(json.dumps(record))
    backend_choice._MEASURED.clear()
    assert choose(landmark, drop, 0, tmp_path, opener(landmark, tmp_path, drop)[0], key).source == "cache"


def test_load_model_auto_goes_through_the_cache_and_named_backends_do_not(model_paths, tmp_path):
    detector = model_paths[0]
    for name, cls in CLASSES.items():
        assert isinstance(load_model(detector, name, tmp_path), cls)
    assert not (tmp_path / "auto-backend").exists()
    model = load_model(detector, "auto", tmp_path)
    records = [json.loads(p.read_text()) for p in (tmp_path / "auto-backend").glob("pose_detection-*.json")]
    assert len(records) == 1 and isinstance(model, CLASSES[records[0]["backend"]])
    assert records[0]["key"]["cpu"] == cpu_info().key() and records[0]["key"]["versions"] == runtime_versions()


def test_backend_option_still_forces_one():
    for name, cls in CLASSES.items():
        with PoseLandmarker(backend=name) as lm:
            assert isinstance(lm.detector.model, cls) and isinstance(lm.landmark_model.model, cls)


def test_onnx_runtime_must_win_clearly():
    """A tie alone goes to LiteRT: beside the pipeline's other threads it loses less (docs/speed.md)."""
    assert winner({"litert": 5.003, "onnxruntime": 4.98}) == "litert"  # this Zen 4, quiet, 14:04 UTC
    assert winner({"litert": 5.0, "onnxruntime": 6.0}) == "litert"
    assert winner({"litert": 8.0, "onnxruntime": 5.0}) == "onnxruntime"
    just_inside = 5.0 * (1 - TIE_MARGIN) * 1.001
    assert winner({"litert": 5.0, "onnxruntime": just_inside}) == "litert"
    assert winner({"litert": 5.0, "onnxruntime": 5.0 * (1 - TIE_MARGIN) * 0.999}) == "onnxruntime"
