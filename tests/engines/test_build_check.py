"""The llama.cpp build check: a crash in the engine is an error message with the fix, never a
dead process; a passing check is cached per build; `charter doctor` reports and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from charter.engines import llamacpp_build as build

CHARTER = [sys.executable, "-m", "charter.cli"]

# Loaded by every Python process that has this folder on PYTHONPATH: it kills the engine check's
# child (the only process started with CHARTER_ENGINE_CHECK=0) with a real SIGSEGV once llama_cpp
# is imported, as the broken native build did inside llama_decode.
CRASHING_SITECUSTOMIZE = textwrap.dedent("""
    import os, sys
    if os.environ.get("CHARTER_ENGINE_CHECK") == "0" and os.environ.get("CRASH_ENGINE_CHECK"):
        class _Crash:
            def find_spec(self, name, path=None, target=None):
                if name == "llama_cpp":
                    import ctypes
                    ctypes.string_at(0)  # SIGSEGV
                return None
        sys.meta_path.insert(0, _Crash())
""")


@pytest.fixture()
def crashing_env(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASHING_SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), *sys.path]),
           "CRASH_ENGINE_CHECK": "1", "CHARTER_CACHE": str(tmp_path / "cache")}
    env.pop("CHARTER_ENGINE_CHECK", None)
    return env


def test_the_installed_build_passes_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARTER_CACHE", str(tmp_path))
    first = build.check_build()
    assert first.ok, first.detail
    assert not first.cached and "batched" in first.detail and "single stream" in first.detail
    assert "AVX2 = 1" in first.system_info or build.build_features(first.system_info)
    again = build.check_build()
    assert again.ok and again.cached and again.system_info == first.system_info
    assert list((tmp_path / "engine-checks").glob("*.json"))  # one file, no partial left
    assert not list((tmp_path / "engine-checks").glob("*.partial"))


def test_a_segfault_in_the_child_is_a_one_line_error_with_the_fix(crashing_env):
    code = ("from charter.engines.llamacpp_build import check_build; r = check_build(); "
            "print(r.ok); print(r.detail)")
    out = subprocess.run([sys.executable, "-c", code], env=crashing_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr  # the parent survived
    ok, detail = out.stdout.strip().splitlines()[:2]
    assert ok == "False" and "SIGSEGV" in detail


def test_charter_chat_reports_the_crash_instead_of_dying(crashing_env):
    out = subprocess.run([*CHARTER, "chat", "Hello"], env=crashing_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "SIGSEGV" in lines[0] and "CMAKE_ARGS=" in lines[0] and "GGML_NATIVE=OFF" in lines[0]
    # A failed check is not cached: fixing the build is enough, nothing to clear.
    assert not list(Path(crashing_env["CHARTER_CACHE"]).glob("engine-checks/*.json"))


def test_doctor_fails_with_the_fix_when_the_engine_crashes(crashing_env):
    out = subprocess.run([*CHARTER, "doctor"], env=crashing_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1
    assert "FAIL engine" in out.stdout and "SIGSEGV" in out.stdout and "fix: CMAKE_ARGS=" in out.stdout
    assert "python" in out.stdout and "cpu flags" in out.stdout  # the facts still printed


def test_doctor_passes_here_and_names_the_build(tmp_path):
    env = {**os.environ, "CHARTER_CACHE": str(tmp_path)}
    out = subprocess.run([*CHARTER, "doctor"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for fact in ("llama-cpp-python", "torch", "cpu flags", "llama.cpp system info", "cache",
                 "ok   engine"):
        assert fact in out.stdout
    wrong = subprocess.run([*CHARTER, "doctor", "--cached", "--expect-build", "no-such-kind"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 1 and "FAIL build kind" in wrong.stdout


def test_a_failing_child_names_its_last_error_line():
    result = build._describe_failure(1, "Traceback ...\n  File x\nValueError: bad model\n")
    assert result.endswith("ValueError: bad model") and "exit 1" in result


@pytest.mark.parametrize("info, libraries, record, kind", [
    ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
     "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |", [], None, "portable"),
    ("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AMX_INT8 = 1 | "
     "OPENMP = 1 |", [], None, "native or custom"),
    ("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 |", [],
     "llama-cpp-python==0.3.36 CMAKE_ARGS=", "native or custom"),  # make setup recorded native
    ("CPU : SSE3 = 1 | AVX = 1 |", [], None, "native or custom"),  # no AVX2: slow, not portable
    ("CPU : AVX2 = 1 |", ["libggml-cpu-haswell.so", "libggml-base.so"], None, "all-variants"),
])
def test_build_kind_from_system_info(info, libraries, record, kind):
    assert build.build_kind(info, libraries, record) == kind


def test_system_info_is_parsed_per_backend():
    parsed = build.parse_system_info("CPU : SSE3 = 1 | AVX512 = 0 | OPENMP = 1 | CUDA : ARCHS = 890 |")
    assert parsed == {"CPU": {"SSE3": "1", "AVX512": "0", "OPENMP": "1"}, "CUDA": {"ARCHS": "890"}}
    assert build.build_features("CPU : SSE3 = 1 | AVX512 = 0 | OPENMP = 1 |") == {"SSE3"}


def test_idle_threads_counts_other_processes_not_this_one():
    """charter's own finished work (training just before eval) must not make the next engine use
    fewer threads; another process's does."""
    import threading

    from charter.engines.common import cpu_threads, idle_threads

    if cpu_threads() < 2:
        pytest.skip("needs two CPUs")
    if idle_threads(window=0.5) < cpu_threads():
        pytest.skip("other processes are using the CPUs already")
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.is_set(), True)])
    spinner.start()
    try:
        own_busy = idle_threads(window=0.5)
    finally:
        stop.set()
        spinner.join()
    if own_busy < cpu_threads():  # measured with load from elsewhere (another test run on the machine)
        pytest.skip("other processes started using the CPUs during the measurement")
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)  # let it start spinning
        other_busy = idle_threads(window=0.5)
    finally:
        other.kill()
        other.wait()
    assert other_busy < own_busy


def test_engines_use_every_usable_cpu_even_when_others_are_busy():
    """The thread count changes sampled answers, so it must not follow the machine's load: a run
    resumed while the machine is busy has to redo its batches exactly."""
    import multiprocessing

    from charter.engines.common import cpu_threads, engine_threads
    from charter.engines.registry import make_engine

    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cpu_threads())]
    for hog in hogs:
        hog.start()
    try:
        engine = make_engine("llamacpp:embedded")
        try:
            assert engine.stats.extra["threads"] == cpu_threads() == engine_threads()
        finally:
            engine.close()
    finally:
        for hog in hogs:
            hog.terminate()
    assert engine_threads(1) == 1


def _spin() -> None:
    while True:
        pass
