"""The GGUF converter against llama.cpp's own: re-exporting the untrained base reproduces the
embedded GGUF's tensors exactly (names, Q/K rope permutation, tied embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from charter.train.gguf_export import permute_for_rope


def test_rope_permutation_interleaves_each_heads_halves():
    rows = np.arange(8).reshape(8, 1)  # 2 heads of 4 rows: HF pairs (0,2), (1,3) within a head
    assert permute_for_rope(rows, n_heads=2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.slow
def test_base_round_trip_is_exact(tmp_path):
    import gguf

    from charter.train.base_model import materialize_base, source_gguf
    from charter.train.gguf_export import write_gguf

    folder = materialize_base(None)
    source = source_gguf(folder)
    out = write_gguf(folder, tmp_path / "base.f32.gguf", source, "f32")
    original, exported = gguf.GGUFReader(str(source)), gguf.GGUFReader(str(out))
    ours = {t.name: t for t in exported.tensors}
    assert set(ours) == {t.name for t in original.tensors}  # tied: no separate output.weight
    for tensor in original.tensors:
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        assert np.array_equal(np.asarray(ours[tensor.name].data), expected), tensor.name
    for key in ("tokenizer.chat_template", "tokenizer.ggml.pre", "llama.rope.freq_base",
                "llama.attention.head_count_kv", "llama.context_length"):
        assert exported.fields[key].contents() == original.fields[key].contents(), key
