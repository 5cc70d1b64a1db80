"""Write a transformers Llama-architecture folder as a GGUF file for llama.cpp and Ollama.

llama.cpp's own converter (convert_hf_to_gguf.py) does not ship with pip, so this is a small one
for the one architecture charter trains by default (SmolLM2 is `llama`), built on the `gguf`
package's writer and tensor-name map:

- hyperparameters come from the folder's config.json;
- tensor names are mapped with `gguf.get_tensor_name_map(LLAMA, n_layers)`;
- the Q and K projections are permuted from Hugging Face's rotary layout (each head's rows split in
  two halves) to llama.cpp's (rows interleaved in pairs); transformers undoes exactly this when it
  loads a GGUF, which the round-trip test checks;
- tied embeddings are written once, as `token_embd` (llama.cpp reuses it as the output layer);
- the tokenizer and chat template are copied verbatim from a source GGUF (the embedded model's,
  recorded when the base was materialized), because rebuilding llama.cpp's BPE vocabulary metadata
  from a tokenizer.json is the converter's largest and most model-specific part.

Weight types: f32 (exact), f16 (default: half the size; greedy outputs matched f32 in our tests),
q8_0 (quarter size, slight drift). Norm weights and other 1-D tensors stay f32, as llama.cpp expects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charter.errors import CharterError

GGUF_TYPES = ("f32", "f16", "q8_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)


def write_gguf(hf_dir: Path, out_path: Path, tokenizer_gguf: Path, weight_type: str = "f16",
               name: str | None = None) -> Path:
    """Convert the model in `hf_dir` to `out_path`; returns out_path."""
    import gguf

    if weight_type not in GGUF_TYPES:
        raise CharterError(f"GGUF weight type '{weight_type}' is not supported; use one of {', '.join(GGUF_TYPES)}")
    config = json.loads((Path(hf_dir) / "config.json").read_text())
    _check_architecture(config, hf_dir)
    writer = gguf.GGUFWriter(str(out_path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(name or Path(hf_dir).name)
    writer.add_file_type(_file_type(gguf, weight_type))
    if weight_type == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hyperparameters(writer, config)
    copy_tokenizer_metadata(writer, tokenizer_gguf, config["vocab_size"])
    for gguf_name, array, raw_type in _converted_tensors(gguf, hf_dir, config, weight_type):
        writer.add_tensor(gguf_name, array, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def _check_architecture(config: dict, hf_dir: Path) -> None:
    architectures = config.get("architectures") or []
    if not any(arch in SUPPORTED_ARCHITECTURES for arch in architectures):
        raise CharterError(f"GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)} only, but {hf_dir} is "
                           f"{architectures}; export without --gguf and convert with llama.cpp's "
                           f"convert_hf_to_gguf.py")
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") != "default":
        raise CharterError(f"GGUF export does not handle rope scaling '{rope.get('rope_type')}' "
                           f"(in {hf_dir}/config.json); use llama.cpp's convert_hf_to_gguf.py")


def _rope_parameters(config: dict) -> dict:
    # transformers >= 5 nests rope settings in `rope_parameters`; older configs keep them flat.
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return rope


def _file_type(gguf, weight_type: str) -> int:
    return {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[weight_type]


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def _add_hyperparameters(writer, config: dict) -> None:
    n_head = config["num_attention_heads"]
    writer.add_vocab_size(config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads", n_head))
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_rope_freq_base(float(_rope_parameters(config)["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    if _head_dim(config) * n_head != config["hidden_size"]:  # llama.cpp assumes hidden/n_head otherwise
        writer.add_key_length(_head_dim(config))
        writer.add_value_length(_head_dim(config))


def copy_tokenizer_metadata(writer, source: Path, vocab_size: int) -> None:
    """Copy every `tokenizer.*` key (vocabulary, merges, special ids, chat template) from `source`."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None or len(tokens.data) != vocab_size:
        found = "none" if tokens is None else len(tokens.data)
        raise CharterError(f"tokenizer source {source} has {found} tokens but the model has {vocab_size}; "
                           f"pass --tokenizer-gguf with the GGUF of the model this one was trained from")
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main_type = field.types[0]
        sub_type = field.types[-1] if main_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), main_type, sub_type=sub_type)


def _converted_tensors(gguf, hf_dir: Path, config: dict, weight_type: str):
    """Yield (gguf name, numpy array, raw ggml type or None) for every tensor in the folder."""
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    tied = config.get("tie_word_embeddings", False)
    for hf_name, tensor in _read_tensors(hf_dir):
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp uses token_embd as the output layer when `output` is absent
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise CharterError(f"GGUF export: no llama.cpp name for tensor '{hf_name}' in {hf_dir}")
        if hf_name.endswith("self_attn.q_proj.weight"):
            tensor = permute_for_rope(tensor, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            tensor = permute_for_rope(tensor, n_kv)
        yield (gguf_name, *_encode(gguf, tensor, weight_type))


def _read_tensors(hf_dir: Path):
    from safetensors import safe_open

    files = sorted(Path(hf_dir).glob("*.safetensors"))
    if not files:
        raise CharterError(f"no .safetensors weights in {hf_dir}; save the model with safetensors")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                yield key, handle.get_tensor(key).float().numpy()


def permute_for_rope(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Hugging Face rotary layout -> llama.cpp's: within each head, row j of the first half and row j
    of the second half (a rotation pair in HF) become rows 2j and 2j+1."""
    rows = weight.shape[0]
    return (weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape))


def _encode(gguf, tensor: np.ndarray, weight_type: str) -> tuple[np.ndarray, object]:
    if tensor.ndim == 1 or weight_type == "f32":
        return np.ascontiguousarray(tensor, dtype=np.float32), None
    if weight_type == "f16":
        return np.ascontiguousarray(tensor, dtype=np.float16), None
    qtype = gguf.GGMLQuantizationType.Q8_0
    if tensor.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] != 0:
        return np.ascontiguousarray(tensor, dtype=np.float16), None  # rows not a multiple of the block
    return gguf.quants.quantize(tensor.astype(np.float32), qtype), qtype
