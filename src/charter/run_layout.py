"""The layout of a `charter run` folder: every path a stage reads or writes, in one place.

    manifest.json            the run's identity and each stage's settings and summary (store.py)
    records.sqlite           every record the data and eval stages made (store.py)
    prompts.jsonl            the prompts stage's harmful and safe prompts
    datasets/raw/            critique recipe: the store's SFT and preference rows (data/export.py)
    datasets/{sft,prefs,dpo}.parquet   judge-free recipe: its SFT rows and pairs (same exporter,
                             same schema) and the balanced pairs DPO trains on
    train/{sft,dpo}/         the LoRA adapters (train/artifacts.py)
    model/                   the merged model: hf/, a GGUF where the architecture converts,
                             README.md (model card) and Modelfile (train/export.py)
    eval/{base,trained}/     eval.json of the model before and after training
    report.html              the report

Which files a recipe trains on is decided here from the recipe, not by looking for files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charter.errors import CharterError


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts.jsonl"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def raw_datasets(self) -> Path:
        return self.datasets / "raw"

    @property
    def pairs(self) -> Path:
        """Every judge-free pair that passed the rule check."""
        return self.datasets / "prefs.parquet"

    @property
    def dpo_pairs(self) -> Path:
        """The judge-free pairs DPO trains on (balanced harmful / safe)."""
        return self.datasets / "dpo.parquet"

    @property
    def sft_rows(self) -> Path:
        return self.datasets / "sft.parquet"

    def sft_data(self, recipe: str) -> Path:
        return self.sft_rows if recipe == "contrastive" else self.raw_datasets / "sft.parquet"

    def dpo_data(self, recipe: str) -> Path:
        return self.dpo_pairs if recipe == "contrastive" else self.raw_datasets / "prefs.parquet"

    def adapter(self, name: str) -> Path:
        """train/sft or train/dpo."""
        return self.root / "train" / name

    def trained_adapter(self) -> Path:
        """The last finished adapter: DPO's, or SFT's when DPO was not run."""
        from charter.train.artifacts import is_complete

        for name in ("dpo", "sft"):
            if is_complete(self.adapter(name)):
                return self.adapter(name)
        raise CharterError(f"no trained adapter in {self.root / 'train'}; run the sft or dpo stage first")

    @property
    def model(self) -> Path:
        return self.root / "model"

    def exported_gguf(self) -> Path | None:
        """The merged model as GGUF; None when its architecture did not convert (or no export yet)."""
        ggufs = sorted(self.model.glob("*.gguf"))
        return ggufs[0] if ggufs else None

    @property
    def exported_hf(self) -> Path:
        return self.model / "hf"

    def eval_dir(self, label: str) -> Path:
        """eval/base or eval/trained."""
        return self.root / "eval" / label

    @property
    def report(self) -> Path:
        return self.root / "report.html"
