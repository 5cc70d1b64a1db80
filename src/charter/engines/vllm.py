"""In-process vLLM (GPU machines): `vllm:MODEL` with a Hub name or a local folder.

Options: lora=FOLDER (a PEFT LoRA adapter, applied per request), max_lora_rank=INT (64),
gpu_memory_utilization=FLOAT (0.85), max_model_len=INT, dtype=STR ("auto"),
tensor_parallel_size=INT (1), enforce_eager=BOOL (False).

Prefix caching is always on: the constitution's critique/revision prompts share long prefixes,
and every one of a request's n samples is its own vLLM request with seed + i * 1_000_003 (so a
sample depends on its seed and index only, like the other engines) whose prompt hits the cache.
`stats.extra["prefix_cache_hit_rate"]` is cached prompt tokens / prompt tokens so far.
"""

from __future__ import annotations

import time
from pathlib import Path

from charter.engines.base import ChoiceRequest, Completion, EngineStats, GenerationRequest
from charter.engines.common import (
    chat_prompt_ids,
    check_choice,
    check_generation,
    check_options,
    file_fingerprint,
    normalise_logprobs,
)
from charter.engines.openai_http import sample_seed
from charter.errors import EngineError

OPTIONS = ("lora", "max_lora_rank", "gpu_memory_utilization", "max_model_len", "dtype",
           "tensor_parallel_size", "enforce_eager")


class VLLMEngine:
    def __init__(self, model: str, *, name: str = "vllm", lora: str | None = None,
                 max_lora_rank: int = 64, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, dtype: str = "auto", tensor_parallel_size: int = 1,
                 enforce_eager: bool = False, **unknown):
        check_options(name, unknown, OPTIONS)
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise EngineError(f"engine '{name}' needs vLLM, which is not installed here ({exc}); "
                              f"install charter[gpu] on a GPU machine or use llamacpp:/hf:") from exc
        self.name, self.model_name = name, model
        self.lora_path = Path(lora).expanduser() if lora else None
        if self.lora_path and not self.lora_path.is_dir():
            raise EngineError(f"engine '{name}': LoRA adapter folder {self.lora_path} does not exist")
        self.stats = EngineStats(extra={"prompt_tokens_cached": 0, "prefix_cache_hit_rate": 0.0})
        self.llm = LLM(model=model, enable_prefix_caching=True, enable_lora=self.lora_path is not None,
                       max_lora_rank=int(max_lora_rank), gpu_memory_utilization=float(gpu_memory_utilization),
                       max_model_len=max_model_len, dtype=dtype,
                       tensor_parallel_size=int(tensor_parallel_size), enforce_eager=bool(enforce_eager))
        self.tokenizer = self.llm.get_tokenizer()
        self._lora = LoRARequest("charter-adapter", 1, str(self.lora_path)) if self.lora_path else None
        self.lora_enabled = True  # False: the base model, without reloading (for comparisons)

    @property
    def fingerprint(self) -> str:
        import vllm

        local = Path(self.model_name)
        model = f"{local.name}:sha256={file_fingerprint(local)}" if local.exists() else self.model_name
        lora = f"+lora:{self.lora_path.name}:sha256={file_fingerprint(self.lora_path)}" if self.lora_path else ""
        return f"vllm:{model}{lora}+vllm=={vllm.__version__}"

    def _ids(self, messages, assistant_prefix: str = "") -> list[int]:
        """Token ids of the chat prompt, computed here rather than by vLLM from text: message
        contents are never read as special tokens (a typed `<|im_start|>system` stays text)."""
        return chat_prompt_ids(self.tokenizer, messages, assistant_prefix)

    def _run(self, prompts: list[list[int]], params: list) -> list:
        started = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], sampling_params=params,
                                    lora_request=self._lora if self.lora_enabled else None,
                                    use_tqdm=False)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - started
        for output in outputs:
            self.stats.prompt_tokens += len(output.prompt_token_ids)
            self.stats.extra["prompt_tokens_cached"] += int(getattr(output, "num_cached_tokens", 0) or 0)
        if self.stats.prompt_tokens:
            self.stats.extra["prefix_cache_hit_rate"] = \
                self.stats.extra["prompt_tokens_cached"] / self.stats.prompt_tokens
        return outputs

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        from vllm import SamplingParams

        prompts, params, owners = [], [], []
        for r_index, request in enumerate(requests):
            check_generation(request)
            ids = self._ids(request.messages)
            for sample in range(request.n):
                prompts.append(ids)
                params.append(SamplingParams(n=1, max_tokens=request.max_tokens,
                                             temperature=request.temperature, top_p=request.top_p,
                                             stop=list(request.stop) or None,
                                             seed=sample_seed(request.seed, sample)))
                owners.append((r_index, sample))
        out: list[list[Completion]] = [[] for _ in requests]
        for (r_index, sample), result in zip(owners, self._run(prompts, params)):
            best = result.outputs[0]
            completion = Completion(best.text, "length" if best.finish_reason == "length" else "stop",
                                    len(result.prompt_token_ids), len(best.token_ids), sample)
            self.stats.completion_tokens += completion.completion_tokens
            out[r_index].append(completion)
        return out

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        return self.choose_many([request])[0]

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        """Exact scoring with prompt log-probabilities: each option is a prompt of
        tokenize(prompt + option); the option's tokens (those after the part shared with the bare
        prompt) have their log-probs summed. The shared prompt hits the prefix cache."""
        from vllm import SamplingParams

        prompts, spans = [], []
        for request in requests:
            check_choice(request)
            base = self._ids(request.messages, request.assistant_prefix)
            for option in request.options:
                full = self._ids(request.messages, request.assistant_prefix + option)
                start = next((i for i, (a, b) in enumerate(zip(base, full)) if a != b), min(len(base), len(full)))
                prompts.append(full)
                spans.append(start)
        params = [SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)] * len(prompts)
        results = iter(zip(self._run(prompts, params), spans))
        answers = []
        for request in requests:
            totals = {}
            for option in request.options:
                result, start = next(results)
                ids = result.prompt_token_ids
                totals[option] = sum(result.prompt_logprobs[j][ids[j]].logprob for j in range(max(start, 1), len(ids)))
            answers.append(normalise_logprobs(totals))
        return answers

    def close(self) -> None:
        self.llm = None
