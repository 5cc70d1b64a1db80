"""`charter train` and `charter export` through the real entry point."""

from __future__ import annotations

import pytest

from .helpers import charter


def test_missing_data_is_one_line_error(tmp_path):
    done = charter("train", "dpo", "--data", "nope.parquet", "--out", "x", cwd=tmp_path)
    assert done.returncode == 2
    assert "nope.parquet does not exist" in done.stderr and "Traceback" not in done.stderr


def test_bad_mix_option_is_refused(tmp_path):
    done = charter("train", "sft", "--data", "a.jsonl", "--out", "x", "--mix-by", "stage", "--mix", "sl",
                   cwd=tmp_path)
    assert done.returncode == 2 and "VALUE=WEIGHT" in done.stderr


@pytest.mark.slow
def test_finished_sft_rerun_is_skipped(sft_run, data_dir):
    result, _ = sft_run
    done = charter("train", "sft", "--data", str(data_dir / "sft.parquet"), "--out", str(result.adapter_dir),
                   "--max-steps", "3", cwd=data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already complete, skipped" in done.stdout


@pytest.mark.slow
def test_export_q8_gguf_runs_in_llama_cpp(dpo_run, tmp_path):
    import llama_cpp

    out = tmp_path / "q8"
    done = charter("export", "--adapter", str(dpo_run.adapter_dir), "--out", str(out), "--gguf-type", "q8_0",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    gguf_path = out / "model.q8_0.gguf"
    assert gguf_path.is_file() and (out / "hf" / "model.safetensors").is_file()
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=256, logits_all=False, verbose=False)
    try:
        text = llm.create_chat_completion([{"role": "user", "content": "Hi!"}], max_tokens=8,
                                          temperature=0.0)["choices"][0]["message"]["content"]
    finally:
        llm.close()
    assert text.strip()
