"""A prepared check of the vLLM engine on a GPU machine: load, generate, choose, prefix cache, LoRA.

    python bench/vllm_check.py --model /path/to/model-folder [--lora /path/to/peft-adapter]
    python bench/vllm_check.py --model HuggingFaceTB/SmolLM2-135M-Instruct   # needs the Hub
    python bench/vllm_check.py --model FOLDER --run     # also `charter run --policy vllm:FOLDER`

With --run, after the engine checks it runs the whole pipeline with the vLLM model as the policy
(`charter run --policy vllm:MODEL --limit 8 --max-steps 5`), and
checks that the model trained, exported and evaluated before and after is that model.

Without --lora it makes a random rank-8 PEFT adapter for the model itself (needs peft and
transformers), so the LoRA path is always exercised. Prints one line per figure; exits non-zero
when a check fails. Sized to finish in a few minutes on one GPU, model load included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charter.engines.base import ChoiceRequest, GenerationRequest
from charter.engines.registry import make_engine

SYSTEM = ("You are a careful assistant. Follow the constitution: be honest, avoid harm, respect "
          "autonomy, and explain your reasoning briefly. ") * 8  # a long shared prefix


def random_adapter(model: str, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    torch.manual_seed(0)
    peft = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--lora", default="")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--run", action="store_true", help="Also charter run --policy vllm:MODEL end to end")
    args = parser.parse_args()
    failures = 0

    with tempfile.TemporaryDirectory() as tmp:
        lora = Path(args.lora) if args.lora else random_adapter(args.model, Path(tmp) / "adapter")
        started = time.perf_counter()
        engine = make_engine(f"vllm:{args.model}", lora=str(lora), gpu_memory_utilization=0.6)
        print(f"load_seconds {time.perf_counter() - started:.1f}")
        print(f"fingerprint {engine.fingerprint}")
        engine.lora_enabled = False  # the base model first

        requests = [GenerationRequest(({"role": "system", "content": SYSTEM},
                                       {"role": "user", "content": f"Give me tip number {i} for writing clearly."}),
                                      n=2, max_tokens=args.max_tokens, temperature=0.8, seed=i)
                    for i in range(args.prompts)]
        started = time.perf_counter()
        out = engine.generate(requests)
        seconds = time.perf_counter() - started
        tokens = sum(c.completion_tokens for r in out for c in r)
        print(f"generate_sequences {sum(len(r) for r in out)} tokens {tokens} seconds {seconds:.2f} "
              f"tok_per_s {tokens / seconds:.0f}")
        hit_rate = engine.stats.extra["prefix_cache_hit_rate"]
        print(f"prefix_cache_hit_rate {hit_rate:.3f}")
        failures += hit_rate < 0.5
        same = engine.generate(requests[:4]) == out[:4]
        print(f"seeded_repeat_identical {same}")
        failures += not same

        capital = ChoiceRequest(({"role": "user", "content": "What is the capital of France?"},),
                                ("Paris", "London", "Berlin"), assistant_prefix="The capital of France is ")
        probs = engine.choose(capital)
        print(f"choose {probs}")
        failures += abs(sum(probs.values()) - 1) > 1e-6 or max(probs, key=probs.get) != "Paris"
        started = time.perf_counter()
        many = engine.choose_many([capital] * 64)
        print(f"choose_many_64_seconds {time.perf_counter() - started:.2f}")
        failures += len(many) != 64

        engine.lora_enabled = True
        tuned = engine.choose(capital)
        changed = any(abs(tuned[k] - probs[k]) > 1e-4 for k in probs)
        lora_text = engine.generate(requests[:2])
        print(f"lora_choose {tuned} changed {changed}")
        print(f"lora_generate_differs {lora_text != out[:2]}")
        failures += not changed
        engine.close()

    if args.run:
        failures += pipeline_check(args.model)
    print(f"failures {failures}")
    return 1 if failures else 0


def pipeline_check(model: str) -> int:
    """`charter run` with the vLLM model as policy, tiny: the trained and evaluated model is it."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        charter = str(Path(sys.executable).parent / "charter")
        command = [charter, "run", "--policy", f"vllm:{model}", "--out", str(out),
                   "--limit", "8", "--max-steps", "5", "--eval-limit", "8", "--suites", "harmful,overrefusal"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        print(f"charter_run_seconds {time.perf_counter() - started:.0f} returncode {done.returncode}")
        if done.returncode != 0:
            print(done.stdout[-2000:] + done.stderr[-2000:])
            return 1
        base = json.loads((out / "eval" / "base" / "eval.json").read_text())["meta"]
        trained = json.loads((out / "train" / "dpo" / "charter_train.json").read_text())["base"]
        print(f"charter_run_base_eval {base['engine']} trained_base {trained['spec']}")
        stages = json.loads((out / "manifest.json").read_text())["done"]
        print("charter_run_stage_seconds " + " ".join(f"{k.split(':')[1]}={v.get('seconds')}"
                                                       for k, v in stages.items() if k.startswith("pipeline:")))
        return int(base["engine"] != f"vllm:{model}" or trained["spec"] != model)


if __name__ == "__main__":
    raise SystemExit(main())
