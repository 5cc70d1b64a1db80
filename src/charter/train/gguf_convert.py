"""GGUF for every architecture llama.cpp supports, through llama.cpp's own converter.

charter's small writer (gguf_export.py) handles Llama and copies the tokenizer verbatim from the
GGUF the base came from. Any other architecture goes through `convert_hf_to_gguf.py`, the
converter llama.cpp maintains, taken from the same llama-cpp-python source release the engine was
compiled from (`make setup` unpacks it into the venv: share/charter/llama.cpp/, with its `gguf-py`
and `conversion/` package), so the file it writes is one this engine reads.

It runs as a subprocess of this Python: a converter failure (an architecture it does not know, a
tokenizer it cannot recognise) is an error message naming why, and the export goes on without
a GGUF where the caller allows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from charter.errors import CharterError

CONVERTER_ENV = "CHARTER_LLAMA_CONVERTER"  # path of convert_hf_to_gguf.py, to use another checkout
OUT_TYPES = ("f32", "f16", "bf16", "q8_0")


class GgufUnavailable(CharterError):
    """This model cannot be written as GGUF here (no converter, or it does not know the model)."""


def converter_path() -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: $CHARTER_LLAMA_CONVERTER, else the venv's copy."""
    configured = os.environ.get(CONVERTER_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(sys.prefix) / "share" / "charter" / "llama.cpp" / "convert_hf_to_gguf.py")
    return next((path for path in candidates if path.is_file()), None)


def convert_with_llama_cpp(hf_dir: Path, out_path: Path, weight_type: str = "f16") -> Path:
    """Write `hf_dir` as `out_path` with llama.cpp's converter; GgufUnavailable if it cannot."""
    if weight_type not in OUT_TYPES:
        raise CharterError(f"GGUF weight type '{weight_type}' is not supported; use one of {', '.join(OUT_TYPES)}")
    script = converter_path()
    if script is None:
        raise GgufUnavailable(f"llama.cpp's converter (convert_hf_to_gguf.py) is not installed; `make setup` "
                              f"unpacks it into the venv, or set {CONVERTER_ENV} to a llama.cpp checkout's copy")
    command = [sys.executable, str(script), str(hf_dir), "--outfile", str(out_path), "--outtype", weight_type]
    # The converter puts its own gguf-py first on the path unless NO_LOCAL_GGUF is set: keep it so,
    # the two come from one release.
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not out_path.is_file():
        out_path.unlink(missing_ok=True)
        raise GgufUnavailable(f"llama.cpp's converter could not convert {hf_dir.name}: {_last_error(done.stderr)}")
    return out_path


def _last_error(stderr: str) -> str:
    """The converter's own reason: the last line that reads like one, not a whole traceback."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "not supported" in line:
            return line[:300]
    return (lines[-1] if lines else "no output")[:300]
