"""`charter run` on a model that is not the embedded one, served by an OpenAI-compatible server:
Gemma 3 270M (architecture gemma3, a base model with no chat template) behind llama.cpp's server
is the teacher and the judge, `--base` names its GGUF, and that model is trained, exported (GGUF
through llama.cpp's converter) and evaluated before and after."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.pipeline.test_run_end_to_end import charter_command

pytestmark = pytest.mark.slow

TINY = ["--limit", "3", "--safe-ratio", "1", "--rounds", "1", "--max-steps", "2", "--eval-limit", "3",
        "--max-tokens", "32", "--eval-max-tokens", "24", "--suites", "harmful,overrefusal",
        "--min-margin", "0"]  # a base model's own A/B judgments are close to coin flips; keep them all


@pytest.fixture(scope="module")
def gemma_run(gemma_server, gemma_gguf, tmp_path_factory):
    base_url, alias = gemma_server
    out = tmp_path_factory.mktemp("gemma-run") / "run"
    done = subprocess.run(charter_command("run", "--policy", f"openai:{base_url}#{alias}", "--base", str(gemma_gguf),
                                          "--out", str(out), *TINY),
                          capture_output=True, text=True, timeout=2400, env={**os.environ, "COLUMNS": "160"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _records(out, kind):
    import sqlite3

    with sqlite3.connect(out / "records.sqlite") as db:
        return [json.loads(d) for (d,) in db.execute("select data from records where kind = ?", (kind,))]


def test_the_judge_on_the_server_gives_soft_labels_without_prefill(gemma_run):
    import pyarrow.parquet as pq

    manifest = json.loads((gemma_run / "manifest.json").read_text())
    assert manifest["stages"]["pipeline"]["recipe"] == "critique"
    assert manifest["done"]["prefs"]["judge_mode"] == "letter"
    judgments = _records(gemma_run, "judgment")
    assert judgments and not [j["reason"] for j in judgments if j["abstained"]]
    pairs = pq.read_table(gemma_run / "datasets" / "raw" / "prefs.parquet").to_pylist()
    assert pairs and all(0.5 < p["score_chosen"] <= 1.0 and p["label_source"] == "ai_feedback" for p in pairs)
    assert any(p["score_chosen"] < 1.0 for p in pairs)


def test_gemma_is_what_was_trained_exported_and_evaluated(gemma_run, gemma_gguf):
    model = gemma_run / "model"
    assert json.loads((model / "hf" / "config.json").read_text())["architectures"] == ["Gemma3ForCausalLM"]
    record = json.loads((model / "charter_export.json").read_text())
    assert record["gguf"] == "model.f16.gguf" and record["gguf_skipped"] is None
    for name in ("sft", "dpo"):
        trained = json.loads((gemma_run / "train" / name / "charter_train.json").read_text())
        assert trained["base"]["path"] == str(gemma_gguf.resolve())
        targets = set(json.loads((gemma_run / "train" / name / "adapter_config.json").read_text())["target_modules"])
        assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    base = json.loads((gemma_run / "eval" / "base" / "eval.json").read_text())["meta"]
    after = json.loads((gemma_run / "eval" / "trained" / "eval.json").read_text())["meta"]
    assert base["engine"] == f"llamacpp:{gemma_gguf}" and after["engine"] == f"llamacpp:{model / 'model.f16.gguf'}"
    html = (gemma_run / "report.html").read_text(encoding="utf-8")
    assert "Gemma3ForCausalLM" in html and str(gemma_gguf) in html
    card = (model / "README.md").read_text()
    assert "Before and after training" in card and "gemma-3-270m" in card
    assert (model / "Modelfile").read_text().splitlines()[1] == "FROM ./model.f16.gguf"


def test_the_converted_gguf_gives_the_hf_model_greedy_tokens(gemma_run):
    """llama.cpp's converter wrote the same model: greedy tokens match the merged HF folder."""
    import llama_cpp
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.train.test_export import NEW_TOKENS, PROMPTS, assert_same_greedy, prompt_ids

    folder = gemma_run / "model"
    model = AutoModelForCausalLM.from_pretrained(folder / "hf").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "hf")
    llama = llama_cpp.Llama(model_path=str(folder / "model.f16.gguf"), n_ctx=512, verbose=False,
                            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    try:
        compared = 0
        for prompt in PROMPTS:
            ids = prompt_ids(tokenizer, prompt)
            assert llama.tokenize(tokenizer.decode(ids).encode(), add_bos=False, special=True) == ids
            compared += assert_same_greedy(llama, model, ids, prompt)
        assert compared >= NEW_TOKENS  # not vacuous: most steps are no near tie
    finally:
        llama.close()
