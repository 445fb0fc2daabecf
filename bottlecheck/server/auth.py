"""API keys: which configured key, if any, a request carries.

Keys come as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``. The supplied
token is compared with every configured key in constant time, so the time taken
says nothing about how close a guess was. A key is known to logs and metrics
only by a hash prefix, never by its value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from werkzeug.datastructures import Headers


class KeyChecker:
    def __init__(self, keys: Iterable[str]):
        self._keys = {hashlib.sha256(k.encode()).hexdigest()[:12]: k.encode() for k in keys}

    @property
    def required(self) -> bool:
        """Whether any key is configured (with none, every request is let in)."""
        return bool(self._keys)

    def key_id(self, headers: Headers | Mapping[str, str]) -> str | None:
        """The id (hash prefix) of the key in ``headers``, or None when it carries no valid key."""
        token = headers.get("X-API-Key", "")
        auth = headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        matched = None
        for key_id, key in self._keys.items():  # every key, each in constant time
            if hmac.compare_digest(token.encode(), key):
                matched = key_id
        return matched
