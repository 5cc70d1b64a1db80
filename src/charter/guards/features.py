"""What the classifier reads: the text with what an attacker hid revealed, as a sentence embedding.

`reveal` undoes the obfuscations serve's rules know (Cyrillic look-alikes, base64 in place,
leetspeak, s p a c e d letters), so "decode this: SG93IGRv..." is read as the request it hides,
framed as it was. Training and serving call the same function, so what was learned is what is
scored. Long texts are read in overlapping windows and scored by the most suspicious one.
"""

from __future__ import annotations

import re

import numpy as np

from charter.serve import rules

WINDOW_CHARS = 400
WINDOW_STEP = 200
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n+")


def reveal(text: str) -> str:
    text = rules.normalise(text)
    for name, decoded in rules.decodings(text):
        if name != "base64":  # base64 is substituted in place below, keeping the frame around it
            text = decoded
    return rules.base64_in_place(text)


def windows(text: str, size: int = WINDOW_CHARS, step: int = WINDOW_STEP) -> list[str]:
    if len(text) <= size:
        return [text]
    return [text[s:s + size] for s in range(0, len(text) - size + step, step)]


def embed(embedder, texts: list[str]) -> np.ndarray:
    """One vector per text, as training sees it (texts are request- or prefix-sized)."""
    return embedder.encode([reveal(t) or " " for t in texts])


def pieces(text: str) -> list[str]:
    """What is scored at serving time: the revealed text in windows, and each of its sentences and
    turns on its own. A frame dilutes a request's embedding; the request's own sentence does not
    (chosen on the validation split: 0.86 -> 0.94 of attacks blocked at 4% benign)."""
    revealed = reveal(text)
    found = windows(revealed) + [p.strip() for p in _SENTENCE_END.split(revealed) if len(p.strip()) >= 20]
    return list(dict.fromkeys(p for p in found if p.strip())) or [" "]


def embed_pieces(embedder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of every piece of every text, and the offsets: text i owns rows offsets[i]:offsets[i+1]."""
    split = [pieces(t) for t in texts]
    offsets = np.cumsum([0] + [len(p) for p in split])
    return embedder.encode([p for ps in split for p in ps]), offsets


def token_prefixes(tokenizer, text: str, counts: tuple[int, ...]) -> dict[int, str]:
    """The text's first n tokens (by `tokenizer`, a Hugging Face fast tokenizer), for each n."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    out = {}
    for n in counts:
        if n >= len(offsets):
            out[n] = text
        else:
            out[n] = text[:offsets[n - 1][1]]
    return out
