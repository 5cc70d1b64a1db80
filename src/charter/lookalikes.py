"""Letters of other scripts that read as Latin ones, folded to Latin: one table for comparing
clause ids (constitution/model.py, `id_key`) and for the guard's extra reading of a request
(serve/rules.py), so "nеrve gas" with a Cyrillic "е" is read as what it says."""

from __future__ import annotations

import unicodedata

# Lowercase forms (callers casefold or lower first where case does not matter).
CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ո": "n",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "ı": "i", "ℓ": "l",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Α": "A", "Β": "B", "Ε": "E", "Ι": "I", "Κ": "K",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})


def fold(text: str) -> str:
    """NFKC (fullwidth and other compatibility forms), then look-alike letters to Latin."""
    return unicodedata.normalize("NFKC", text).translate(CONFUSABLES)
