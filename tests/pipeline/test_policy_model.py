"""Which model `charter run` trains and evaluates: the policy's own, or --base; never silently
the embedded one. And Hub names: fetched when allowed, one clear error when offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from charter.errors import CharterError
from charter.pipeline import PipelineConfig
from charter.train.base_model import base_of_policy, engine_spec_for


@pytest.mark.parametrize("policy, base", [
    ("llamacpp:embedded", "embedded"),
    ("llamacpp:/models/gemma.gguf@batch_size=8", "/models/gemma.gguf"),
    ("hf:/models/qwen", "/models/qwen"),
    ("hf:embedded", "embedded"),
    ("vllm:Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
])
def test_the_policy_names_the_trained_model(policy, base):
    assert base_of_policy(policy) == base


@pytest.mark.parametrize("policy", ["openai:http://127.0.0.1:8000/v1#smol", "mock:dry", "vllm:"])
def test_a_policy_that_cannot_be_trained_in_place_needs_base(policy):
    with pytest.raises(CharterError, match="--base"):
        base_of_policy(policy)


def test_before_and_after_are_the_same_model(tmp_path):
    own = PipelineConfig(constitution=tmp_path / "c.yaml", policy="llamacpp:/m/gemma.gguf")
    assert own.trained_base == "/m/gemma.gguf" and own.base_eval_engine == "llamacpp:/m/gemma.gguf"
    served = PipelineConfig(constitution=tmp_path / "c.yaml", policy="openai:http://h/v1#g", base="/m/gemma")
    assert served.trained_base == "/m/gemma" and served.base_eval_engine == "hf:/m/gemma"
    assert engine_spec_for("embedded") == "llamacpp:embedded"
    assert engine_spec_for("hf:/m/x.gguf") == "llamacpp:/m/x.gguf"


def test_run_with_a_server_policy_and_no_base_stops_before_any_data(tmp_path):
    from tests.pipeline.test_run_end_to_end import charter_command

    out = tmp_path / "run"
    done = subprocess.run(charter_command("run", "--policy", "openai:http://127.0.0.1:9/v1#m", "--out", str(out)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--base" in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr
    assert not (out / "records.sqlite").exists()


def test_a_hub_name_offline_and_not_cached_is_one_clear_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = "from charter.hub import local_model; local_model('charter-tests/not-a-model')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "CharterError" in done.stderr and "downloads are off" in done.stderr
