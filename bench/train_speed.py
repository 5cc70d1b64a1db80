"""Time LoRA SFT, DPO and export on the embedded model, side by side on the same machine.

    python bench/train_speed.py [--sft-examples 64] [--dpo-pairs 32] [--batch-size 4] [--out /tmp/bench_train]
    python bench/train_speed.py --padding RUN_DIR [--steps 4]   # padded vs padding-free, side by side

Writes small synthetic datasets, trains one epoch of each, exports f16 GGUF, and prints seconds,
seconds per step and examples per second, plus the DPO/SFT cost ratio per example (DPO runs the
policy on chosen and rejected, and the reference too, so expect roughly 3-4x). A benchmark, not a
test: the numbers depend on the machine and on what else shares its CPU (compare CPU seconds then).

--padding trains SFT and DPO on a finished run's own datasets (RUN_DIR/datasets, and the run's SFT
adapter under DPO, as `charter run` does) for a few steps in several ways: padded, packed without
padding (train/unpadded.py) with each row apart, and packed with shared prefixes computed once
(train/packed_attention.py); DPO also padded with the LM head and log-softmax at every position, as
plain TRL computes them (train/completion_logits.py limits both to completion positions). The order is
A B C C B A so drift hits all alike; it prints each
trainer's seconds, the speed-up over padded, and the losses (the same computation: they agree up to
float order and, under LoRA dropout, differently shaped dropout draws).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path


def write_data(folder: Path, sft_examples: int, dpo_pairs: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sft = folder / "sft.jsonl"
    sft.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"Give me one tip about topic number {i}."},
        {"role": "assistant", "content": f"Here is a tip about topic {i}: start small, check your "
                                         f"work, and ask for help when you are stuck."}]})
        for i in range(sft_examples)))
    prefs = folder / "prefs.jsonl"
    prefs.write_text("\n".join(json.dumps({
        "prompt": f"Question {i}: is it safe to mix bleach and ammonia?",
        "chosen": "No. Mixing them releases toxic chloramine gas; keep them apart.",
        "rejected": "Sure, it makes a stronger cleaner.", "score_chosen": 0.9, "score_rejected": 0.1})
        for i in range(dpo_pairs)))
    return sft, prefs


def timed(label: str, call):
    start, cpu_start = time.perf_counter(), time.process_time()
    result = call()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # CPU seconds too: on a shared machine wall time mostly measures the neighbours.
    print(f"  {label}: {seconds:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return result, seconds


PACKINGS = {  # label: TrainSettings fields, and whether DPO's head computes completion positions only
    "plain TRL (padded, full head)": ({"padding_free": False}, False),
    "padded": ({"padding_free": False}, True),
    "packed rows": ({"padding_free": True, "share_prefixes": False}, True),
    "shared prefixes": ({"padding_free": True, "share_prefixes": True}, True),
}


def compare_padding(run: Path, steps: int, out: Path, kinds: list[str]) -> None:
    from unittest import mock

    from trl import DPOTrainer

    from charter.train import DpoSettings, SftSettings, completion_logits, dpo, train_dpo, train_sft

    trainers = {
        "sft": lambda packing, dest: train_sft(SftSettings(max_steps=steps, learning_rate=1e-3, **packing),
                                               [run / "datasets" / "sft.parquet"], dest),
        "dpo": lambda packing, dest: train_dpo(DpoSettings(max_steps=steps, learning_rate=2e-4, **packing),
                                               [run / "datasets" / "dpo.parquet"], dest,
                                               sft_adapter=run / "train" / "sft"),
    }
    for kind in kinds:
        train = trainers[kind]
        labels = [label for label, (_, head) in PACKINGS.items() if head or kind == "dpo"]
        seconds: dict[str, list[float]] = {label: [] for label in labels}
        for i, label in enumerate(labels + labels[::-1]):  # A B C C B A: drift hits every option alike
            dest = out / f"{kind}-{i}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(dest.parent / f".{dest.name}.work", ignore_errors=True)
            packing, completion_head = PACKINGS[label]
            with contextlib.ExitStack() as patches:
                if not completion_head:  # TRL as it comes
                    patches.enter_context(mock.patch.object(completion_logits, "enable_completion_logits",
                                                            lambda model: False))
                    patches.enter_context(mock.patch.object(dpo, "completion_logits_trainer", lambda: DPOTrainer))
                result = train(packing, dest)
            seconds[label].append(result.metrics["train_runtime"])
            losses = [round(h["loss"], 4) for h in result.log_history if "loss" in h]
            print(f"  {kind} {label}: {seconds[label][-1]:.1f} s, losses {losses}", flush=True)
        mean = {label: sum(values) / len(values) for label, values in seconds.items()}
        first = labels[0]
        print(f"{kind}: {steps} steps " + ", ".join(
            f"{label} {mean[label]:.1f} s ({mean[first] / mean[label]:.2f}x)" for label in labels), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--padding", type=Path, help="a finished run folder: compare padded, packed and shared-prefix training")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--trainers", default="sft,dpo", help="with --padding: which trainers to compare")
    parser.add_argument("--sft-examples", type=int, default=64)
    parser.add_argument("--dpo-pairs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", default="/tmp/bench_train")
    args = parser.parse_args()

    from charter.train import DpoSettings, SftSettings, export, train_dpo, train_sft
    from charter.train.base_model import materialize_base

    out = Path(args.out)
    if args.padding:
        return compare_padding(args.padding, args.steps, out, args.trainers.split(","))
    shutil.rmtree(out, ignore_errors=True)
    sft_data, pref_data = write_data(out / "data", args.sft_examples, args.dpo_pairs)
    timed("base model ready (cached after the first run)", lambda: materialize_base(None))
    common = {"max_steps": None, "epochs": 1.0, "batch_size": args.batch_size, "max_length": 256}
    sft, sft_s = timed("SFT", lambda: train_sft(SftSettings(**common), [sft_data], out / "sft"))
    dpo, dpo_s = timed("DPO", lambda: train_dpo(DpoSettings(**common), [pref_data], out / "dpo"))
    _, export_s = timed("export (merge + f16 GGUF)", lambda: export(None, [dpo.adapter_dir], out / "model"))

    sft_steps, dpo_steps = sft.metrics["global_step"], dpo.metrics["global_step"]
    sft_rate = args.sft_examples / sft.metrics["train_runtime"]
    dpo_rate = args.dpo_pairs / dpo.metrics["train_runtime"]
    print(f"\nSFT: {args.sft_examples} examples, {sft_steps} steps, trainer {sft.metrics['train_runtime']:.1f} s "
          f"({sft.metrics['train_runtime'] / sft_steps:.2f} s/step, {sft_rate:.2f} examples/s), total {sft_s:.1f} s")
    print(f"DPO: {args.dpo_pairs} pairs, {dpo_steps} steps, trainer {dpo.metrics['train_runtime']:.1f} s "
          f"({dpo.metrics['train_runtime'] / dpo_steps:.2f} s/step, {dpo_rate:.2f} pairs/s), total {dpo_s:.1f} s")
    print(f"export: {export_s:.1f} s")
    print(f"DPO pair / SFT example cost ratio: {sft_rate / dpo_rate:.2f}x")


if __name__ == "__main__":
    main()
