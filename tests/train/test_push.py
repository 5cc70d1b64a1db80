"""`charter export --push-to-hub`: the export goes to a Hub repo through huggingface_hub's own
client, here a Hub on 127.0.0.1 ($HF_ENDPOINT); offline it is one clear error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def charter(*args, env):
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, env=env)


def finished_export(folder: Path) -> Path:
    """A small folder that reads as a finished export (the push does not depend on its size)."""
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n# A model trained by charter\n")
    (folder / "Modelfile").write_text("FROM ./model.f16.gguf\n")
    (folder / "charter_export.json").write_text(json.dumps({"base": "embedded", "adapters": [], "hf": "hf",
                                                            "gguf": None}))
    return folder


def test_an_export_is_pushed_to_a_hub_repo(tmp_path, fake_hub):
    model = finished_export(tmp_path / "model")
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "0",
           "COLUMNS": "200"}
    done = charter("export", "--adapter", str(tmp_path / "unused"), "--out", str(model), "--push-to-hub",
                   "me/charter-model", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{fake_hub.url}/me/charter-model" in done.stdout
    pushed = fake_hub.root / "me" / "charter-model"
    assert sorted(str(p.relative_to(pushed)) for p in pushed.rglob("*") if p.is_file()) == \
        ["Modelfile", "README.md", "charter_export.json", "hf/config.json"]
    assert ("POST", "/api/models/me/charter-model/commit/main") in fake_hub.calls


def test_pushing_offline_is_one_clear_error(tmp_path):
    model = finished_export(tmp_path / "model")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = charter("export", "--adapter", str(tmp_path / "unused"), "--out", str(model), "--push-to-hub",
                   "me/charter-model", env=env)
    assert done.returncode != 0 and "HF_HUB_OFFLINE" in done.stderr and "Traceback" not in done.stderr
