"""Packed rows for training: each distinct token prefix computed once, each row attending only to itself.

A training batch is a set of token rows. Under causal attention a token's hidden state depends only on
the tokens before it in its row and on its position, so two rows that begin with the same tokens have
the same hidden states over that common prefix. The batches charter trains on share a lot: every DPO
pair is (prompt + chosen, prompt + rejected), and every row of a chat batch starts with the same
chat-template header. `PackedLayout` lays the batch out as one packed row in which each row owns
only the tokens no earlier row had (its "tail"); its shared prefix is read from the row it shares with.

Attention then runs row by row (`packed_attention`, registered with transformers'
`AttentionInterface`): the tokens a row owns attend to the keys of that row's full path (shared prefix +
own tail), causally by position. That is the attention of the padded batch, without padding and without
the quadratic all-tokens mask a single packed row with a block-diagonal mask would cost (for the default
DPO batch that mask made attention 4-5x dearer than the padded batch's).

Exact: the same computation as the padded batch up to float summation order. One stochastic difference:
LoRA dropout draws one mask for a shared prefix instead of one per row (see docs/training.md).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

ATTENTION_NAME = "charter_packed"
_current_layout: contextvars.ContextVar[PackedLayout | None] = contextvars.ContextVar("charter_packed_layout",
                                                                                      default=None)


@dataclass(frozen=True)
class RowPath:
    """One row of the batch inside the packed row."""

    own_start: int  # packed index of the row's first own token
    own_count: int  # tokens only this row has (its tail)
    shared: int  # leading tokens read from an earlier row
    path: object  # torch.LongTensor: packed index of every token of the row, in order


@dataclass(frozen=True)
class PackedLayout:
    token_ids: object  # (1, packed) token ids
    positions: object  # (1, packed) position of each packed token within its row
    gather: object  # (real tokens,) packed index of each real token of the batch, row-major
    rows: tuple[RowPath, ...]

    @property
    def packed_length(self) -> int:
        return int(self.token_ids.shape[1])

    def saves_work(self, padded_tokens: int) -> bool:
        return self.packed_length < padded_tokens


def plan_layout(input_ids, attention_mask, share_prefixes: bool = True) -> PackedLayout:
    """Lay a padded batch out as one packed row (real tokens in order; padding anywhere in a row)."""
    import torch

    keep = attention_mask.bool()
    sequences = [input_ids[row][keep[row]].tolist() for row in range(input_ids.shape[0])]
    packed_ids: list[int] = []
    packed_positions: list[int] = []
    paths: list[list[int]] = []
    rows = []
    for tokens in sequences:
        donor, shared = _longest_shared_prefix(tokens, sequences[:len(paths)]) if share_prefixes else (None, 0)
        path = paths[donor][:shared] if donor is not None else []
        own_start = len(packed_ids)
        path = path + list(range(own_start, own_start + len(tokens) - shared))
        packed_ids.extend(tokens[shared:])
        packed_positions.extend(range(shared, len(tokens)))
        paths.append(path)
        rows.append(RowPath(own_start, len(tokens) - shared, shared, torch.tensor(path, dtype=torch.long)))
    device = input_ids.device
    return PackedLayout(
        token_ids=torch.tensor([packed_ids], dtype=input_ids.dtype, device=device),
        positions=torch.tensor([packed_positions], dtype=torch.long, device=device),
        gather=torch.tensor([i for path in paths for i in path], dtype=torch.long, device=device),
        rows=tuple(rows))


def _longest_shared_prefix(tokens: list[int], earlier: list[list[int]]) -> tuple[int | None, int]:
    best, best_length = None, 0
    for index, other in enumerate(earlier):
        length = 0
        limit = min(len(tokens), len(other))
        while length < limit and tokens[length] == other[length]:
            length += 1
        if length > best_length:
            best, best_length = index, length
    return best, best_length


@contextlib.contextmanager
def using_layout(layout: PackedLayout):
    """Within this block the packed attention reads `layout` (the decoder's forward, not its backward:
    autograd replays the recorded operations and never calls the attention function again)."""
    token = _current_layout.set(layout)
    try:
        yield layout
    finally:
        _current_layout.reset(token)


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention function: per row of the current layout, its own tokens attend to its path.

    Shapes as for any transformers attention: query (1, heads, packed, dim), key/value
    (1, kv_heads, packed, dim); returns ((1, packed, heads, dim), None)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout = _current_layout.get()
    if layout is None or query.shape[2] != layout.packed_length:  # not a packed call: plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    window = kwargs.pop("sliding_window", None)
    outputs = []
    for row in layout.rows:
        if row.own_count == 0:
            continue
        own = slice(row.own_start, row.own_start + row.own_count)
        path = row.path.to(query.device)
        mask = _row_mask(row, window, query.device)
        if mask is None:  # a row that shares nothing: its own causal attention, SDPA's causal kernel
            row_key, row_value = key[:, :, own], value[:, :, own]
        else:
            row_key, row_value = key.index_select(2, path), value.index_select(2, path)
        out, _ = sdpa_attention_forward(module, query[:, :, own], row_key, row_value, mask, dropout=dropout,
                                        scaling=scaling, is_causal=mask is None, **kwargs)
        outputs.append(out)
    return torch.cat(outputs, dim=1), None


def _row_mask(row: RowPath, window: int | None, device):
    """Boolean (1, 1, own, path) mask: an own token at position p sees path keys at positions <= p
    (and > p - window on sliding-window layers). None where plain causal attention is exact."""
    import torch

    length = row.shared + row.own_count
    if row.shared == 0 and (window is None or length <= window):
        return None
    query_positions = torch.arange(row.shared, length, device=device).unsqueeze(1)
    key_positions = torch.arange(length, device=device).unsqueeze(0)
    allowed = key_positions <= query_positions
    if window is not None:
        allowed &= key_positions > query_positions - window
    return allowed[None, None]


def register() -> str:
    """Register the packed attention with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, packed_attention)
    return ATTENTION_NAME
