"""The route to GGUF for architectures charter's Llama writer does not handle: llama.cpp's own
converter, and what happens when it cannot convert a model (the run goes on from the HF folder)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from charter.train.gguf_convert import GgufUnavailable, convert_with_llama_cpp, converter_path


def test_setup_unpacked_the_converter_beside_the_engine():
    """`make setup` puts llama.cpp's converter, its conversion package and gguf-py in the venv."""
    script = converter_path()
    assert script is not None and script.name == "convert_hf_to_gguf.py"
    assert (script.parent / "conversion" / "gemma.py").is_file() and (script.parent / "gguf-py" / "gguf").is_dir()


def test_a_model_the_converter_refuses_is_a_reason_not_a_traceback(tmp_path, monkeypatch):
    fake = tmp_path / "convert_hf_to_gguf.py"
    refusal = "NotImplementedError: Architecture \"NewThingForCausalLM\" not supported!"
    fake.write_text(f"import sys\nprint('Traceback ...', file=sys.stderr)\nprint({refusal!r}, file=sys.stderr)\n"
                    "sys.exit(1)\n")
    monkeypatch.setenv("CHARTER_LLAMA_CONVERTER", str(fake))
    out = tmp_path / "model.f16.gguf"
    with pytest.raises(GgufUnavailable, match="NewThingForCausalLM.*not supported"):
        convert_with_llama_cpp(tmp_path, out)
    assert not out.exists()


def test_no_converter_names_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARTER_LLAMA_CONVERTER", str(tmp_path / "missing.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(GgufUnavailable, match="make setup"):
        convert_with_llama_cpp(tmp_path, tmp_path / "x.gguf")


def test_without_a_gguf_the_trained_model_is_evaluated_from_its_hf_folder(tmp_path):
    from types import SimpleNamespace

    from charter.pipeline_stages import trained_engine_spec
    from charter.run_layout import RunLayout

    layout = RunLayout(tmp_path)
    (layout.exported_hf).mkdir(parents=True)
    (layout.exported_hf / "config.json").write_text("{}")
    ctx = SimpleNamespace(layout=layout)
    assert trained_engine_spec(ctx) == f"hf:{layout.exported_hf}"
    (layout.model / "model.f16.gguf").write_bytes(b"")
    assert trained_engine_spec(ctx) == f"llamacpp:{layout.model / 'model.f16.gguf'}"
    assert isinstance(layout.exported_gguf(), Path)
