"""Padding-free training forward: the decoder runs a padded batch as one packed row.

TRL's collators pad every batch to its longest sequence, and on a CPU every padding token costs
as much as a real one in each projection and MLP. The default DPO batch (4 pairs, chosen and
rejected side by side) is one third padding (measured on the default run's pairs: 0.67 of the
padded tokens are real; SFT's batches 0.83). TRL 1.14's DPO trainer disables its own
`padding_free`, and SFT's refuses it together with `max_length`, so charter does it below TRL:

the decoder's forward (the model below its LM head) receives the padded batch, keeps only the
tokens the attention mask marks, lays them out as one packed row in which a prefix that several
rows share (a DPO pair's prompt, the chat template's header) appears once
(train/packed_attention.py), runs that row with an attention that lets each row's tokens attend
only to that row's own path, causally by position, and gathers the hidden states back into the
padded shape, zeros where padding was. The LM head, TRL's losses, masks and metrics see the same
tensors as before, so training is the same computation minus the padding and the repeated
prefixes; only float summation order differs (tests/train/test_unpadded.py compares logits,
losses and gradients), and LoRA dropout draws one mask per shared prefix rather than per row.

Positions restart at 0 at each sequence's first real token, which is what a right-padded batch
(TRL's) gives too.
"""

from __future__ import annotations

import functools

from charter.train.packed_attention import ATTENTION_NAME, plan_layout, register, using_layout

WRAPPED = "_charter_unpadded"


def enable_unpadded_forward(model, share_prefixes: bool = True) -> bool:
    """Make the decoder of `model` (a transformers model with a head, or a PEFT model around one)
    skip padding tokens, and compute prefixes its rows share once unless `share_prefixes` is off.

    The decoder rather than the whole model: TRL's SFT trainer replaces the causal LM's forward
    with its own chunked loss, which calls the decoder directly. False where no decoder is found
    (the model then trains padded, as before)."""
    decoder = _decoder_of(model)
    if decoder is None:
        return False
    register()
    if getattr(decoder.forward, WRAPPED, False):
        decoder.forward = decoder.forward.__wrapped__
    decoder.forward = _unpadded(decoder.forward, decoder.config, share_prefixes)
    return True


def _decoder_of(model):
    if hasattr(model, "get_base_model"):  # a PEFT model: the transformers model it wraps
        model = model.get_base_model()
    decoder = getattr(model, "base_model", None)  # transformers: the model below its head
    return decoder if decoder is not None and decoder is not model else None


def _unpadded(forward, config, share_prefixes: bool):
    @functools.wraps(forward)
    def run(input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        layout = None
        if _packable(attention_mask, position_ids, kwargs):
            # Prefixes are found by token id; a batch given as embeddings is only unpadded.
            ids = input_ids if input_ids is not None else attention_mask.new_zeros(attention_mask.shape)
            layout = plan_layout(ids, attention_mask, share_prefixes and input_ids is not None)
            if not layout.saves_work(attention_mask.numel()):
                layout = None
        if layout is None:
            return forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, **kwargs)
        keep = attention_mask.bool()
        packed_ids = layout.token_ids if input_ids is not None else None
        packed_embeds = inputs_embeds[keep].unsqueeze(0) if inputs_embeds is not None else None
        kwargs["use_cache"] = False  # a cache would outlive the packed layout
        previous = config._attn_implementation
        config._attn_implementation = ATTENTION_NAME  # no mask is built: the layout says who sees what
        try:
            with using_layout(layout):
                out = forward(input_ids=packed_ids, attention_mask=None, position_ids=layout.positions,
                              inputs_embeds=packed_embeds, **kwargs)
        finally:
            config._attn_implementation = previous
        hidden = out.last_hidden_state[0]
        padded = hidden.new_zeros(*keep.shape, hidden.shape[-1])
        padded[keep] = hidden.index_select(0, layout.gather)  # gradients of a shared prefix add up
        out.last_hidden_state = padded
        return out

    setattr(run, WRAPPED, True)
    return run


def _packable(attention_mask, position_ids, kwargs) -> bool:
    """Only the training case: a 2-D padding mask, no positions, no cache given or asked for
    (generation asks for one: its later steps need the padded layout)."""
    if attention_mask is None or position_ids is not None or attention_mask.dim() != 2:
        return False
    if kwargs.get("use_cache") is True:
        return False
    return kwargs.get("cache") is None and kwargs.get("past_key_values") is None
