"""The CPU this process runs on, and the runtimes' versions: what a speed figure depends on.

Benchmarks print it (``describe()``) and the ``auto`` backend keys its measured choice on it
(``backend_choice``). Linux: ``/proc/cpuinfo``; elsewhere ``platform.processor()`` and no
instruction-set flags (``None``: unknown, not absent).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

# Instruction-set extensions that change which kernels XNNPACK and ONNX Runtime's MLAS pick
# (x86: AVX2/FMA, AVX-512, VNNI int8 dot products, AMX; Arm: dot products, i8mm, SVE). The
# measured ``auto`` choice is keyed on these, so a machine with another set measures afresh.
KERNEL_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
                "asimd", "asimddp", "asimdhp", "i8mm", "sve", "sve2", "bf16")


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    vendor: str = ""
    family: str = ""  # x86 family / model / stepping: a virtual machine may hide the model name
    model: str = ""   # ("AMD EPYC"), these still tell Zen 3 from Zen 4
    stepping: str = ""
    logical_cores: int = 1  # os.cpu_count()
    usable_cores: int = 1   # the ones this process may run on (affinity, containers' cpusets)
    flags: frozenset[str] | None = field(default=None)  # of KERNEL_FLAGS; None where unknown

    def has(self, *names: str) -> bool | None:
        """Whether any of ``names`` is present; None where the flags are unknown."""
        return None if self.flags is None else any(n in self.flags for n in names)

    @property
    def avx2(self) -> bool | None:
        return self.has("avx2")

    @property
    def avx512(self) -> bool | None:
        return self.has("avx512f")

    @property
    def vnni(self) -> bool | None:
        return self.has("avx512_vnni", "avx_vnni")

    def key(self) -> dict:
        """What identifies this CPU for a speed measurement (JSON-ready)."""
        return {"model_name": self.model_name, "vendor": self.vendor, "family": self.family, "model": self.model,
                "stepping": self.stepping, "usable_cores": self.usable_cores,
                "flags": None if self.flags is None else sorted(self.flags)}


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_cpuinfo(text: str) -> CpuInfo:
    """A ``/proc/cpuinfo`` text (x86 or Arm), first processor's fields."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: the others are alike
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    name = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or ""
    if not name and "cpu implementer" in fields:  # Arm: no model name, an implementer and a part number
        name = f"Arm implementer {fields['cpu implementer']} part {fields.get('cpu part', '?')}"
    return CpuInfo(model_name=name or platform.processor() or platform.machine() or "unknown CPU",
                   vendor=fields.get("vendor_id", fields.get("cpu implementer", "")),
                   family=fields.get("cpu family", fields.get("cpu architecture", "")),
                   model=fields.get("model", fields.get("cpu part", "")),
                   stepping=fields.get("stepping", fields.get("cpu revision", "")),
                   logical_cores=os.cpu_count() or 1, usable_cores=_usable_cores(),
                   flags=frozenset(flags & set(KERNEL_FLAGS)) if flags else None)


_CPU: CpuInfo | None = None


def cpu_info() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    global _CPU
    if _CPU is None:
        try:
            _CPU = parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:  # not Linux
            _CPU = CpuInfo(model_name=platform.processor() or platform.machine() or "unknown CPU",
                           logical_cores=os.cpu_count() or 1, usable_cores=_usable_cores())
    return _CPU


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of ONNX Runtime (any of its builds) and ai-edge-litert; None where absent."""
    return dict(_runtime_versions())


# Every build of ONNX Runtime installs the module ``onnxruntime``.
_ONNXRUNTIME_BUILDS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


@functools.lru_cache(maxsize=1)
def _runtime_versions() -> dict[str, str | None]:  # read once a process
    return {"onnxruntime": installed_version(_ONNXRUNTIME_BUILDS, "onnxruntime"),
            "ai-edge-litert": installed_version(("ai-edge-litert",), "ai_edge_litert")}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def installed_version(dists: tuple[str, ...], module: str) -> str | None:
    """The installed version of the first of ``dists`` found (distributions that provide
    ``module``); None where the module is absent.

    Read from the ``NAME-VERSION.dist-info`` folder beside the module, where pip and uv put
    it, without importing the module, nor importlib.metadata (36 ms, on every start that opens
    the models) unless the folder is elsewhere.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin:
        found = {}
        try:
            for entry in os.scandir(Path(spec.origin).parent.parent):
                name, _, version = entry.name.removesuffix(".dist-info").partition("-")
                if entry.name.endswith(".dist-info") and version:
                    found[_normalised(name)] = version
        except OSError:
            pass
        for dist in dists:
            if _normalised(dist) in found:
                return found[_normalised(dist)]
    from importlib import metadata

    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def cpu_ticks() -> tuple[int, int, int] | None:
    """(all CPUs' busy ticks, all CPUs' ticks, this process's ticks) from ``/proc``; None elsewhere."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle, iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total, int(own[11]) + int(own[12])  # utime, stime: all threads


def others_share(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> float | None:
    """The share of all CPUs' time that other processes (and a hypervisor's steal) took between
    two ``cpu_ticks()``; None where unknown."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy, total, own = (a - b for a, b in zip(after, before))
    return max(0.0, busy - own) / total


def describe(cpu: CpuInfo | None = None) -> str:
    """One line for benchmark output: the CPU, its cores, AVX2 / AVX-512 / VNNI, the runtimes."""
    cpu = cpu or cpu_info()
    yes = lambda v: "unknown" if v is None else "yes" if v else "no"  # noqa: E731
    ident = f" (family {cpu.family} model {cpu.model})" if cpu.family and cpu.model else ""
    vnni = "unknown" if cpu.flags is None else ", ".join(f for f in ("avx512_vnni", "avx_vnni") if f in cpu.flags) or "no"
    cores = f"{cpu.usable_cores} usable of {cpu.logical_cores}" if cpu.usable_cores != cpu.logical_cores else \
        f"{cpu.logical_cores}"
    runtimes = ", ".join(f"{k} {v or 'absent'}" for k, v in runtime_versions().items())
    return (f"CPU: {cpu.model_name}{ident}, {cores} logical cores, AVX2 {yes(cpu.avx2)}, "
            f"AVX-512 {yes(cpu.avx512)}, VNNI {vnni}; {runtimes}")


if __name__ == "__main__":
    print(describe())
