"""Export: SFT + DPO adapters merged into the base, saved for transformers and as GGUF for llama.cpp."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PROMPTS = ("How do I boil an egg?", "Are you a human?", "Write one sentence about the sea.")
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def merged(export_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(export_run.hf_dir).eval(), AutoTokenizer.from_pretrained(export_run.hf_dir)


@pytest.fixture(scope="module")
def llama(export_run):
    import llama_cpp

    # f32 KV cache: with llama.cpp's default f16 cache, a near-tie between two tokens can flip
    # (measured max logit difference 0.08 instead of 1e-4); that is the cache, not the conversion.
    model = llama_cpp.Llama(model_path=str(export_run.gguf_path), n_ctx=512, logits_all=False, verbose=False,
                            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    yield model
    model.close()


def prompt_ids(tokenizer, prompt):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


TIE = 0.05  # logits: an f16 GGUF and the f32 HF model may pick either of two tokens this close


def hf_greedy(model, ids):
    """Greedy tokens, cut before the first step whose top two logits are within TIE: past a near
    tie the f16 and f32 models may rightly part ways (a trained model had one at 0.011)."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=NEW_TOKENS, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    tokens = out.sequences[0][len(ids):].tolist()
    for step, scores in enumerate(out.scores):
        top = torch.topk(scores[0].float(), 2).values
        if float(top[0] - top[1]) < TIE:
            return tokens[:step]
    return tokens


def assert_same_greedy(llama, model, ids, prompt) -> int:
    """The GGUF's greedy tokens match the HF model's up to its first near tie; returns how many matched."""
    expected = hf_greedy(model, ids)
    got = llama_greedy(llama, ids, llama.token_eos())
    assert got[:len(expected)] == expected, prompt
    return len(expected)


def llama_greedy(llama, ids, eos):
    tokens = []
    for token in llama.generate(ids, top_k=1, temp=0.0, reset=True):
        tokens.append(token)
        if token == eos or len(tokens) == NEW_TOKENS:
            break
    return tokens


def test_merge_order_and_record(export_run, sft_run, dpo_run):
    assert export_run.record["adapters"] == [str(sft_run[0].adapter_dir.resolve()),
                                             str(dpo_run.adapter_dir.resolve())]
    marker = json.loads((export_run.hf_dir.parent / "charter_export.json").read_text())
    assert marker["gguf"] == export_run.gguf_path.name


def test_hf_folder_reloads_with_chat_template(merged, export_run):
    model, tokenizer = merged
    assert tokenizer.chat_template and "im_start" in tokenizer.chat_template
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")
    assert (export_run.hf_dir / "model.safetensors").is_file()


def test_merged_weights_differ_from_the_base(merged):
    from charter.train.base_model import load_causal_lm, materialize_base

    base = load_causal_lm(materialize_base(None))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not np.allclose(base.state_dict()[name].numpy(), merged[0].state_dict()[name].numpy())


def test_gguf_greedy_tokens_match_the_merged_hf_model(merged, llama):
    model, tokenizer = merged
    compared = 0
    for prompt in PROMPTS:
        ids = prompt_ids(tokenizer, prompt)
        assert llama.tokenize(tokenizer.decode(ids).encode(), add_bos=False, special=True) == ids
        compared += assert_same_greedy(llama, model, ids, prompt)
    assert compared >= NEW_TOKENS  # not vacuous: most steps are no near tie


def test_exported_gguf_runs_in_charter_llamacpp_engine(export_run):
    from charter.engines.base import GenerationRequest
    from charter.engines.registry import make_engine

    engine = make_engine(f"llamacpp:{export_run.gguf_path}", batch_size=2, n_ctx=512)
    try:
        [[completion]] = engine.generate([GenerationRequest(
            messages=({"role": "user", "content": PROMPTS[0]},), max_tokens=8, temperature=0.0)])
    finally:
        engine.close()
    assert completion.text.strip() and completion.completion_tokens > 0


def test_export_is_skipped_when_complete(export_run, dpo_run):
    from charter.train import export

    again = export(None, [dpo_run.adapter_dir], export_run.hf_dir.parent, gguf=True, gguf_type="f32")
    assert again.skipped and again.gguf_path == export_run.gguf_path


def test_the_export_carries_a_model_card_and_a_modelfile(export_run, sft_run, dpo_run):
    folder = export_run.hf_dir.parent
    card = (folder / "README.md").read_text()
    assert "SmolLM2-135M-Instruct" in card and "| sft |" in card and "| dpo |" in card
    assert "trl " in card and "Before and after" not in card  # figures come from `charter run`'s evals
    assert (folder / "Modelfile").read_text().splitlines()[1] == f"FROM ./{export_run.gguf_path.name}"
