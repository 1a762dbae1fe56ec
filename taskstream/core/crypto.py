"""Payloads and results encrypted at rest: AES-256-GCM under named keys.

``TASKSTREAM_ENCRYPTION_KEYS`` is ``kid:base64-32-bytes,...``; the first key seals, every key
opens. A sealed value is stored in its jsonb column as a JSON string (base64 of a 12-byte nonce
and the ciphertext with its tag) with the key id in a column next to it; a NULL key id means the
value is clear (written before encryption was turned on). The associated data names the task and
the field, so a sealed value copied to another row or from payload to result does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from functools import cache
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SealBroken, SealKeyMissing

KID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
NONCE_BYTES = 12
PAYLOAD = b"payload"
RESULT = b"result"


def _aad(task_id: UUID, field: bytes) -> bytes:
    return b"taskstream/1:" + task_id.bytes + b":" + field


class Keyring:
    """The keys of one process. Empty: nothing is sealed, and a sealed value cannot open."""

    __slots__ = ("_ciphers", "_nonces", "current")

    def __init__(self, keys: Sequence[tuple[str, bytes]] = ()) -> None:
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}
        self._nonces: list[bytes] = []
        self.current: str | None = keys[0][0] if keys else None

    @property
    def kids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plain: bytes, task_id: UUID, field: bytes) -> tuple[str, str | None]:
        """``(jsonb text, key id)``; the text itself and ``None`` when there is no key."""
        if self.current is None:
            return plain.decode(), None
        nonce = self._nonce()
        sealed = self._ciphers[self.current].encrypt(nonce, plain, _aad(task_id, field))
        return f'"{base64.b64encode(nonce + sealed).decode()}"', self.current

    def _nonce(self) -> bytes:
        """A random 96-bit nonce, cut from a block read from the OS 256 at a time (one read a
        nonce cost a fifth of a seal)."""
        if not self._nonces:
            block = os.urandom(NONCE_BYTES * 256)
            self._nonces = [block[i : i + NONCE_BYTES] for i in range(0, len(block), NONCE_BYTES)]
        return self._nonces.pop()

    def open(self, stored: str, kid: str | None, task_id: UUID, field: bytes) -> str:
        """The clear JSON text of a stored value; raises naming the key id when it cannot."""
        if kid is None:
            return stored
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealKeyMissing(
                f"task {task_id}: its {field.decode()} is sealed with key {kid!r}, which is not "
                "in TASKSTREAM_ENCRYPTION_KEYS",
                key_id=kid,
            )
        try:
            raw = base64.b64decode(stored.strip('"'), validate=True)
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(task_id, field))
        except (InvalidTag, binascii.Error, ValueError):
            raise SealBroken(
                f"task {task_id}: its {field.decode()} does not open with key {kid!r} (another "
                "key under the same id, or the stored value was changed or moved)",
                key_id=kid,
            ) from None
        return plain.decode()


@cache
def keyring(spec: str | None) -> Keyring:
    """Parse ``kid:base64-32-bytes,...``; errors name the key id, never the key."""
    if not spec:
        return Keyring()
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(spec.split(","), 1):
        kid, sep, encoded = item.strip().partition(":")
        if not sep or not KID.fullmatch(kid):
            raise ValueError(
                f"TASKSTREAM_ENCRYPTION_KEYS: entry {n} is not kid:base64-key (a key id is 1-32 "
                "letters, digits, '_', '.' or '-')"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise ValueError(f"TASKSTREAM_ENCRYPTION_KEYS: key {kid!r} is not base64") from None
        if len(key) != 32:
            raise ValueError(
                f"TASKSTREAM_ENCRYPTION_KEYS: key {kid!r} is {len(key)} bytes; AES-256 needs 32"
            )
        if any(kid == k for k, _ in keys):
            raise ValueError(f"TASKSTREAM_ENCRYPTION_KEYS: key id {kid!r} appears twice")
        keys.append((kid, key))
    return Keyring(keys)


def new_key() -> str:
    """A fresh key, base64 (``taskstream keygen``)."""
    return base64.b64encode(os.urandom(32)).decode()
