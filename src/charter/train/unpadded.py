"""Padding-free training forward: the decoder runs a padded batch as one packed row.

TRL's collators pad every batch to its longest sequence, and on a CPU every padding token costs
as much as a real one in each projection and MLP. The default DPO batch (4 pairs, chosen and
rejected side by side) is one third padding (measured on the default run's pairs: 0.67 of the
padded tokens are real; SFT's batches 0.83). TRL 1.14's DPO trainer disables its own
`padding_free`, and SFT's refuses it together with `max_length`, so charter does it below TRL:

the decoder's forward (the model below its LM head) receives the padded batch, keeps only the
tokens the attention mask marks, runs them as one row whose position ids restart at 0 for every
sequence (transformers then builds a block-diagonal causal mask: no token attends across
sequences), and scatters the hidden states back into the padded shape, zeros where padding was.
The LM head, TRL's losses, masks and metrics see the same tensors as before, so training is the
same computation minus the padding in the decoder; only float summation order differs
(tests/train/test_unpadded.py compares logits, losses and gradients).

Positions restart at 0 at each sequence's first real token, which is what a right-padded batch
(TRL's) gives too. Attention then spans the packed row, so its cost grows with the square of the
batch's real tokens: cheap next to the projections for the short sequences charter trains on
(default max_length 512, batch 4).
"""

from __future__ import annotations

import functools

WRAPPED = "_charter_unpadded"


def enable_unpadded_forward(model) -> bool:
    """Make the decoder of `model` (a transformers model with a head, or a PEFT model around one)
    skip padding tokens.

    The decoder rather than the whole model: TRL's SFT trainer replaces the causal LM's forward
    with its own chunked loss, which calls the decoder directly. False where no decoder is found
    (the model then trains padded, as before)."""
    decoder = _decoder_of(model)
    if decoder is None:
        return False
    if not getattr(decoder.forward, WRAPPED, False):
        decoder.forward = _unpadded(decoder.forward)
    return True


def _decoder_of(model):
    if hasattr(model, "get_base_model"):  # a PEFT model: the transformers model it wraps
        model = model.get_base_model()
    decoder = getattr(model, "base_model", None)  # transformers: the model below its head
    return decoder if decoder is not None and decoder is not model else None


def _unpadded(forward):
    @functools.wraps(forward)
    def run(input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        if not _packable(attention_mask, position_ids, kwargs):
            return forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, **kwargs)
        keep = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1)[keep].unsqueeze(0)
        packed_ids = input_ids[keep].unsqueeze(0) if input_ids is not None else None
        packed_embeds = inputs_embeds[keep].unsqueeze(0) if inputs_embeds is not None else None
        kwargs["use_cache"] = False  # a cache would turn off the packed-sequence mask
        out = forward(input_ids=packed_ids, attention_mask=None, position_ids=positions,
                      inputs_embeds=packed_embeds, **kwargs)
        hidden = out.last_hidden_state[0]
        padded = hidden.new_zeros(*keep.shape, hidden.shape[-1])
        padded[keep] = hidden  # differentiable: gradients flow back to the packed row
        out.last_hidden_state = padded
        return out

    setattr(run, WRAPPED, True)
    return run


def _packable(attention_mask, position_ids, kwargs) -> bool:
    """Only the training case: a 2-D padding mask with padding in it, no positions or cache given."""
    if attention_mask is None or position_ids is not None or attention_mask.dim() != 2:
        return False
    if kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
        return False
    return not bool(attention_mask.all())
