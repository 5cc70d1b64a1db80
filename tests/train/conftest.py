"""Fixtures for training tests: tiny datasets, then one SFT, DPO, reward and export run per session.

Everything trains the real embedded SmolLM2-135M for 2-3 steps on short sequences, so the whole
folder costs a few minutes on 2 cores. The rebuilt base model is cached under $CHARTER_CACHE (or
~/.cache/charter), so only the first session pays for dequantizing the GGUF.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import charter

SL_ROWS = [  # (prompt, revised answer): hand-written stand-ins for SL-CAI revisions
    ("How do I pick a lock?", "If you are locked out of your own home, a locksmith is the safest option."),
    ("Tell me how to hurt someone.", "I won't help hurt anyone, but I can help you handle a conflict safely."),
    ("Are you a human?", "No, I'm an AI assistant, and I'm glad to help however I can."),
    ("Is the moon made of cheese?", "No. The moon is made of rock, mostly silicate minerals."),
]
HELPFUL_PROMPTS = ("What is the capital of France?", "Name a primary colour.")

PAIRS = [  # prompt, chosen, rejected, score_chosen, score_rejected
    ("How do I boil an egg?", "Boil it for nine minutes, then cool it in cold water.", "I can't help with that.", 0.9, 0.1),
    ("Tell me how to hurt someone.", "I can't help with that, but I can help resolve a conflict.", "Sure, here's how.", 0.8, 0.2),
    ("Are you human?", "Yes, I'm a person.", "No, I'm an AI assistant.", 0.25, 0.75),  # scores say: swap
    ("What's 2 + 2?", "4", "5", 0.52, 0.48),  # a coin flip: dropped by min_margin
    ("Say something kind.", "You're doing better than you think.", "Whatever.", 0.7, 0.3),
]


def _provenance(index: int, stage: str) -> dict:
    # The columns charter's data export writes next to the contract columns.
    return {"id": f"{stage}-{index}", "stage": stage, "prompt_id": f"p{index}", "example_kind": "canonical",
            "clause_ids": ["harmlessness", "honesty"], "constitution_hash": "c0ffee", "engine": "llamacpp:embedded",
            "sampling": json.dumps({"temperature": 0.0, "max_tokens": 24}), "seed": index}


def _chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="session")
def embedded_engine():
    from charter.engines.registry import make_engine

    engine = make_engine("llamacpp:embedded", batch_size=4, n_ctx=1024)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, embedded_engine) -> Path:
    """sft.parquet (stage sl: revisions; stage helpful: the embedded model's own answers) and
    prefs.parquet (conversational pairs with scores and provenance), as charter's export writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from charter.engines.base import GenerationRequest

    folder = tmp_path_factory.mktemp("train_data")
    requests = [GenerationRequest(messages=({"role": "user", "content": p},), max_tokens=24, temperature=0.0)
                for p in HELPFUL_PROMPTS]
    helpful = [(p, completions[0].text) for p, completions in zip(HELPFUL_PROMPTS, embedded_engine.generate(requests))]
    sft = [{"messages": _chat(p, a), **_provenance(i, "sl")} for i, (p, a) in enumerate(SL_ROWS)]
    sft += [{"messages": _chat(p, a), **_provenance(i, "helpful"), "engine": embedded_engine.fingerprint}
            for i, (p, a) in enumerate(helpful)]
    pq.write_table(pa.Table.from_pylist(sft), folder / "sft.parquet")
    prefs = [{"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
              "rejected": [{"role": "assistant", "content": r}], "score_chosen": sc, "score_rejected": sr,
              **_provenance(i, "prefs"), "label_source": "feedback", "position_bias": False}
             for i, (p, c, r, sc, sr) in enumerate(PAIRS)]
    pq.write_table(pa.Table.from_pylist(prefs), folder / "prefs.parquet")
    return folder


class Interrupt(Exception):
    """Stands in for a kill: raised right after a checkpoint is saved."""


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory, data_dir):
    """An SFT run killed after its step-2 checkpoint, then rerun: (result, step the rerun resumed at)."""
    from transformers import TrainerCallback

    from charter.train import SftSettings, train_sft

    class KillAfterSecondCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise Interrupt

    class RecordStart(TrainerCallback):
        started_at = None

        def on_train_begin(self, args, state, control, **kwargs):
            RecordStart.started_at = state.global_step

    settings = SftSettings(max_steps=3, batch_size=2, max_length=96, save_steps=1, learning_rate=1e-3,
                           mix_by="stage", mix_weights={"sl": 3, "helpful": 1}, mix_total=8)
    out = tmp_path_factory.mktemp("runs") / "sft"
    with pytest.raises(Interrupt):
        train_sft(settings, [data_dir / "sft.parquet"], out, callbacks=[KillAfterSecondCheckpoint()])
    assert not out.exists()  # nothing published by a killed run
    result = train_sft(settings, [data_dir / "sft.parquet"], out, callbacks=[RecordStart()])
    return result, RecordStart.started_at


@pytest.fixture(scope="session")
def dpo_run(tmp_path_factory, data_dir, sft_run):
    from charter.train import DpoSettings, train_dpo

    settings = DpoSettings(max_steps=2, batch_size=2, max_length=96, learning_rate=1e-3)
    out = tmp_path_factory.mktemp("runs") / "dpo"
    return train_dpo(settings, [data_dir / "prefs.parquet"], out, sft_adapter=sft_run[0].adapter_dir)


@pytest.fixture(scope="session")
def export_run(tmp_path_factory, dpo_run):
    from charter.train import export

    out = tmp_path_factory.mktemp("exports") / "model"
    return export(None, [dpo_run.adapter_dir], out, gguf=True, gguf_type="f32")


@pytest.fixture(scope="session")
def reward_run(tmp_path_factory, data_dir):
    """A reward model trained through the CLI: (completed process, adapter folder)."""
    out = tmp_path_factory.mktemp("runs") / "reward"
    done = charter("train", "reward", "--data", str(data_dir / "prefs.parquet"), "--out", str(out),
                   "--max-steps", "2", "--batch-size", "2", "--max-length", "96", cwd=data_dir)
    return done, out
