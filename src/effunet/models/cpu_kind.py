"""The kind of CPU a job trains on, from /proc/cpuinfo's flags, and the TensorFlow settings that
train fastest on it (measured in benchmarks/README.md, "Models"; issue 23 item 2).

Kinds, newest first: ``amx`` (AMX tiles: Intel Sapphire Rapids and later), ``avx512`` (AVX-512
foundation: AMD Zen 4 and later, Intel Skylake-SP and later), ``avx2`` (AVX2 and FMA: older AMD
EPYC, Intel Haswell to Coffee Lake), ``other``. A limit on oneDNN's instruction set
(``ONEDNN_MAX_CPU_ISA``, how benchmarks/bench_models.py --isa avx2 emulates an AVX2-only CPU) lowers
the kind to what oneDNN may use, as on such a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KINDS = ("amx", "avx512", "avx2", "other")
# ONEDNN_MAX_CPU_ISA values (oneDNN's names, case-insensitive) and the kind they leave at most.
_ISA_LIMITS = {"avx2": "avx2", "avx2_vnni": "avx2", "avx2_vnni_2": "avx2", "avx": "other", "sse41": "other"}


@dataclass(frozen=True)
class CpuSettings:
    """How TensorFlow runs on a CPU kind: its inter-op threads (independent ops side by side) at
    most, and whether the training step is compiled with XLA."""

    inter_op_threads: int = 2
    jit_compile: bool = False


# The fastest measured on each kind (benchmarks/README.md, "Models"); kinds not measured keep the
# TensorFlow defaults effunet used before.
SETTINGS = {kind: CpuSettings() for kind in KINDS}


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's flags in `cpuinfo`; empty where there is no such file (not Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_kind(flags: Iterable[str] | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The kind of this CPU (`flags`: its /proc/cpuinfo flags, read when None), lowered by a
    ``ONEDNN_MAX_CPU_ISA`` limit in `env`."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    if "amx_tile" in flags:
        kind = "amx"
    elif "avx512f" in flags:
        kind = "avx512"
    elif {"avx2", "fma"} <= flags:
        kind = "avx2"
    else:
        kind = "other"
    limit = _ISA_LIMITS.get(env.get("ONEDNN_MAX_CPU_ISA", "").strip().lower())
    if limit is not None and KINDS.index(limit) > KINDS.index(kind):
        kind = limit
    return kind


def cpu_settings(flags: Iterable[str] | None = None, env: Mapping[str, str] = os.environ) -> CpuSettings:
    """The settings for this CPU's kind (`cpu_kind`)."""
    return SETTINGS[cpu_kind(flags, env)]
