"""The embedded default engine: llama.cpp (llama-cpp-python) on a local GGUF file.

Options (as `@key=value` on the engine string or keyword arguments):
    lora=PATH.gguf       a LoRA adapter in GGUF form (convert a PEFT folder with llama.cpp's
                         convert_lora_to_gguf.py); lora_scale=FLOAT (default 1.0)
    batch_size=INT       sequences decoded together (default 64); batch_size=1 or batched=false
                         uses the simple one-at-a-time path through Llama.create_completion
    n_ctx=INT            context of the single-sequence paths (choose, fallback); default 4096
    compute_type=auto|native|q8_0|bf16|f16|f32   the weights computation uses; auto (default)
                         runs a Q4/Q5/K-quant file as a cached Q8_0 copy: 1.8x faster batches and
                         batch-independent samples (see llamacpp_convert.py); native = as shipped
    n_threads=INT        default: every usable CPU, the same on every run (common.engine_threads)
    flash_attn=BOOL      llama.cpp flash attention; default: llama.cpp decides (on for CPU)
    min_shared_prefix=INT  prompt tokens two sequences must share before the batched path copies
                         the prefix's KV instead of recomputing it (default 16)

Prompts are the model's own chat template (GGUF metadata `tokenizer.chat_template`) rendered with
jinja2. Sampling is temperature + top-p in numpy with one generator per (seed, sample index), so a
completion does not depend on what else was in the batch.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import lru_cache
from pathlib import Path

from charter.engines.base import ChoiceRequest, Completion, EngineStats, GenerationRequest
from charter.engines.common import (
    TRANSCRIPT_STOP,
    TRANSCRIPT_TEMPLATE,
    StreamedText,
    check_choice,
    check_generation,
    check_options,
    cut_at_stop,
    engine_threads,
    file_fingerprint,
    prompt_segments,
    render_chat_template,
    stop_if_cancelled,
)
from charter.engines.llamacpp_batch import BatchedDecoder, Job
from charter.engines.llamacpp_build import installed_version, load_backends, require_working_build
from charter.engines.llamacpp_convert import COMPUTE_TYPES, working_model
from charter.engines.llamacpp_scoring import OptionScorer
from charter.engines.sampling import sequence_rng
from charter.errors import EngineError

OPTIONS = ("lora", "lora_scale", "batch_size", "batched", "n_ctx", "n_threads", "min_shared_prefix",
           "flash_attn", "compute_type")


class LlamaCppEngine:
    def __init__(self, model_path: str | Path, *, name: str = "llamacpp", lora: str | None = None,
                 lora_scale: float = 1.0, batch_size: int = 64, batched: bool = True,
                 n_ctx: int = 4096, n_threads: int | None = None, min_shared_prefix: int = 16,
                 flash_attn: bool | None = None, compute_type: str = "auto", **unknown):
        check_options(name, unknown, OPTIONS)
        # A build that crashes on this CPU must be an error message, not a dead process.
        require_working_build(model_path)
        import llama_cpp

        load_backends()

        self.name = name
        self.model_path = Path(model_path)
        self.lora_path = Path(lora).expanduser() if lora else None
        self.lora_scale = float(lora_scale)
        self.stats = EngineStats()
        threads = engine_threads(n_threads)
        self.stats.extra["threads"] = threads
        if self.lora_path and not self.lora_path.is_file():  # before the slow part
            raise EngineError(f"engine '{name}': LoRA file {self.lora_path} does not exist; "
                              f"check the lora= path")
        batched = bool(batched) and int(batch_size) > 1
        if compute_type not in ("auto", "native", *COMPUTE_TYPES):
            raise EngineError(f"engine '{name}': compute_type must be auto, native or one of "
                              f"{', '.join(COMPUTE_TYPES)}; got {compute_type!r}")
        working_path, self.compute_type = working_model(self.model_path, compute_type)
        # The Llama object's own context only serves the one-at-a-time path: keep it tiny when
        # batching, unless the model is recurrent (its state cannot be trimmed to a prefix, which
        # the batched path relies on).
        self._llm = self._load(working_path, 64 if batched else int(n_ctx), threads, flash_attn)
        recurrent = llama_cpp.llama_model_is_recurrent(self._llm.model) or \
            llama_cpp.llama_model_is_hybrid(self._llm.model)
        if batched and recurrent:
            self._llm.close()
            self._llm = self._load(working_path, int(n_ctx), threads, flash_attn)
            batched = False
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._adapters = self._load_lora(llama_cpp) if self.lora_path else []
        if self._adapters:  # the fallback and scoring paths use the Llama object's own context too
            from charter.engines.llamacpp_batch import apply_adapters

            apply_adapters(self._llm.ctx, self._adapters)
        meta = self._llm.metadata
        # No template (a base model): the plain transcript the trainers use for it too.
        self._template = meta.get("tokenizer.chat_template") or TRANSCRIPT_TEMPLATE
        self._extra_stop = (TRANSCRIPT_STOP,) if self._template == TRANSCRIPT_TEMPLATE else ()
        self._bos = self._token_text(self._llm.token_bos())
        self._eos = self._token_text(self._llm.token_eos())
        self._piece = lru_cache(maxsize=None)(lambda t: self._llm.detokenize([t]))
        self._decoder = None
        if batched:
            self._decoder = BatchedDecoder(
                self._llm.model, self._vocab, slots=int(batch_size), threads=threads,
                adapters=self._adapters, piece=self._piece,
                is_eog=lambda t: llama_cpp.llama_vocab_is_eog(self._vocab, t),
                min_shared_prefix=int(min_shared_prefix), flash_attn=flash_attn)
        self._scorer = OptionScorer(self._llm.model, self._vocab, threads=threads,
                                    adapters=self._adapters, n_ctx=int(n_ctx), flash_attn=flash_attn)
        self._fingerprint: str | None = None

    def _load(self, path: Path, n_ctx: int, threads: int, flash_attn: bool | None):
        from llama_cpp import Llama

        try:
            return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         flash_attn=bool(flash_attn), verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"engine '{self.name}': llama.cpp could not load {self.model_path} "
                              f"({exc}); check it is a GGUF model file") from exc

    def _load_lora(self, llama_cpp) -> list:
        adapter = llama_cpp.llama_adapter_lora_init(self._llm.model, str(self.lora_path).encode())
        if not adapter:  # a NULL pointer (falsy), not None
            raise EngineError(f"engine '{self.name}': {self.lora_path} is not a LoRA adapter for "
                              f"this model; convert the PEFT folder with convert_lora_to_gguf.py")
        return [(adapter, self.lora_scale)]

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = file_fingerprint(self.model_path)
            parts = [f"llamacpp:{self.model_path.name}:sha256={digest}:compute={self.compute_type}"]
            if self.lora_path:
                parts.append(f"lora:{self.lora_path.name}:sha256={file_fingerprint(self.lora_path)}"
                             f"@{self.lora_scale:g}")
            mode = "batched" if self._decoder else "single"
            parts.append(f"llama-cpp-python=={installed_version()}:{mode}")
            self._fingerprint = "+".join(parts)
        return self._fingerprint

    # -- prompts ---------------------------------------------------------------------------
    def prompt_text(self, messages, assistant_prefix: str = "") -> str:
        messages = [dict(m) for m in messages]
        text = render_chat_template(self._template, messages, bos_token=self._bos, eos_token=self._eos)
        return text + assistant_prefix

    def context_tokens(self) -> int:
        """The window a prompt may fill: the training context on the batched path (each sequence
        gets up to it), the context loaded on the single-sequence path."""
        return int(self._llm._model.n_ctx_train() if self._decoder is not None else self._llm.n_ctx())

    def tokenize(self, text: str) -> list[int]:
        add_bos = not (self._bos and text.startswith(self._bos))  # template may add BOS itself
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _has_special_text(self, text: str) -> bool:
        """Whether `text` holds the text of a special token (`<|im_start|>`...), which parsing
        with special=True would turn into that token."""
        raw = text.encode("utf-8")
        return self._llm.tokenize(raw, add_bos=False, special=True) != \
            self._llm.tokenize(raw, add_bos=False, special=False)

    def _prompt_tokens(self, messages, assistant_prefix: str = "") -> list[int]:
        if any(self._has_special_text(m["content"]) for m in messages):
            tokens = self._segment_tokens(messages, assistant_prefix)
        else:  # the usual case: one tokenization of the whole prompt, as llama.cpp's own server does
            tokens = self.tokenize(self.prompt_text(messages, assistant_prefix))
        limit = self._llm._model.n_ctx_train()
        if len(tokens) >= limit:
            raise EngineError(f"engine '{self.name}': prompt of {len(tokens)} tokens is longer than "
                              f"the model's {limit}-token context; shorten it")
        return tokens

    def _segment_tokens(self, messages, assistant_prefix: str) -> list[int]:
        """Message contents tokenized as plain text (special=False); the template's own text,
        where the real control tokens are, with special=True."""
        def render(marked):
            return render_chat_template(self._template, [dict(m) for m in marked], bos_token=self._bos,
                                        eos_token=self._eos)

        tokens: list[int] = []
        for index, (text, is_content) in enumerate(prompt_segments(render, list(messages), assistant_prefix)):
            raw = text.encode("utf-8")
            if is_content:
                tokens += self._llm.tokenize(raw, add_bos=index == 0, special=False)
            else:
                tokens += self.tokenize(text) if index == 0 else self._llm.tokenize(raw, add_bos=False,
                                                                                     special=True)
        return tokens

    # -- Engine protocol ---------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest], cancel=None) -> list[list[Completion]]:
        """`cancel` (a threading.Event), once set, stops decoding between steps (GenerationCancelled)."""
        import time

        started = time.perf_counter()
        jobs, owners = [], []
        for r_index, request in enumerate(requests):
            check_generation(request)
            prompt = self._prompt_tokens(request.messages)
            stops = (*request.stop, *self._extra_stop)
            for sample in range(request.n):
                jobs.append(Job(prompt, request.max_tokens, request.temperature, request.top_p,
                                tuple(s.encode() for s in stops if s),
                                sequence_rng(request.seed, sample)))
                owners.append((r_index, sample))
        if self._decoder is not None:
            results = [(r.tokens, r.finish_reason) for r in self._decoder.run(jobs, cancel)]
            self.stats.extra.update(self._decoder.stats)
        else:
            results = []
            for job, (r, s) in zip(jobs, owners):
                stop_if_cancelled(cancel, self.name)
                results.append(self._generate_one(job, requests[r].seed, s))
        out: list[list[Completion]] = [[] for _ in requests]
        for job, (r_index, sample), (tokens, reason) in zip(jobs, owners, results):
            raw = self._llm.detokenize(tokens).decode("utf-8", errors="replace")
            text, hit = cut_at_stop(raw, (*requests[r_index].stop, *self._extra_stop))
            out[r_index].append(Completion(text, "stop" if hit else reason, len(job.prompt),
                                           len(tokens), sample))
            self.stats.prompt_tokens += len(job.prompt)
            self.stats.completion_tokens += len(tokens)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        return out

    def stream(self, request: GenerationRequest) -> Generator[str, None, Completion]:
        """The answer's text as its tokens are sampled: the same sampler, seed and stop rules as
        generate(), so a streamed answer is the generated one. Text that could be the start of a
        stop string is held back until it is known not to be one. Returns (StopIteration.value)
        the whole Completion, with its token counts and finish reason."""
        import time

        check_generation(request)
        if request.n != 1:
            raise EngineError(f"engine '{self.name}': stream() takes one sample (n=1), got n={request.n}")
        if self._decoder is None:  # the one-at-a-time path has no token hook: send the answer whole
            completion = self.generate([request])[0][0]
            yield completion.text
            return completion
        started = time.perf_counter()
        stops = tuple(s for s in (*request.stop, *self._extra_stop) if s)
        job = Job(self._prompt_tokens(request.messages), request.max_tokens, request.temperature, request.top_p,
                  tuple(s.encode() for s in stops), sequence_rng(request.seed, 0))
        streamed, raw, tokens = StreamedText(stops), b"", 0
        results: list = [None]
        for _, token in self._decoder.iter_run([job], results):
            tokens += 1
            raw += self._piece(token)
            piece = streamed.ready(raw.decode("utf-8", errors="ignore"))  # a split character waits
            if piece:
                yield piece
        text = raw.decode("utf-8", errors="replace")
        piece = streamed.rest(text)
        if piece:
            yield piece
        final, hit = cut_at_stop(text, stops)
        self.stats.prompt_tokens += len(job.prompt)
        self.stats.completion_tokens += tokens
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        reason = "stop" if hit or results[0] is None else results[0].finish_reason
        return Completion(final, reason, len(job.prompt), tokens)

    def _generate_one(self, job: Job, seed: int, sample: int) -> tuple[list[int], str]:
        """The simple path: one sequence at a time through llama-cpp-python's own sampler."""
        tokens: list[int] = []
        reason = "length"
        self._llm.set_seed((seed * 1_000_003 + sample) & 0xFFFFFFFF)
        # Start from an empty cache. Llama.generate would otherwise reuse the previous call's
        # prompt KV and decode only the last prompt token, in a batch of a different shape: the
        # logits then depend on what ran before, and on some CPUs (seen on an AVX-512 Xeon) a
        # seeded sample changed from its first token.
        self._llm.reset()
        stream = self._llm.generate(job.prompt, temp=max(0.0, job.temperature), top_p=job.top_p,
                                    top_k=0, min_p=0.0, repeat_penalty=1.0, reset=True)
        text = b""
        for token in stream:
            if self._lib.llama_vocab_is_eog(self._vocab, token):
                reason = "stop"
                break
            tokens.append(token)
            text += self._piece(token)
            if any(s in text for s in job.stop):
                reason = "stop"
                break
            if len(tokens) >= job.max_tokens or len(job.prompt) + len(tokens) >= self._llm.n_ctx():
                break
        return tokens, reason

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        check_choice(request)
        prefix = request.assistant_prefix
        return self._scorer.choose(self._prompt_tokens(request.messages, prefix),
                                   [self._prompt_tokens(request.messages, prefix + o) for o in request.options],
                                   request.options)

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        return [self.choose(r) for r in requests]

    def reset_cache(self) -> None:
        """Forget prompt prefixes kept from earlier calls. Results never depend on them (each
        generate() starts from an empty cache; choose() reuses only block-aligned KV that is
        bit-identical to a fresh computation), so this only frees the scorer's cached prompt.
        Kept because resumable data stages call it before each work batch (docs/data.md)."""
        if getattr(self, "_scorer", None) is not None:
            self._scorer.forget()

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        if getattr(self, "_llm", None) is not None:
            self._scorer.close()
            self._llm.close()  # frees the model, and with it its LoRA adapters
            self._llm = None
        self._adapters = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

