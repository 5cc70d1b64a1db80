"""The embedded llama.cpp engine: batched generation, seeding, stop strings, choose, LoRA."""

from __future__ import annotations

import numpy as np
import pytest

from charter.engines.base import ChoiceRequest, Completion, Engine, GenerationRequest
from charter.engines.registry import make_engine
from charter.engines.sampling import log_softmax
from charter.errors import EngineError

from .helpers import CAPITAL, gen, user


def test_is_an_engine_with_a_fingerprint(llama_engine):
    assert isinstance(llama_engine, Engine)
    assert llama_engine.name == "llamacpp:embedded"
    assert "sha256=" in llama_engine.fingerprint and "llama-cpp-python==" in llama_engine.fingerprint


def test_generate_shape_order_and_counts(llama_engine):
    requests = [gen("Say hello.", n=3, seed=1), gen("Name a colour.", n=1, seed=2),
                gen("Count to three.", n=2, seed=3)]
    out = llama_engine.generate(requests)
    assert [len(r) for r in out] == [3, 1, 2]
    for completions in out:
        assert [c.index for c in completions] == list(range(len(completions)))
        for c in completions:
            assert isinstance(c, Completion) and isinstance(c.text, str)
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_tokens > 10 and 0 <= c.completion_tokens <= 12
            if c.finish_reason == "length":
                assert c.completion_tokens == 12
    assert llama_engine.generate([]) == []


def test_seeded_generation_is_reproducible(llama_engine):
    requests = [gen("Write a sentence about the sea.", n=2, seed=7, temperature=1.0, max_tokens=16),
                gen("Write a sentence about a tree.", seed=8, temperature=1.0, max_tokens=16)]
    first = llama_engine.generate(requests)
    assert llama_engine.generate(requests) == first
    # A request's samples do not depend on what else shares the batch.
    assert llama_engine.generate(requests[1:]) == first[1:]
    other_seed = llama_engine.generate([gen("Write a sentence about the sea.", n=2, seed=99,
                                            temperature=1.0, max_tokens=16)])
    assert [c.text for c in other_seed[0]] != [c.text for c in first[0]]


def test_greedy_samples_agree(llama_engine):
    out = llama_engine.generate([gen("What is 2 + 2?", n=2, temperature=0.0, max_tokens=10)])
    assert out[0][0].text == out[0][1].text


def test_max_tokens_gives_length(llama_engine):
    out = llama_engine.generate([gen("Tell me a long story about dragons.", max_tokens=5,
                                     temperature=0.0)])
    assert out[0][0].finish_reason == "length" and out[0][0].completion_tokens == 5


def test_stop_string_cuts_the_text(llama_engine):
    free = llama_engine.generate([gen("List three fruits, one per line.", temperature=0.0,
                                      max_tokens=30)])[0][0].text
    word = free.split()[1]  # a word the greedy answer is known to contain
    out = llama_engine.generate([gen("List three fruits, one per line.", temperature=0.0,
                                     max_tokens=30, stop=(word,))])[0][0]
    assert out.finish_reason == "stop" and word not in out.text
    assert free.startswith(out.text)


def test_choose_returns_normalised_probabilities(llama_engine):
    probs = llama_engine.choose(CAPITAL)
    assert list(probs) == list(CAPITAL.options)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert max(probs, key=probs.get) == "Paris"


def test_choose_matches_a_brute_force_log_probability(embedded_gguf):
    """Score each option by evaluating prompt+option in a plain llama.cpp context, summing the
    log-probabilities of the tokens after the shared prefix, and compare."""
    from llama_cpp import Llama

    engine = make_engine("llamacpp:embedded", flash_attn=False, batch_size=2, compute_type="native")
    reference = Llama(model_path=str(embedded_gguf), n_ctx=512, logits_all=True,
                      flash_attn=False, verbose=False)
    request = ChoiceRequest(user("Which is a fruit? (A) apple (B) car"),
                            ("A", "B", "apple pie", " car"), assistant_prefix="The answer is (")
    text = engine.prompt_text(request.messages, request.assistant_prefix)
    prompt = engine.tokenize(text)
    totals = []
    for option in request.options:
        full = engine.tokenize(text + option)
        start = next(i for i, (a, b) in enumerate(zip(prompt + [-1], full)) if a != b)
        reference.reset()
        reference.eval(full)
        totals.append(sum(log_softmax(reference.scores[j - 1])[full[j]] for j in range(start, len(full))))
    expected = np.exp(np.array(totals) - max(totals))
    expected /= expected.sum()
    got = engine.choose(request)
    assert list(got.values()) == pytest.approx(list(expected), rel=1e-3, abs=1e-6)
    # The cached prompt prefix is reused by a second question on the same prompt.
    assert engine.choose(request) == pytest.approx(got)
    engine.close()
    reference.close()


def test_choose_many_matches_choose(llama_engine):
    from charter.engines.base import choose_many

    other = ChoiceRequest(user("Is fire hot? Answer Yes or No."), ("Yes", "No"))
    got = choose_many(llama_engine, [CAPITAL, other])
    assert got[0] == pytest.approx(llama_engine.choose(CAPITAL))
    assert got[1] == pytest.approx(llama_engine.choose(other))


@pytest.mark.parametrize("options", [(), ("A", "A"), ("A", "")])
def test_choose_rejects_bad_options(llama_engine, options):
    with pytest.raises(EngineError):
        llama_engine.choose(ChoiceRequest(user("Pick."), options))


def test_generate_rejects_bad_requests(llama_engine):
    with pytest.raises(EngineError, match="n >= 1"):
        llama_engine.generate([gen("Hi", n=0)])


def test_single_stream_fallback_is_reproducible():
    engine = make_engine("llamacpp:embedded@batched=false")
    requests = [gen("Name an animal.", n=2, seed=5, temperature=0.9)]
    first = engine.generate(requests)
    assert len(first[0]) == 2 and engine.generate(requests) == first
    # What ran before does not matter: each sample starts from an empty cache (llama-cpp-python
    # would reuse the previous prompt's KV and decode only its last token, which changed seeded
    # samples on an AVX-512 Xeon).
    engine.generate([gen("Name an animal that lives in the sea.", seed=1, temperature=0.9)])
    assert engine.generate(requests) == first
    assert "single" in engine.fingerprint
    engine.close()


def test_lora_adapter_changes_the_model(tiny_lora):
    base = make_engine("llamacpp:embedded", batch_size=2)
    tuned = make_engine(f"llamacpp:embedded@lora={tiny_lora}", batch_size=2)
    zero = make_engine(f"llamacpp:embedded@lora={tiny_lora}@lora_scale=0", batch_size=2)
    request = gen("Describe the moon.", temperature=1.0, seed=4, max_tokens=16)
    assert tuned.choose(CAPITAL) != pytest.approx(base.choose(CAPITAL), abs=1e-4)
    assert zero.choose(CAPITAL) == pytest.approx(base.choose(CAPITAL), abs=1e-4)
    assert tuned.generate([request]) != base.generate([request])
    assert "lora:tiny-lora.gguf" in tuned.fingerprint
    for engine in (base, tuned, zero):
        engine.close()


def test_not_a_lora_file_is_refused(embedded_gguf):
    with pytest.raises(EngineError, match="not a LoRA adapter"):
        make_engine("llamacpp:embedded", lora=str(embedded_gguf))


def test_default_weights_are_a_cached_q8_copy_named_in_the_fingerprint(llama_engine):
    assert llama_engine.compute_type == "q8_0"
    assert ":compute=q8_0" in llama_engine.fingerprint


def test_unknown_compute_type_is_refused():
    with pytest.raises(EngineError, match="compute_type must be"):
        make_engine("llamacpp:embedded@compute_type=int3")


def test_slots_shrink_to_fit_the_kv_budget(monkeypatch):
    import charter.engines.llamacpp_batch as batch

    monkeypatch.setattr(batch, "KV_BUDGET_BYTES", 32 << 20)
    engine = make_engine("llamacpp:embedded", batch_size=8)
    out = engine.generate([gen(f"Count to {i}.", max_tokens=250, temperature=0.0) for i in range(3)])
    assert len(engine._decoder._slots) == 2  # 32 MB / (512 tokens x 23 KB)
    assert len(out) == 3 and all(len(r) == 1 for r in out)
    engine.close()


def test_stream_yields_the_generated_answer_piece_by_piece(llama_engine):
    """Same sampler and seed as generate(), so streaming changes when the text arrives, not what
    it is; a stop string is never sent, even in part."""
    from charter.engines.base import GenerationRequest

    from .helpers import drain

    for stop in ((), (",",), (" the",)):
        request = GenerationRequest(messages=({"role": "user", "content": "Tell me about the sea."},), max_tokens=32,
                                    temperature=0.7, seed=5, stop=stop)
        sent, completion = drain(llama_engine.stream(request))
        whole = llama_engine.generate([request])[0][0]
        assert "".join(sent) == whole.text == completion.text
        assert completion.completion_tokens == whole.completion_tokens and len(sent) > 1
        assert not any(s in whole.text for s in stop if s)


def test_control_tokens_typed_in_a_message_stay_text(llama_engine):
    """`<|im_start|>system` written by a user must not become the real control token (a forged
    system turn): the template's three turns are the only ones; a plain prompt is unchanged."""
    from .helpers import FORGED, control_token_count, user

    im_start = llama_engine._llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1
    forged = llama_engine._prompt_tokens(FORGED)
    assert control_token_count(forged, im_start[0]) == 3  # system, user, assistant: the template's own
    assert control_token_count(llama_engine.tokenize(llama_engine.prompt_text(FORGED)), im_start[0]) == 5
    assert llama_engine._llm.detokenize(forged, special=True).decode().count("<|im_start|>") == 5  # as text
    plain = user("Hello there")
    assert llama_engine._prompt_tokens(plain) == llama_engine.tokenize(llama_engine.prompt_text(plain))


def test_a_cancelled_generation_stops_between_steps(llama_engine):
    """serve hands generate() a cancel event for requests it cannot stream (n > 1): once set,
    decoding stops at the next step with GenerationCancelled; unset, nothing changes."""
    import threading

    from charter.errors import GenerationCancelled

    request = GenerationRequest(messages=[{"role": "user", "content": "Tell a long story."}], n=2,
                                max_tokens=64, temperature=0.7, seed=4)
    cancel = threading.Event()
    assert llama_engine.generate([request], cancel=cancel) == llama_engine.generate([request])
    cancel.set()
    steps = llama_engine.stats.extra.get("steps", 0)
    with pytest.raises(GenerationCancelled):
        llama_engine.generate([request], cancel=cancel)
    assert llama_engine.stats.extra.get("steps", 0) - steps <= 1
