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


def test_a_dpo_step_is_the_same_padded_or_padding_free(tmp_path, data_dir):
    from charter.train import DpoSettings, train_dpo
    from charter.train.config import LoraSettings

    metrics = {}
    for free in (False, True):
        settings = DpoSettings(max_steps=1, batch_size=4, max_length=128, padding_free=free,
                               lora=LoraSettings(dropout=0.0), logging_steps=1)
        result = train_dpo(settings, [data_dir / "prefs.parquet"], tmp_path / f"dpo-{free}")
        assert result.record["settings"]["padding_free"] is free
        metrics[free] = [h for h in result.log_history if "loss" in h][0]
    assert {"loss", "grad_norm"} <= metrics[False].keys()
    for key in ("loss", "grad_norm", "logps/chosen", "logps/rejected"):
        if key in metrics[False]:
            assert metrics[True][key] == pytest.approx(metrics[False][key], rel=1e-4, abs=1e-5), key
