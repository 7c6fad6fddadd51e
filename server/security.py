"""Capabilities: random ids and tokens from `secrets`, stored hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# 16 random bytes = 128 bits: enough that nobody guesses a session link or a token.
_ENTROPY_BYTES = 16


def new_session_id() -> str:
    return secrets.token_urlsafe(_ENTROPY_BYTES)


def new_token() -> str:
    return secrets.token_urlsafe(_ENTROPY_BYTES + 8)


def new_participant_id() -> str:
    # Participant ids are public (they appear in every snapshot); acting needs the token.
    return secrets.token_hex(6)


def new_instance_id() -> str:
    return secrets.token_hex(4)


def hash_token(token: str) -> str:
    # Tokens are high-entropy random strings, so a fast hash is enough to make a leaked store
    # useless for impersonation; a slow password hash would only cost CPU on every reconnect.
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), expected_hash)
