"""Option probabilities from llama.cpp log-probabilities (the engine's `choose`).

For a prompt P and options o_i we score each option as tokenize(P + o_i), not P's tokens followed
by tokenize(o_i): BPE may merge the prompt's last characters with the option ("(A" can be one
token), and the joint tokenisation is what the model would actually produce. Tokens shared by all
options are decoded once in sequence 0; each option's remaining tokens go into its own sequence
that borrows sequence 0's cells (a unified KV cache makes that copy metadata-only). Sequence 0 is
kept between calls, so a run of questions over the same long prompt only decodes what changed.

The answer must not depend on what was asked before, and llama.cpp's kernels may round a token's
keys/values differently in differently sized batches. So prompts are always decoded in the same
64-token blocks (n_ubatch, aligned to position 0) and sequence 0 is reused only up to a block
boundary: a cached block is bit-identical to the one a fresh engine would compute.
"""

from __future__ import annotations

import numpy as np

from charter.engines.common import normalise_logprobs
from charter.engines.llamacpp_batch import NumpyBatch, common_prefix, new_context
from charter.engines.sampling import log_softmax
from charter.errors import EngineError

_BATCH = 512
_BLOCK = 64  # prompt tokens per ubatch, aligned to position 0 (see above)


class OptionScorer:
    def __init__(self, model, vocab, *, threads: int, adapters, n_ctx: int,
                 flash_attn: bool | None = None):
        self._model, self._vocab, self._threads = model, vocab, threads
        self._adapters, self._n_ctx, self._flash_attn = adapters, n_ctx, flash_attn
        self._ctx = None
        self._n_seqs = 0
        self._cached: list[int] = []  # tokens whose K/V sequence 0 holds
        self._batch = NumpyBatch(_BATCH)

    def _ensure_context(self, n_seqs: int) -> None:
        import llama_cpp

        if self._ctx is not None and n_seqs <= self._n_seqs:
            return
        self.close()
        self._n_seqs = max(8, n_seqs)
        self._ctx = new_context(self._model, n_ctx=self._n_ctx, n_seq_max=self._n_seqs,
                                n_batch=_BATCH, threads=self._threads, unified=True,
                                adapters=self._adapters, flash_attn=self._flash_attn,
                                n_ubatch=_BLOCK)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._cached = []

    def forget(self) -> None:
        """Drop the cached prompt prefix (the next call decodes the whole prompt)."""
        self._cached = []

    def close(self) -> None:
        if self._ctx is not None:
            import llama_cpp

            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def _decode(self) -> np.ndarray:
        """Decode the filled batch; return the output rows' logits in batch order."""
        import llama_cpp

        code = llama_cpp.llama_decode(self._ctx, self._batch.struct)
        if code != 0:
            raise EngineError(f"llama.cpp decode failed (code {code}) while scoring options; "
                              f"shorten the prompt or raise n_ctx")
        n_out = int(self._batch.logits[:self._batch.n].sum())
        vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(self._ctx), shape=(n_out, vocab)).copy()

    def choose(self, prompt: list[int], full: list[list[int]], options) -> dict[str, float]:
        import llama_cpp

        starts = [common_prefix(prompt, f) for f in full]  # first token that belongs to the option
        shared = min(starts)
        if shared < 1:
            raise EngineError("choose(): the prompt is empty after tokenisation; give messages")
        needed = shared + sum(len(f) - shared for f in full)
        if needed > self._n_ctx:
            raise EngineError(f"choose(): prompt and options need {needed} tokens but n_ctx is "
                              f"{self._n_ctx}; shorten them or pass n_ctx=")
        self._ensure_context(len(full) + 1)
        prefix = full[0][:shared]
        # Keep whole blocks sequence 0 already holds of this prefix, but always decode the last
        # token: its logits score every option's first token.
        keep = min(common_prefix(self._cached, prefix), shared - 1) // _BLOCK * _BLOCK
        for seq in range(1, self._n_seqs):
            llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
        llama_cpp.llama_memory_seq_rm(self._mem, 0, keep, -1)
        self._cached = prefix[:keep]
        last_row = None
        for chunk_start in range(keep, shared, _BATCH):
            chunk = prefix[chunk_start:chunk_start + _BATCH]
            self._batch.clear()
            self._batch.add(chunk, chunk_start, 0, len(chunk) - 1)
            last_row = self._decode()[-1]
            self._cached = prefix[:chunk_start + len(chunk)]
        rows = {shared - 1: log_softmax(last_row)}  # position -> log-probs of the next token
        totals = [0.0] * len(full)
        for i, (tokens, start) in enumerate(zip(full, starts)):
            seq = i + 1
            llama_cpp.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
            feed = tokens[shared:-1]  # positions shared .. len-2 predict tokens shared+1 .. len-1
            option_rows = {}
            for chunk_start in range(0, len(feed), _BATCH):
                chunk = feed[chunk_start:chunk_start + _BATCH]
                self._batch.clear()
                self._batch.add(chunk, shared + chunk_start, seq, 0)
                for offset, row in enumerate(self._decode()):
                    option_rows[shared + chunk_start + offset] = log_softmax(row)
            for position in range(start, len(tokens)):
                source = rows if position - 1 == shared - 1 else option_rows
                totals[i] += float(source[position - 1][tokens[position]])
        return normalise_logprobs(dict(zip(options, totals)))
