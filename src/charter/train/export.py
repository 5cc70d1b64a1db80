"""Merge trained LoRA adapters into their base and save the result for every runtime.

    OUT/hf/                       transformers folder: model.safetensors, config, tokenizer, chat template
    OUT/model.<type>.gguf         the same weights for llama.cpp / Ollama (optional)
    OUT/Modelfile                 `ollama create NAME -f OUT/Modelfile` (with the GGUF)
    OUT/README.md                 the model card: base, adapters, training settings (model_card.py)
    OUT/charter_export.json       what went in (base, adapters in merge order), written last

GGUF: Llama bases made from a GGUF keep that file's tokenizer verbatim (gguf_export.py); every
other model goes through llama.cpp's own converter (gguf_convert.py). A model neither can write
is an error, or with `gguf_optional` an export without GGUF whose record says why.

Like training stages, an export is all-or-nothing: it is written into a hidden staging folder and
renamed into place, and a complete OUT is skipped on rerun.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from charter.errors import CharterError
from charter.rows import write_json_atomic
from charter.train.artifacts import adapter_chain, read_record

EXPORT_MARKER = "charter_export.json"


@dataclass(frozen=True)
class ExportResult:
    hf_dir: Path
    gguf_path: Path | None
    record: dict
    skipped: bool = False

    def __iter__(self):  # `hf_dir, gguf_path = export(...)`
        return iter((self.hf_dir, self.gguf_path))


def export(base: str | Path | None, adapter_dirs: list[str | Path], out_dir: str | Path, gguf: bool = True,
           gguf_type: str = "f16", tokenizer_gguf: str | Path | None = None,
           gguf_optional: bool = False) -> ExportResult:
    """Merge `adapter_dirs` (in order) into `base` and save HF (and GGUF) files under `out_dir`.

    base None: the base recorded by the first adapter. A single adapter that was trained on top of
    another (DPO on SFT) brings its parents along; pass several adapters to choose the order yourself.
    """
    out_dir = Path(out_dir)
    if (out_dir / EXPORT_MARKER).is_file():
        record = json.loads((out_dir / EXPORT_MARKER).read_text())
        gguf_path = out_dir / record["gguf"] if record.get("gguf") else None
        return ExportResult(out_dir / "hf", gguf_path, record, skipped=True)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CharterError(f"{out_dir} exists but is not a finished export; remove it or pass another --out")
    adapters = _merge_order([Path(a) for a in adapter_dirs])
    base = base if base is not None else _recorded_base(adapters)
    staging = out_dir.parent / f".{out_dir.name}.export"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        source_gguf = save_merged(base, adapters, staging / "hf")
        gguf_name, skipped = None, None
        if gguf:
            from charter.train.gguf_convert import GgufUnavailable

            tokenizer_source = Path(tokenizer_gguf) if tokenizer_gguf else source_gguf
            gguf_name = f"model.{gguf_type}.gguf"
            try:
                _write_gguf(staging / "hf", staging / gguf_name, tokenizer_source, gguf_type, out_dir.name)
            except GgufUnavailable as exc:
                if not gguf_optional:
                    raise
                gguf_name, skipped = None, str(exc)
        record = {"base": str(base), "adapters": [str(a.resolve()) for a in adapters],
                  "hf": "hf", "gguf": gguf_name, "gguf_type": gguf_type if gguf_name else None,
                  "gguf_skipped": skipped}
        from charter.train.model_card import write_modelfile, write_model_card

        if gguf_name:
            write_modelfile(staging, gguf_name)
        write_model_card(staging, record)
        write_json_atomic(staging / EXPORT_MARKER, record)  # last: marks the export complete
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir / "hf", out_dir / gguf_name if gguf_name else None, record)


def _merge_order(adapters: list[Path]) -> list[Path]:
    if len(adapters) == 1:
        return adapter_chain(adapters[0])
    for adapter in adapters:
        read_record(adapter)  # each must be a finished training folder
    return adapters


def _recorded_base(adapters: list[Path]) -> str:
    if not adapters:
        return "embedded"
    return read_record(adapters[0])["base"]["path"]


def save_merged(base: str | Path | None, adapters: list[Path], hf_dir: Path) -> Path | None:
    """Write base + merged adapters as a transformers folder; returns the base's source GGUF, if any."""
    from charter.train.base_model import (
        BASE_MARKER,
        load_causal_lm,
        load_tokenizer,
        materialize_base,
        source_gguf,
    )

    folder = materialize_base(base)
    model = load_causal_lm(folder, adapters)
    model.save_pretrained(hf_dir)
    load_tokenizer(folder).save_pretrained(hf_dir)
    source = source_gguf(folder)
    if source is not None:  # lets a later GGUF conversion of this folder find the tokenizer
        (hf_dir / BASE_MARKER).write_text(json.dumps({"source_gguf": str(source)}, indent=2))
    return source


def _write_gguf(hf_dir: Path, out_path: Path, tokenizer_gguf: Path | None, gguf_type: str, name: str) -> None:
    """charter's Llama writer where it applies (its tokenizer comes verbatim from a GGUF), else
    llama.cpp's converter."""
    from charter.train.gguf_convert import convert_with_llama_cpp
    from charter.train.gguf_export import SUPPORTED_ARCHITECTURES, write_gguf

    architectures = json.loads((hf_dir / "config.json").read_text()).get("architectures") or []
    if tokenizer_gguf is not None and any(a in SUPPORTED_ARCHITECTURES for a in architectures):
        write_gguf(hf_dir, out_path, tokenizer_gguf, gguf_type, name=name)
    else:
        convert_with_llama_cpp(hf_dir, out_path, gguf_type)
