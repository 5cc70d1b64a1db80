"""Padding-free training (train/unpadded.py) is the padded computation minus the padding.

Checked on the real embedded model: logits on real tokens, the model's own loss with labels,
gradients through a LoRA adapter, and a whole DPO step trained both ways (dropout off, so both
draw no noise) must agree to float-reordering precision.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

LENGTHS = (14, 9, 4)  # a batch whose rows need 0, 5 and 10 padding tokens


@pytest.fixture(scope="module")
def base_folder():
    from charter.train.base_model import materialize_base

    return materialize_base("embedded")


def _batch(pad_id: int):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (len(LENGTHS), max(LENGTHS)), generator=generator)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(LENGTHS):
        mask[row, :length] = 1
    return ids * mask + pad_id * (1 - mask), mask


def _lora(model):
    from peft import get_peft_model

    from charter.train.config import LoraSettings

    torch.manual_seed(0)  # the same LoRA A initialisation in both models
    peft_model = get_peft_model(model, LoraSettings(dropout=0.0).peft_config())
    with torch.no_grad():  # a non-zero update, so the adapter changes the logits
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    return peft_model


def test_logits_loss_and_gradients_match_the_padded_batch(base_folder):
    from charter.train.base_model import load_causal_lm, load_tokenizer
    from charter.train.unpadded import enable_unpadded_forward

    ids, mask = _batch(load_tokenizer(base_folder).pad_token_id)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :3] = -100  # a prompt: only later tokens are learnt
    padded, free = _lora(load_causal_lm(base_folder)), _lora(load_causal_lm(base_folder))
    assert enable_unpadded_forward(free)
    results = []
    for model in (padded, free):
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((out.logits.detach(), out.loss.item(), grads))
    (logits_a, loss_a, grads_a), (logits_b, loss_b, grads_b) = results
    real = mask.bool()
    assert logits_a.shape == logits_b.shape
    assert (logits_a - logits_b)[real].abs().max().item() < 1e-3
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        assert (grad - grads_b[name]).norm() <= 1e-3 * grad.norm() + 1e-7, name


def test_unpadded_batches_and_cached_calls_take_the_plain_path(base_folder):
    from charter.train.base_model import load_causal_lm
    from charter.train.unpadded import WRAPPED, enable_unpadded_forward

    model = load_causal_lm(base_folder)
    assert enable_unpadded_forward(model) and enable_unpadded_forward(model)  # idempotent
    assert getattr(model.model.forward, WRAPPED)
    ids = torch.randint(100, 40000, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        none = model(input_ids=ids).logits
        cached = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
    assert torch.equal(full, none)
    assert cached.past_key_values is not None  # generation keeps its cache


@pytest.mark.parametrize("variant", ["padded", "padding-free", "rows apart"])
def test_a_dpo_step_is_the_same_with_every_shortcut(tmp_path, data_dir, monkeypatch, variant):
    """Against plain TRL (padded, logits and log-softmax everywhere): the head and log-softmax only at
    completion positions, then also padding-free with shared prefixes, or with each row apart: the
    same step, every metric."""
    from trl import DPOTrainer

    import charter.train.completion_logits as completion_logits
    import charter.train.dpo as dpo
    from charter.train import DpoSettings, train_dpo
    from charter.train.config import LoraSettings

    def step(dest, free, share=True):
        settings = DpoSettings(max_steps=1, batch_size=4, max_length=128, padding_free=free, share_prefixes=share,
                               lora=LoraSettings(dropout=0.0), logging_steps=1)
        result = train_dpo(settings, [data_dir / "prefs.parquet"], dest)
        assert result.record["settings"]["padding_free"] is free
        return [h for h in result.log_history if "loss" in h][0]

    with monkeypatch.context() as patched:  # TRL as it comes
        patched.setattr(completion_logits, "enable_completion_logits", lambda model: False)
        patched.setattr(dpo, "completion_logits_trainer", lambda: DPOTrainer)
        plain = step(tmp_path / "plain", free=False)
    shortcut = step(tmp_path / variant, free=variant != "padded", share=variant != "rows apart")
    assert {"loss", "grad_norm", "logps/chosen", "entropy", "logits/chosen"} <= plain.keys()
    for key, value in plain.items():
        if isinstance(value, float) and key not in ("learning_rate", "epoch"):
            assert shortcut[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def _tiny_model(architecture: str):
    """A random two-layer model; Gemma 3 with a 4-token sliding window on its local layers."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    shape = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=8, attn_implementation="sdpa")
    if architecture == "gemma3":
        config = Gemma3TextConfig(sliding_window=4, layer_types=["sliding_attention", "full_attention"], **shape)
    else:
        config = LlamaConfig(**shape)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).train()


def _shared_prefix_batch():
    """Two DPO-style pairs (one prompt, two answers each) behind a common header, right-padded,
    as TRL lays a batch out: [chosen..., rejected...]. Rows share 3, 7 and 9 tokens."""
    header, prompt_a, prompt_b = [5, 6, 7], [10, 11, 12, 13], [20, 21]
    rows = [header + prompt_a + [30, 31, 32, 33, 34, 35], header + prompt_b + [40, 41],
            header + prompt_a + [50, 51], header + prompt_b + [60, 61, 62, 63, 1, 2, 3]]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = torch.tensor(row)
        mask[index, :len(row)] = 1
    return ids, mask


def test_the_layout_computes_each_shared_prefix_once():
    from charter.train.packed_attention import plan_layout

    ids, mask = _shared_prefix_batch()
    layout = plan_layout(ids, mask)
    assert [row.shared for row in layout.rows] == [0, 3, 7, 5]
    assert layout.packed_length == int(mask.sum()) - (3 + 7 + 5)
    # every real token reads the packed token with its id and its position in its row
    assert torch.equal(layout.token_ids[0][layout.gather], ids[mask.bool()])
    assert torch.equal(layout.positions[0][layout.gather], (mask.cumsum(-1) - 1)[mask.bool()])
    unshared = plan_layout(ids, mask, share_prefixes=False)
    assert unshared.packed_length == int(mask.sum()) and all(row.shared == 0 for row in unshared.rows)


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
@pytest.mark.parametrize("share", [True, False])
def test_shared_prefixes_give_the_padded_logits_and_gradients(architecture, share):
    """Sliding-window layers (Gemma 3, window 4 < the 15-token rows) see the same window packed."""
    from charter.train.unpadded import enable_unpadded_forward

    ids, mask = _shared_prefix_batch()
    results = []
    for packed in (False, True):
        model = _tiny_model(architecture)
        if packed:
            assert enable_unpadded_forward(model, share_prefixes=share)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        real = mask.bool()
        loss = (logits[real] ** 2).mean()  # any function of the real positions
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((logits.detach()[real], grads))
    (logits_a, grads_a), (logits_b, grads_b) = results
    assert (logits_a - logits_b).abs().max().item() < 1e-5
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        assert (grad - grads_b[name]).norm() <= 1e-4 * grad.norm() + 1e-7, name


def test_the_head_computes_only_positions_that_predict_a_completion_token():
    from charter.train.completion_logits import completion_logits_for, enable_completion_logits

    ids, mask = _shared_prefix_batch()
    completion = torch.zeros_like(mask)
    completion[:, 9:] = mask[:, 9:]  # the last tokens of each row are its completion
    model = _tiny_model("llama")
    full = model(input_ids=ids, attention_mask=mask).logits
    assert enable_completion_logits(model) and enable_completion_logits(model)  # idempotent
    with completion_logits_for(completion) as needed:
        sparse = model(input_ids=ids, attention_mask=mask).logits
    assert needed.sum() == completion[:, 1:].sum() and not needed[:, -1].any()
    assert torch.allclose(sparse[needed], full[needed], atol=1e-6)
    assert not sparse[~needed].any()  # never computed: nothing reads them
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, full)  # outside the block: every position
