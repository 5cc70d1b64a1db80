"""What travels with an exported model: a model card (README.md) and an Ollama Modelfile.

The card is made from records, never typed by hand: the export record (base, adapters in merge
order, GGUF or why not), each adapter's charter_train.json (kind, settings, data files and sizes,
library versions) and the constitution hash the training rows carry. `charter run` writes it again
after its evals with the before/after figures (`evals`).
"""

from __future__ import annotations

import json
from pathlib import Path

from charter.rows import write_text_atomic

CARD = "README.md"
MODELFILE = "Modelfile"


def write_modelfile(folder: Path, gguf_name: str) -> Path:
    """`ollama create NAME -f Modelfile`: the GGUF carries its chat template, which Ollama reads."""
    text = (f"# Made by charter export. Run: ollama create my-model -f {MODELFILE}\n"
            f"FROM ./{gguf_name}\n")
    write_text_atomic(Path(folder) / MODELFILE, text)
    return Path(folder) / MODELFILE


def write_model_card(folder: Path, record: dict, evals: list[tuple[str, str, float | None, float | None]] = ()) -> Path:
    """README.md for the exported model in `folder`; `evals`: (measure, meaning, before, after)."""
    trainers = [_adapter_record(Path(a)) for a in record.get("adapters", [])]
    hashes = sorted({h for t in trainers for h in _constitution_hashes(t)})
    lines = ["---", "library_name: transformers", "tags: [charter, constitutional-ai, lora]", "---", "",
             "# A model trained by charter", "",
             f"- **base model**: `{record.get('base')}`",
             f"- **constitution hash**: {', '.join(f'`{h}`' for h in hashes) or 'not recorded in the training data'}",
             f"- **files**: `hf/` (transformers)"
             + (f", `{record['gguf']}` (llama.cpp, Ollama: `{MODELFILE}`)" if record.get("gguf") else ""),
             ]
    if record.get("gguf_skipped"):
        lines.append(f"- **no GGUF**: {record['gguf_skipped']}")
    lines += ["", "## Training", "", "| stage | steps | batch | learning rate | LoRA r | data | rows |",
              "|---|---|---|---|---|---|---|"]
    for t in trainers:
        s, data = t.get("settings", {}), t.get("data", {})
        files = ", ".join(Path(f["path"]).name for f in data.get("files", []))
        rows = (data.get("pairs") or {}).get("kept", data.get("rows", "?"))
        lines.append(f"| {t.get('kind', '?')} | {s.get('max_steps')} | {s.get('batch_size')} | "
                     f"{s.get('learning_rate')} | {s.get('lora', {}).get('r')} | {files} | {rows} |")
    versions = next((t.get("versions") for t in trainers if t.get("versions")), {})
    if versions:
        lines += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."]
    if evals:
        lines += ["", "## Before and after training", "", "| measure | before | after |", "|---|---|---|"]
        lines += [f"| {meaning} | {_figure(b)} | {_figure(a)} |" for _, meaning, b, a in evals]
        lines += ["", "Measured by `charter run` on its own eval prompts; the report in the run folder has "
                      "the 95% intervals and every answer."]
    write_text_atomic(Path(folder) / CARD, "\n".join(lines) + "\n")
    return Path(folder) / CARD


def _adapter_record(adapter: Path) -> dict:
    path = adapter / "charter_train.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _constitution_hashes(trainer: dict) -> set[str]:
    import pyarrow.parquet as pq

    found = set()
    for file in trainer.get("data", {}).get("files", []):
        path = Path(file["path"])
        if path.suffix == ".parquet" and path.is_file() and "constitution_hash" in pq.read_schema(path).names:
            found |= set(pq.read_table(path, columns=["constitution_hash"]).column(0).to_pylist()) - {None}
    return found


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
