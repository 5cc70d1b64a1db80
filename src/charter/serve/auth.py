"""API keys to operators, in constant time. Keys are never logged, stored or echoed back."""

from __future__ import annotations

import hmac

from charter.serve.operators import Operator, hash_key


class KeyRing:
    def __init__(self, operators: list[Operator]):
        self._operators = list(operators)

    def find(self, authorization: str | None) -> Operator | None:
        """The operator whose key is in an `Authorization: Bearer KEY` header, or None.

        Every stored hash is compared, each with hmac.compare_digest, so the time taken says
        nothing about which operator (if any) came close.
        """
        key = bearer_key(authorization)
        if key is None:
            return None
        presented = hash_key(key).encode("ascii")
        found = None
        for operator in self._operators:
            if hmac.compare_digest(presented, operator.key_sha256.encode("ascii")):
                found = operator
        return found


def bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key
