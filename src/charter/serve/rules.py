"""The guard's rules: undo common obfuscations, and spot jailbreak framing.

Both are generic: they know nothing of any particular hard line, so they work for whatever
constitution is served. Decoding gives the similarity pass the text an attacker hid (base64,
leetspeak, s p a c e d letters); framing flags say a request is *shaped* like an attack (role-play
personas, "ignore your instructions", claimed authority, hypotheticals, encodings), which makes
the guard less willing to wave through a request that is also close to a hard line.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from charter.lookalikes import fold

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
                       "$": "s"})
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[0-9])\w{2,20}\b", re.IGNORECASE)
_LEET_ALONE = re.compile(r"(?<!\S)[14](?!\S)")  # "1 make 4 weapon": lone digits standing for i / a
_SINGLE = re.compile(r"(?<!\S)\w(?!\S)")
_RUN_OF_LETTERS = re.compile(r"(?<!\S)\w(?: \w(?!\S))+")

FRAMING: dict[str, re.Pattern] = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in {
    "persona": r"\byou are (now )?(dan|[a-z]+gpt)\b|\b(no|without) (rules|restrictions|ethics|limits|filters)\b"
               r"|\bstay in character\b|\bpretend (you'?re|you are|to be)\b|\brole[- ]?play\b|\bact as\b",
    "override": r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions|rules|guidelines|policy|polic(y|ies))\b"
                r"|\bsystem override\b|\bdeveloper mode\b|\bnew (system prompt|instructions)\b"
                r"|\b(rules|restrictions|policy)\b.{0,30}\b(lifted|disabled|don'?t apply|off)\b"
                r"|\buncensored\b|\bjailbreak|\bno refusals\b|\banswer everything\b",
    "hypothetical": r"\bhypothetical(ly)?\b|\bfor the sake of argument\b|\bimagine (you|there) (had|were) no\b"
                    r"|\bthought experiment\b|\bin a (fictional )?world\b|\bif there were no laws\b",
    "authority": r"\b(clearance|authori[sz](ed|ing|e)|official request|i order you|as the operator|"
                 r"as an? (officer|official)|my department)\b",
    "realism": r"\b(for realism|so it'?s realistic|so the book is accurate|real,? working|exact (steps|"
               r"synthesis)|all the steps|step[- ]by[- ]step)\b",
    "encoding": r"\b(base64|decode (this|and)|rot13|hex[- ]encoded)\b",
}.items()}


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)


def decodings(text: str) -> list[tuple[str, str]]:
    """Readings of `text` an attacker may have hidden, as (rule name, decoded text)."""
    found = []
    folded = fold(text)
    if folded != text:  # Cyrillic or Greek look-alikes written among Latin letters
        found.append(("lookalikes", folded))
    for blob in _BASE64.findall(text):
        decoded = _base64_text(blob)
        if decoded:
            found.append(("base64", decoded))
    if len(_LEET_WORD.findall(text)) >= 2:
        words = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
        found.append(("leetspeak", _LEET_ALONE.sub(lambda m: m.group(0).translate(_LEET), words)))
    tokens = text.split()
    if len(tokens) >= 8 and len(_SINGLE.findall(text)) > 0.6 * len(tokens):
        found.append(("spaced", _unspace(text)))
    return found


def base64_in_place(text: str) -> str:
    """`text` with every base64 blob that decodes to text replaced by that text (the frame kept)."""
    return _BASE64.sub(lambda m: _base64_text(m.group(0)) or m.group(0), text)


def framing_flags(text: str) -> list[str]:
    return [name for name, pattern in FRAMING.items() if pattern.search(text)]


def _base64_text(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
    letters = sum(ch.isalpha() for ch in decoded)
    # Random base64-looking words (ids, hashes) decode to binary noise; text decodes to letters.
    return decoded if decoded and printable / len(decoded) > 0.95 and letters / len(decoded) > 0.5 else None


def _unspace(text: str) -> str:
    # "b u i l d   a   b o m b": single spaces join letters, runs of spaces separate words.
    joined = (_RUN_OF_LETTERS.sub(lambda m: m.group(0).replace(" ", ""), chunk) for chunk in re.split(r" {2,}", text))
    return " ".join(joined)
