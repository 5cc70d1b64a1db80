"""transformers engine: a local model folder or a .gguf file, optionally with a PEFT adapter.

Options: adapter=FOLDER (a PEFT adapter, merged into the weights), batch_size=INT (sequences per
forward pass, default 16), n_threads=INT (torch threads during calls; default: idle CPUs).

Generation is our own left-padded decode loop over the KV cache rather than `model.generate`, so
each sequence samples with its own generator (same numpy sampler as the llama.cpp engine): a
request's samples depend on its seed and sample index, not on the rest of the batch (up to
floating-point differences between batch shapes).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

from charter.engines.base import ChoiceRequest, Completion, EngineStats, GenerationRequest
from charter.engines.common import (
    TRANSCRIPT_STOP,
    TRANSCRIPT_TEMPLATE,
    StreamedText,
    chat_prompt_ids,
    check_choice,
    check_generation,
    check_options,
    cut_at_stop,
    engine_threads,
    file_fingerprint,
    normalise_logprobs,
    stop_if_cancelled,
)
from charter.engines.sampling import sample_rows, sequence_rng
from charter.errors import EngineError

OPTIONS = ("adapter", "batch_size", "n_threads")


@contextmanager
def _gguf_parsed_once():
    """Within this block each GGUF file is parsed once, and each tensor-name map built once.

    transformers reads a GGUF three times to load one model (config, tokenizer, weights), and each
    read parses every metadata field, the 49,152-entry vocabulary included (about 10 s each for the
    embedded model on 2 cores); its weight-name mapping builds gguf's TensorNameMap anew for every
    module (397 times). Both are pure functions of their arguments, so they are memoised here, for
    the block only: the embedded model's first conversion took 44 s instead of 80 s (both profiled).
    """
    import functools

    import gguf

    readers: dict = {}
    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    def reader(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map


def load_hf_model(path: str | Path):
    """(model, tokenizer) in fp32 from a transformers folder or a GGUF file, ready to train.

    transformers reads a GGUF by dequantizing every tensor, but flags the result as GGUF-quantized
    (config.quantization_config, model.hf_quantizer), and TRL refuses to train such a model. So the
    model is rebuilt from its config without quantization_config and the dequantized weights are
    loaded into it: an ordinary model that can be saved, trained and exported.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from charter.hub import local_model

    path = local_model(path)  # a Hub name is downloaded (unless offline)
    if not path.exists():
        raise EngineError(f"model {path} does not exist; give a transformers folder or a .gguf file")
    try:
        if path.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        else:
            with _gguf_parsed_once():
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                 dtype=torch.float32)
            config = quantized.config
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
            # A tied lm_head is absent from the state dict; anything else missing is a real loss.
            missing = [m for m in missing if not m.startswith("lm_head.")]
            if missing or unexpected:
                raise EngineError(f"rebuilding {path.name} lost weights (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}); this GGUF architecture is not supported")
            model.tie_weights()
            model.generation_config = quantized.generation_config
            del quantized
    except (OSError, ValueError) as exc:
        raise EngineError(f"transformers could not load {path} ({exc}); check it is a model folder "
                          f"or a GGUF file of a supported architecture") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


class HFEngine:
    def __init__(self, path: str | Path, *, name: str = "hf", adapter: str | None = None,
                 batch_size: int = 16, n_threads: int | None = None, **unknown):
        check_options(name, unknown, OPTIONS)
        self.name = name
        self.path = Path(path)
        self.adapter = Path(adapter).expanduser() if adapter else None
        self.batch_size = int(batch_size)
        self.threads = int(n_threads) if n_threads else None
        self.stats = EngineStats()
        if self.adapter and not self.adapter.is_dir():  # before the slow model load
            raise EngineError(f"PEFT adapter folder {self.adapter} does not exist; check the adapter= path")
        self.model, self.tokenizer = load_hf_model(self.path)
        if self.adapter:
            self.model = self._merge_adapter(self.model, self.adapter)
        if not self.tokenizer.chat_template:  # a base model: the transcript the trainers use too
            self.tokenizer.chat_template = TRANSCRIPT_TEMPLATE
        self._extra_stop = (TRANSCRIPT_STOP,) if self.tokenizer.chat_template == TRANSCRIPT_TEMPLATE else ()
        eos = self.model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        # transformers 5 renamed forward's `past_key_values` to `cache`; use the name this one has.
        params = inspect.signature(self.model.forward).parameters
        self._cache_name = "cache" if "cache" in params else "past_key_values"
        self._fingerprint: str | None = None

    @staticmethod
    def _merge_adapter(model, adapter: Path):
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        except (ValueError, OSError, KeyError) as exc:
            raise EngineError(f"could not apply adapter {adapter} ({exc}); check it was trained on "
                              f"this base model") from exc

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            import transformers

            parts = [f"hf:{self.path.name}:sha256={file_fingerprint(self.path)}"]
            if self.adapter:
                parts.append(f"adapter:{self.adapter.name}:sha256={file_fingerprint(self.adapter)}")
            parts.append(f"transformers=={transformers.__version__}")
            self._fingerprint = "+".join(parts)
        return self._fingerprint

    @contextmanager
    def _threads(self):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(engine_threads(self.threads))
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(before)

    def prompt_text(self, messages, assistant_prefix: str = "") -> str:
        text = self.tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                                  add_generation_prompt=True)
        return text + assistant_prefix

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_tokens(self, messages, assistant_prefix: str = "") -> list[int]:
        """The prompt's tokens, with message contents never read as special tokens."""
        return chat_prompt_ids(self.tokenizer, messages, assistant_prefix)

    def generate(self, requests: list[GenerationRequest], cancel=None) -> list[list[Completion]]:
        """`cancel` (a threading.Event), once set, stops decoding between tokens (GenerationCancelled)."""
        started = time.perf_counter()
        seqs = []  # (request index, sample index, prompt ids)
        for r_index, request in enumerate(requests):
            check_generation(request)
            prompt = self.prompt_tokens(request.messages)
            seqs += [(r_index, sample, prompt) for sample in range(request.n)]
        out: list[list[Completion]] = [[] for _ in requests]
        with self._threads():
            for start in range(0, len(seqs), self.batch_size):
                chunk = seqs[start:start + self.batch_size]
                for (r_index, sample, prompt), (tokens, reason) in zip(chunk, self._decode(chunk, requests, cancel)):
                    raw = self.tokenizer.decode(tokens, skip_special_tokens=True)
                    text, hit = cut_at_stop(raw, (*requests[r_index].stop, *self._extra_stop))
                    out[r_index].append(Completion(text, "stop" if hit else reason, len(prompt),
                                                   len(tokens), sample))
                    self.stats.prompt_tokens += len(prompt)
                    self.stats.completion_tokens += len(tokens)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        return out

    def _decode(self, chunk, requests, cancel=None) -> list[tuple[list[int], str]]:
        """Left-padded batched sampling over the KV cache for one chunk of sequences."""
        results: list = []
        for _ in self._decode_steps(chunk, requests, results):
            stop_if_cancelled(cancel, self.name)
        return results

    def stream(self, request: GenerationRequest) -> Generator[str, None, Completion]:
        """The answer's text as tokens are sampled, by the same loop and seed as generate(); text
        that could start a stop string is held back. Returns the whole Completion."""
        check_generation(request)
        if request.n != 1:
            raise EngineError(f"engine '{self.name}': stream() takes one sample (n=1), got n={request.n}")
        started = time.perf_counter()
        prompt = self.prompt_tokens(request.messages)
        stops = (*request.stop, *self._extra_stop)
        streamed, tokens, results = StreamedText(stops), [], []
        with self._threads():
            for _, token in self._decode_steps([(0, 0, prompt)], [request], results):
                tokens.append(token)
                # Decode the whole answer each time: a token's text can depend on its neighbours.
                piece = streamed.ready(self.tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd"))
                if piece:
                    yield piece
        raw = self.tokenizer.decode(results[0][0], skip_special_tokens=True)
        piece = streamed.rest(raw)
        if piece:
            yield piece
        text, hit = cut_at_stop(raw, stops)
        self.stats.prompt_tokens += len(prompt)
        self.stats.completion_tokens += len(results[0][0])
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        return Completion(text, "stop" if hit else results[0][1], len(prompt), len(results[0][0]))

    def _decode_steps(self, chunk, requests, results: list) -> Iterator[tuple[int, int]]:
        """The sampling loop of _decode, yielding (row, token) as each text token is sampled; the
        rows' (tokens, finish reason) are appended to `results` at the end."""
        import torch

        reqs = [requests[r] for r, _, _ in chunk]
        width = max(len(p) for _, _, p in chunk)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for _, _, p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for _, _, p in chunk])
        rngs = [sequence_rng(req.seed, sample) for req, (_, sample, _) in zip(reqs, chunk)]
        outs: list[list[int]] = [[] for _ in chunk]
        reasons: list[str | None] = [None] * len(chunk)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = None
        for _ in range(max(r.max_tokens for r in reqs)):
            result = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                use_cache=True, logits_to_keep=1,
                                **({self._cache_name: past} if past is not None else {}))
            past = getattr(result, "cache", None) or getattr(result, "past_key_values", None)
            logits = result.logits[:, -1, :].float().numpy()
            picked = sample_rows(logits, [r.temperature for r in reqs], [r.top_p for r in reqs], rngs)
            for i, token in enumerate(picked):
                if reasons[i] is not None:
                    continue
                if token in self._eos:
                    reasons[i] = "stop"
                    continue
                outs[i].append(token)
                yield i, token
                stops = (*reqs[i].stop, *self._extra_stop)
                if stops and cut_at_stop(self.tokenizer.decode(outs[i][-32:]), stops)[1]:
                    reasons[i] = "stop"
                elif len(outs[i]) >= reqs[i].max_tokens:
                    reasons[i] = "length"
            if all(r is not None for r in reasons):
                break
            # Finished rows keep decoding a pad token (cheaper than reshaping the cache).
            ids = torch.tensor([[t if reasons[i] is None else pad] for i, t in enumerate(picked)])
            mask = torch.cat([mask, torch.ones(len(chunk), 1, dtype=mask.dtype)], dim=1)
            positions = positions[:, -1:] + 1
        results.extend((o, r or "length") for o, r in zip(outs, reasons))

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        """Same scoring as the llama.cpp engine: tokenize(prompt + option), sum the log-probs of
        the tokens after the part shared with tokenize(prompt)."""
        import torch

        check_choice(request)
        prefix = request.assistant_prefix
        prompt = self.prompt_tokens(request.messages, prefix)
        fulls = [self.prompt_tokens(request.messages, prefix + option) for option in request.options]
        starts = [next((i for i, (a, b) in enumerate(zip(prompt, f)) if a != b), min(len(prompt), len(f)))
                  for f in fulls]
        width = max(map(len, fulls))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([f + [pad] * (width - len(f)) for f in fulls])
        mask = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in fulls])
        with self._threads():
            logprobs = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        totals = {}
        for row, (option, full, start) in enumerate(zip(request.options, fulls, starts)):
            totals[option] = float(sum(logprobs[row, j - 1, full[j]] for j in range(start, len(full))))
        return normalise_logprobs(totals)

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        return [self.choose(r) for r in requests]

    def close(self) -> None:
        self.model = None

