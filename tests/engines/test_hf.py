"""The transformers engine on the embedded GGUF: the trainable rebuild, generation, choose, PEFT."""

from __future__ import annotations

import copy

import pytest

from charter.engines.base import ChoiceRequest, Engine, GenerationRequest
from charter.engines.registry import make_engine
from charter.errors import EngineError

from .helpers import CAPITAL, drain, gen, user

FRUIT = ChoiceRequest(user("Which is a fruit? (A) apple (B) car"), ("A", "B"),
                      assistant_prefix="The answer is (")


@pytest.fixture(scope="module")
def hf_engine():
    engine = make_engine("hf:embedded", batch_size=4)
    yield engine
    engine.close()


def test_gguf_is_rebuilt_as_an_ordinary_trainable_model(hf_engine):
    model = hf_engine.model
    assert isinstance(hf_engine, Engine)
    assert not hasattr(model.config, "quantization_config")
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert all(p.dtype.is_floating_point for p in model.parameters())
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_generate_is_seeded(hf_engine):
    requests = [gen("Say hello.", n=2, seed=1, temperature=1.0, max_tokens=8),
                gen("Name a colour.", seed=2, temperature=1.0, max_tokens=8)]
    first = hf_engine.generate(requests)
    assert [len(r) for r in first] == [2, 1]
    assert all(c.finish_reason in ("stop", "length") and c.completion_tokens <= 8
               for r in first for c in r)
    assert hf_engine.generate(requests) == first
    # (Batch-independent only up to float rounding: padding changes the matmul shapes.)


def test_stream_is_the_generated_answer_piece_by_piece(hf_engine):
    request = gen("Tell me about the sea.", seed=3, temperature=0.7, max_tokens=16, stop=(" the",))
    pieces, completion = drain(hf_engine.stream(request))
    whole = hf_engine.generate([request])[0][0]
    assert len(pieces) > 1 and "".join(pieces) == whole.text == completion.text
    assert completion.completion_tokens == whole.completion_tokens


@pytest.mark.parametrize("compute_type", ["f32", "native"])
def test_choose_agrees_with_llamacpp_on_the_same_weights(hf_engine, compute_type):
    """What is guaranteed across engines: transformers (the GGUF dequantized to float32) and
    llama.cpp computing with the same weights (as float32, or the shipped Q4_1 blocks themselves)
    give the same probabilities up to float rounding and llama.cpp's 8-bit activations: measured
    |dP| 0.0003 (f32) and 0.001 (Q4_1) on an AMD EPYC (AVX2). llama.cpp's default `auto` runs a
    re-quantized Q8_0 copy, a slightly different model (P(A) 0.246 here, on AMD and Intel alike):
    the next test bounds that separately, not by widening this tolerance."""
    probs = hf_engine.choose(CAPITAL)
    assert max(probs, key=probs.get) == "Paris" and sum(probs.values()) == pytest.approx(1.0)
    reference = make_engine("llamacpp:embedded", flash_attn=False, batch_size=2,
                            compute_type=compute_type)
    assert hf_engine.choose(FRUIT)["A"] == pytest.approx(reference.choose(FRUIT)["A"], abs=0.005)
    assert hf_engine.choose(CAPITAL)["Paris"] == pytest.approx(reference.choose(CAPITAL)["Paris"],
                                                               abs=0.005)
    reference.close()


def test_the_q8_working_copy_keeps_clear_choices_and_moves_close_ones_little(hf_engine):
    """The Q8_0 copy moves each weight by ~0.5 % RMS: a clear answer stays clear (P(Paris) within
    0.005), and a close one (P(A) ~0.2) moves by less than 0.1 (measured 0.066)."""
    reference = make_engine("llamacpp:embedded", flash_attn=False, batch_size=2)
    assert reference.compute_type == "q8_0"
    assert hf_engine.choose(CAPITAL)["Paris"] == pytest.approx(reference.choose(CAPITAL)["Paris"],
                                                               abs=0.005)
    assert hf_engine.choose(FRUIT)["A"] == pytest.approx(reference.choose(FRUIT)["A"], abs=0.1)
    reference.close()


def test_peft_adapter_is_merged(hf_engine, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(copy.deepcopy(hf_engine.model),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = hf_engine._merge_adapter(copy.deepcopy(hf_engine.model), tmp_path / "adapter")
    ids = torch.tensor([hf_engine.tokenize("Hello there")])
    with torch.no_grad():
        base_logits = hf_engine.model(input_ids=ids).logits
        merged_logits = merged(input_ids=ids).logits
        peft_logits = peft_model(input_ids=ids).logits
    assert not torch.allclose(base_logits, merged_logits, atol=1e-3)
    assert torch.allclose(peft_logits, merged_logits, atol=1e-3)


def test_missing_adapter_is_refused_before_loading():
    with pytest.raises(EngineError, match="adapter folder .* does not exist"):
        make_engine("hf:embedded@adapter=/no/such/adapter")


def test_control_tokens_typed_in_a_message_stay_text(hf_engine):
    from .helpers import FORGED, control_token_count

    im_start = hf_engine.tokenize("<|im_start|>")
    assert len(im_start) == 1
    assert control_token_count(hf_engine.prompt_tokens(FORGED), im_start[0]) == 3
    assert control_token_count(hf_engine.tokenize(hf_engine.prompt_text(FORGED)), im_start[0]) == 5
    plain = user("Hello there")
    assert hf_engine.prompt_tokens(plain) == hf_engine.tokenize(hf_engine.prompt_text(plain))


def test_a_cancelled_generation_stops_between_tokens(hf_engine):
    import threading

    from charter.errors import GenerationCancelled

    cancel = threading.Event()
    cancel.set()
    request = GenerationRequest(messages=[{"role": "user", "content": "Tell a long story."}], n=2,
                                max_tokens=64, temperature=0.7, seed=4)
    with pytest.raises(GenerationCancelled):
        hf_engine.generate([request], cancel=cancel)


def test_the_vllm_engine_tokenizes_prompts_the_same_safe_way(hf_engine):
    """vLLM is not installed here; its engine's prompt ids come from the same function as the
    transformers engine's, so a typed control token stays text there too."""
    from types import SimpleNamespace

    from charter.engines.vllm import VLLMEngine

    from .helpers import FORGED

    stand_in = SimpleNamespace(tokenizer=hf_engine.tokenizer)
    assert VLLMEngine._ids(stand_in, FORGED) == hf_engine.prompt_tokens(FORGED)
    assert VLLMEngine._ids(stand_in, FORGED, "The answer is") == hf_engine.prompt_tokens(FORGED, "The answer is")
