"""The CPU kind from /proc/cpuinfo flags (faked here) and the settings chosen for it."""

from __future__ import annotations

import pytest

from effunet.models import cpu_kind

EPYC_ZEN2 = "fpu vme sse4_2 avx f16c fma avx2 bmi2 sha_ni"  # AVX2 only
EPYC_ZEN4 = EPYC_ZEN2 + " avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS = EPYC_ZEN4 + " amx_bf16 amx_tile amx_int8"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (EPYC_ZEN2, "avx2"),
        (EPYC_ZEN4, "avx512"),
        (SAPPHIRE_RAPIDS, "amx"),
        ("fpu sse4_2 avx", "other"),
        ("avx2", "other"),  # AVX2 without FMA: no such CPU, and oneDNN's AVX2 kernels need FMA
        ("", "other"),
    ],
)
def test_kind_from_flags(flags, expected):
    assert cpu_kind.cpu_kind(flags.split(), env={}) == expected


def test_onednn_isa_limit_lowers_the_kind_as_on_such_a_cpu():
    assert cpu_kind.cpu_kind(EPYC_ZEN4.split(), env={"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "avx2"
    assert cpu_kind.cpu_kind(SAPPHIRE_RAPIDS.split(), env={"ONEDNN_MAX_CPU_ISA": "avx2_vnni"}) == "avx2"
    assert cpu_kind.cpu_kind(EPYC_ZEN2.split(), env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) == "avx2"  # never raised
    assert cpu_kind.cpu_kind(EPYC_ZEN4.split(), env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}) == "avx512"


def test_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {EPYC_ZEN4}\n\nprocessor\t: 1\nflags\t\t: {EPYC_ZEN2}\n"
    )
    assert cpu_kind.cpu_flags(info) == frozenset(EPYC_ZEN4.split())
    assert cpu_kind.cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_kind.cpu_kind(cpu_kind.cpu_flags(info), env={}) == "avx512"


def test_every_kind_has_settings_and_the_choice_follows_the_kind():
    assert set(cpu_kind.SETTINGS) == set(cpu_kind.KINDS)
    for flags in (EPYC_ZEN2, EPYC_ZEN4, SAPPHIRE_RAPIDS, ""):
        kind = cpu_kind.cpu_kind(flags.split(), env={})
        assert cpu_kind.cpu_settings(flags.split(), env={}) is cpu_kind.SETTINGS[kind]


def test_the_runtime_takes_the_kinds_settings(monkeypatch):
    """XLA on the CPU (jit_compile_default) and TensorFlow's inter-op threads follow the kind's
    settings; a GPU keeps XLA on."""
    import keras

    from effunet.models import runtime

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the settings are TensorFlow's")
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    for jit in (True, False):
        monkeypatch.setattr(runtime, "cpu_settings", lambda jit=jit: cpu_kind.CpuSettings(jit_compile=jit))
        assert runtime.jit_compile_default() is jit
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert runtime.jit_compile_default() is True
