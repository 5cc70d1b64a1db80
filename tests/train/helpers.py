"""Helpers shared by the training tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def charter(*args: str, cwd: Path, timeout: int = 1800):
    """Run the real `charter` entry point."""
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([exe, *args], check=False, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def lora_tensors(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
