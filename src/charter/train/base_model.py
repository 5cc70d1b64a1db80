"""The model training starts from: the embedded GGUF, any GGUF file, or a local transformers folder.

transformers can read a GGUF file (it dequantizes every tensor to fp32), but the model it returns is
flagged as GGUF-quantized and TRL refuses to train it. So a GGUF base is rebuilt once from its
config (minus `quantization_config`) and state dict (`charter.engines.hf.load_hf_model`), saved as
an ordinary transformers folder in a cache, and every later run loads that folder in about a second
instead of dequantizing again (about a minute on 2 cores).

The cached folder remembers its source GGUF (`charter_base.json`) so the GGUF exporter can copy the
tokenizer and chat template from it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from charter.errors import CharterError

BASE_MARKER = "charter_base.json"  # written last into a materialized base folder
ENGINE_PREFIXES = ("hf:", "llamacpp:")


def cache_root() -> Path:
    """Where rebuilt GGUF bases live: $CHARTER_CACHE, else ~/.cache/charter."""
    return Path(os.environ.get("CHARTER_CACHE") or Path.home() / ".cache" / "charter")


def resolve_base(spec: str | Path | None) -> Path:
    """A base spec -> a GGUF file or a transformers folder.

    Accepted: None / "embedded" (the SmolLM2 GGUF shipped with charter), a .gguf file, a folder with
    a config.json, a Hugging Face Hub name (downloaded unless offline, charter.hub); engine-style prefixes ("hf:", "llamacpp:") are allowed so an engine string can be
    reused as a base.
    """
    text = "embedded" if spec is None else str(spec)
    for prefix in ENGINE_PREFIXES:
        text = text.removeprefix(prefix)
    if text in ("", "embedded"):
        from charter.engines.registry import embedded_model_path

        return embedded_model_path()
    from charter.hub import local_model

    path = local_model(text)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise CharterError(f"base model '{spec}' is neither a .gguf file nor a transformers folder with "
                       f"config.json; pass --base embedded, a .gguf file, a saved model folder or a Hub name")


def base_of_policy(policy: str) -> str:
    """The model `charter run` trains when no --base is given: the policy engine's own model.

    llamacpp:X and hf:X name it directly (a GGUF, a folder, embedded); vllm:X is a Hub name or a
    folder transformers loads too. A model behind an OpenAI-compatible server cannot be trained
    there, so that policy needs an explicit --base naming a local copy."""
    scheme, _, rest = policy.partition(":")
    target = rest.split("@", 1)[0]
    if scheme in ("llamacpp", "hf", "vllm") and (target or scheme != "vllm"):
        return target or "embedded"
    raise CharterError(f"the policy '{policy}' is not a model charter can train in place (a server or a "
                       f"mock engine); pass --base with the same model as a .gguf file, a transformers "
                       f"folder or a Hugging Face Hub name")


def engine_spec_for(base: str) -> str:
    """An engine string that runs `base` untrained: llama.cpp for a GGUF (and the embedded model),
    transformers for a folder or a Hub name."""
    text = str(base)
    for prefix in ENGINE_PREFIXES:
        text = text.removeprefix(prefix)
    if text in ("", "embedded") or text.lower().endswith(".gguf"):
        return f"llamacpp:{text or 'embedded'}"
    return f"hf:{text}"


def materialize_base(spec: str | Path | None) -> Path:
    """A transformers folder for the base: the folder itself, or the cached rebuild of a GGUF."""
    source = resolve_base(spec)
    if source.is_dir():
        return source
    from charter.engines.common import file_fingerprint

    folder = cache_root() / "bases" / f"{source.stem}-{file_fingerprint(source)}"
    if (folder / BASE_MARKER).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _rebuild_gguf_as_folder(source, staging)
        (staging / BASE_MARKER).write_text(json.dumps({"source_gguf": str(source.resolve())}, indent=2))
        if folder.exists() and not (folder / BASE_MARKER).is_file():
            shutil.rmtree(folder)  # a leftover without its marker: never reuse a half-written folder
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / BASE_MARKER).is_file():  # not just another process finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _rebuild_gguf_as_folder(gguf_path: Path, out: Path) -> None:
    from charter.engines.hf import load_hf_model  # does the rebuild; shared with the hf engine

    model, tokenizer = load_hf_model(gguf_path)
    if not tokenizer.chat_template:  # some transformers versions drop it; the GGUF metadata has it
        import gguf

        from charter.engines.common import TRANSCRIPT_TEMPLATE

        field = gguf.GGUFReader(gguf_path).fields.get("tokenizer.chat_template")
        # A base model's GGUF may have none: the plain transcript the engines use for it.
        tokenizer.chat_template = field.contents() if field is not None else TRANSCRIPT_TEMPLATE
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def source_gguf(folder: Path) -> Path | None:
    """The GGUF a materialized base (or a model exported from one) was built from, if known."""
    marker = Path(folder) / BASE_MARKER
    if not marker.is_file():
        return None
    path = Path(json.loads(marker.read_text()).get("source_gguf", ""))
    return path if path.is_file() else None


def load_tokenizer(folder: Path):
    """The folder's tokenizer with a pad token set (TRL pads batches; SmolLM2 pads with EOS)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:  # a base model: the plain transcript the engines use for it too
        from charter.engines.common import TRANSCRIPT_TEMPLATE

        tokenizer.chat_template = TRANSCRIPT_TEMPLATE
    return tokenizer


def load_causal_lm(folder: Path, adapters: list[Path] = ()):
    """fp32 causal LM from a transformers folder, with each PEFT adapter merged in, in order."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for adapter in adapters:
        model = merge_adapter(model, adapter)
    return model


def causal_lm_trainer_inputs(base: str | Path, settings, parents: list[Path] = ()) -> dict:
    """What TRL's SFT and DPO trainers take besides their config and data: the fp32 model (with
    `parents` merged in; padding-free unless `settings.padding_free` is off), its tokenizer, and
    the LoRA config of `settings.lora`."""
    folder = materialize_base(base)
    model = load_causal_lm(folder, parents)
    if settings.padding_free:
        from charter.train.unpadded import enable_unpadded_forward

        enable_unpadded_forward(model, share_prefixes=settings.share_prefixes)
    return {"model": model, "processing_class": load_tokenizer(folder), "peft_config": settings.lora.peft_config()}


def merge_adapter(model, adapter_dir: Path):
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (ValueError, OSError, KeyError) as exc:
        raise CharterError(f"could not apply adapter {adapter_dir} ({exc}); check that it was trained "
                           f"on this base model") from exc
    return peft_model.merge_and_unload()
