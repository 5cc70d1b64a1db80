"""DPO's LM head only where a logit is read: at the positions that predict a completion token.

TRL's DPO trainer takes the model's logits over the whole padded batch, (rows, length, vocab), and
reads them only where the completion mask marks the next token (log-probabilities, the entropy and
logit metrics, the WPO weights: all multiplied or indexed by that mask). With the embedded model's
49,152-token vocabulary the head is a fifth of the model's multiply-adds per token, and in the default
DPO batch a little over a third of the padded positions predict a completion token: the rest is
padding, the chat template and the prompt. `enable_completion_logits` makes the head compute only
the positions `completion_logits_for(completion_mask)` names; the others hold zeros, which nothing
reads. The positions are set around each loss computation (`train/dpo.py`), where TRL has the
batch's completion mask: in the policy's forward and in the reference's, so both are the same
computation as before at every position that matters.

The same holds one step later: TRL's per-token log-softmax (and entropy) helpers take that mask as
`row_mask` and zero the other rows' results, but compute every row's log-sum-exp over the whole
vocabulary first, forwards and backwards. `only_masked_rows` wraps them to compute the marked rows
alone (the same per-row arithmetic) and put zeros elsewhere, as they did.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

WRAPPED = "_charter_completion_logits"
_positions: contextvars.ContextVar = contextvars.ContextVar("charter_logit_positions", default=None)


def enable_completion_logits(model) -> bool:
    """Wrap the output head of `model` (transformers, or PEFT around it); False if it has none."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if head is None:
        return False
    if not getattr(head.forward, WRAPPED, False):
        head.forward = _sparse_head(head.forward)
    return True


@contextlib.contextmanager
def completion_logits_for(completion_mask):
    """Within this block the wrapped head computes logits only at positions t whose next token
    (t + 1) is a completion token; `completion_mask` is TRL's (rows, length) 0/1 mask."""
    needed = completion_mask.new_zeros(completion_mask.shape, dtype=bool)
    needed[:, :-1] = completion_mask[:, 1:].bool()
    token = _positions.set(needed)
    try:
        yield needed
    finally:
        _positions.reset(token)


def only_masked_rows(function):
    """`function(logits, index, ..., row_mask=...)` (TRL's selective_log_softmax and
    selective_log_softmax_and_entropy) run on the rows `row_mask` marks, zeros elsewhere."""
    @functools.wraps(function)
    def run(logits, index, *args, row_mask=None, **kwargs):
        if row_mask is None or row_mask.shape != index.shape:
            return function(logits, index, *args, row_mask=row_mask, **kwargs)
        keep = row_mask.bool()
        out = function(logits[keep].unsqueeze(0), index[keep].unsqueeze(0), *args, **kwargs)

        def spread(values):
            full = values.new_zeros(keep.shape)
            full[keep] = values[0]
            return full

        return tuple(spread(v) for v in out) if isinstance(out, tuple) else spread(out)

    return run


@contextlib.contextmanager
def masked_rows_in(module, names=("selective_log_softmax", "selective_log_softmax_and_entropy")):
    """Within this block `module`'s helpers of those names (where it has them) skip unmasked rows."""
    originals = {name: getattr(module, name) for name in names if callable(getattr(module, name, None))}
    try:
        for name, original in originals.items():
            setattr(module, name, only_masked_rows(original))
        yield
    finally:
        for name, original in originals.items():
            setattr(module, name, original)


def _sparse_head(forward):
    @functools.wraps(forward)
    def run(hidden, *args, **kwargs):
        needed = _positions.get()
        if needed is None or hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(needed.shape) or args or kwargs:
            return forward(hidden, *args, **kwargs)
        rows = forward(hidden[needed])
        logits = rows.new_zeros(*needed.shape, rows.shape[-1])
        logits[needed] = rows
        return logits

    setattr(run, WRAPPED, True)
    return run
