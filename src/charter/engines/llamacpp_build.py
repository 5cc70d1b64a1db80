"""Which llama.cpp build this machine has, and whether it runs here, checked in a child process.

A llama-cpp-python wheel compiled with `-march=native` on one CPU, or a native build that the
compiler gets wrong for a CPU (seen: AVX-512/AMX Xeons), dies with SIGSEGV inside llama_decode.
In-process that kills the terminal with no message. So before the first model call, charter runs
a one-token generation (batched path, single-stream path, option scoring) on the embedded model in
a child process; a crash there becomes an EngineError naming the fix. A passing check is cached
per build and CPU (library files' size and mtime, CPU flags, Python), so it costs a few
milliseconds after the first time.

The portable build (the default of `make setup`) is compiled for every x86-64 CPU with AVX2:

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

Builds with GGML_BACKEND_DL (for example GGML_CPU_ALL_VARIANTS, one CPU library per instruction
set, picked at run time) keep their CPU backends as separate libraries that llama.cpp looks for
beside the Python executable; `load_backends()` points it at llama_cpp/lib instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from charter.engines.common import cache_root
from charter.errors import EngineError
from charter.rows import write_json_atomic

PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# Instruction sets the portable build reports in llama.cpp's system info, and no others (with
# GGML_NATIVE=OFF, ggml also turns on SSE4.2 and BMI2, which every AVX2 CPU has).
PORTABLE_FEATURES = frozenset({"SSE3", "SSSE3", "SSE42", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
RECORD_FILE = "charter-llama-build.txt"  # in the venv, written by the Makefile
SKIP_ENV = "CHARTER_ENGINE_CHECK"  # "0": skip the check (you know the build works); set in the child
CHECK_TIMEOUT_S = 300


def reinstall_command() -> str:
    """The one line that replaces a broken llama-cpp-python with the portable build."""
    flags = f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" ' if platform.machine() in ("x86_64", "AMD64") else ""
    return (f'{flags}{sys.executable} -m pip install '
            f'--force-reinstall --no-cache-dir --no-deps --no-binary llama-cpp-python '
            f'llama-cpp-python=={installed_version() or "0.3.36"}')


def installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return None


def library_folder() -> Path | None:
    """llama_cpp/lib inside site-packages, found without importing llama_cpp (importing loads
    the native libraries, which is what a broken build may not survive)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "lib"
    return folder if folder.is_dir() else None


def _cpuinfo(*keys: str) -> str | None:
    """The first /proc/cpuinfo value whose key starts with one of `keys` (None off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(keys):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> frozenset[str]:
    return frozenset((_cpuinfo("flags", "Features") or "").split())


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def build_key() -> str:
    """Changes whenever the llama.cpp libraries, the CPU or the Python interpreter change."""
    digest = hashlib.sha256()
    digest.update(f"{installed_version()}|{sys.version}|{platform.machine()}".encode())
    digest.update(" ".join(sorted(cpu_flags())).encode())
    folder = library_folder()
    if folder is not None:
        for lib in sorted(folder.iterdir()):
            if lib.is_file():
                stat = lib.stat()
                digest.update(f"|{lib.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """llama.cpp's "CPU : SSE3 = 1 | AVX2 = 1 | ... |" into {"CPU": {"SSE3": "1", ...}}."""
    backends: dict[str, dict[str, str]] = {}
    current = None
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if " : " in part:
            current, part = (s.strip() for s in part.split(" : ", 1))
            backends.setdefault(current, {})
        if "=" in part and current is not None:
            key, value = (s.strip() for s in part.split("=", 1))
            backends[current][key] = value
    return backends


def build_features(system_info: str) -> set[str]:
    """Instruction sets the CPU backend(s) were compiled for (value 1 in the system info)."""
    features: set[str] = set()
    for name, values in parse_system_info(system_info).items():
        if name.startswith("CPU"):
            features |= {k for k, v in values.items() if v == "1" and k.upper() == k
                         and k not in ("LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE")}
    return features


def install_record() -> str | None:
    """What `make setup` wrote when it built this environment's llama-cpp-python, if it did:
    "llama-cpp-python==V CMAKE_ARGS=...". A pip install by hand leaves none."""
    try:
        return (Path(sys.prefix) / RECORD_FILE).read_text().strip() or None
    except OSError:
        return None


def build_kind(system_info: str, backend_libraries: list[str], record: str | None = None) -> str:
    """'portable' | 'all-variants' | 'native or custom', read off what the build reports.

    On a CPU without AVX-512 a native build reports the same instruction sets as the portable
    one, so where `make setup` recorded its flags, those must be the portable ones too."""
    if any(name.startswith("libggml-cpu-") for name in backend_libraries):
        return "all-variants"
    features = build_features(system_info)
    portable = bool(features) and features <= PORTABLE_FEATURES and {"AVX2", "FMA", "F16C"} <= features
    if portable and (record is None or record.endswith(f"CMAKE_ARGS={PORTABLE_CMAKE_ARGS}")):
        return "portable"
    return "native or custom"


def load_backends() -> None:
    """For GGML_BACKEND_DL builds: load the CPU backend libraries from llama_cpp/lib before
    llama.cpp initialises (it would search beside the Python executable and find none)."""
    folder = library_folder()
    if folder is None or not any(folder.glob("libggml-cpu*")):
        return
    from llama_cpp import _ggml

    lib = _ggml.libggml
    import ctypes

    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    if lib.ggml_backend_reg_count() > 0:
        return
    lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load_all_from_path(str(folder).encode())


@dataclass
class CheckResult:
    ok: bool
    detail: str  # what went wrong, or what the check generated
    seconds: float
    cached: bool = False
    system_info: str = ""
    kind: str = ""
    extra: dict = field(default_factory=dict)


def _cache_file(key: str) -> Path:
    return cache_root() / "engine-checks" / f"{key}.json"


def check_build(model: str | Path | None = None, *, use_cache: bool = True,
                timeout: float = CHECK_TIMEOUT_S) -> CheckResult:
    """Run the engine self-test in a child process (or read a passing one from the cache)."""
    if library_folder() is None:
        return CheckResult(False, "llama-cpp-python is not installed; run `make setup`, or: "
                           + reinstall_command(), 0.0)
    key = build_key()
    cached = _cache_file(key)
    if use_cache and cached.is_file():
        try:
            result = CheckResult(**json.loads(cached.read_text()))
            result.cached = True
            return result
        except (OSError, ValueError, TypeError):
            pass  # an unreadable cache entry: check again
    started = time.perf_counter()
    command = [sys.executable, "-m", "charter.engines.llamacpp_build"]
    if model is not None:
        command.append(str(model))
    env = {**os.environ, SKIP_ENV: "0", "PYTHONFAULTHANDLER": "1"}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"the one-token test generation did not finish in {timeout:.0f} s",
                           time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return CheckResult(False, _describe_failure(proc.returncode, proc.stderr), seconds)
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return CheckResult(False, f"the test generation printed no result ({proc.stdout[-200:]!r})",
                           seconds)
    result = CheckResult(True, report["detail"], seconds, system_info=report["system_info"],
                         kind=report["kind"], extra=report.get("extra", {}))
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cached, {k: v for k, v in asdict(result).items() if k != "cached"})
    return result


def _describe_failure(code: int, stderr: str) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        where = next((line.strip() for line in stderr.splitlines() if "File " in line), "")
        return f"llama.cpp crashed with {name} in a one-token test generation" + \
            (f" ({where})" if where else "")
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    return f"the one-token test generation failed (exit {code}): {last[:300]}"


def require_working_build(model: str | Path | None = None) -> None:
    """Raise a one-line EngineError with the fix unless this machine's llama.cpp build runs.

    The test runs on the embedded model (it ships with charter) or, where that is not installed,
    on `model`. Skipped inside the check's own child and when CHARTER_ENGINE_CHECK=0."""
    if os.environ.get(SKIP_ENV) == "0":
        return
    from charter.engines.registry import embedded_model_path

    try:
        model = embedded_model_path()
    except EngineError:
        pass
    result = check_build(model)
    if not result.ok:
        raise EngineError(f"{result.detail}: this llama.cpp build does not run on this CPU "
                          f"({cpu_model()}); rebuild it portably: {reinstall_command()}")


def _self_test(model: str | None) -> dict:
    """What the child runs: the engine's three code paths, one token each."""
    import llama_cpp

    from charter.engines.base import ChoiceRequest, GenerationRequest
    from charter.engines.llamacpp import LlamaCppEngine
    from charter.engines.registry import embedded_model_path

    path = Path(model) if model else embedded_model_path()
    messages = ({"role": "user", "content": "Say OK."},)
    texts = []
    for batched in (True, False):
        with LlamaCppEngine(path, name="engine-check", batch_size=2, batched=batched,
                            n_ctx=256) as engine:
            out = engine.generate([GenerationRequest(messages, max_tokens=1, temperature=0.0, n=2)])
            texts.append(out[0][0].text)
            if batched:
                engine.choose(ChoiceRequest(messages, ("OK", "No")))
    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    folder = library_folder()
    libraries = sorted(p.name for p in folder.iterdir()) if folder else []
    return {"detail": f"generated {texts[0]!r} (batched) and {texts[1]!r} (single stream) "
                      f"with {path.name}",
            "system_info": info, "kind": build_kind(info, libraries, install_record()),
            "extra": {"libraries": libraries}}


if __name__ == "__main__":
    os.environ[SKIP_ENV] = "0"
    print(json.dumps(_self_test(sys.argv[1] if len(sys.argv) > 1 else None)))
