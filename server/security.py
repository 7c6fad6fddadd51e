"""Capabilities: random ids and tokens from `secrets`, stored hashed, compared in constant time."""

from __future__ import annotations

import hashlib
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


# Join codes are typed by people: no 0/O, 1/I/L or U/V to mistake for one another.
JOIN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
JOIN_CODE_LENGTH = 6


def new_join_code() -> str:
    # 29^6, about 6e8 codes: far fewer than a session id's, which is why looking one up is
    # rate-limited per address (SECURITY.md).
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


def read_join_code(typed: str) -> str | None:
    """A join code as typed (any case, with spaces or dashes), or None if it cannot be one."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != JOIN_CODE_LENGTH or any(c not in JOIN_CODE_ALPHABET for c in code):
        return None
    return code


def new_instance_id() -> str:
    return secrets.token_hex(4)


def hash_token(token: str) -> str:
    # Tokens are high-entropy random strings, so a fast hash is enough to make a leaked store
    # useless for impersonation; a slow password hash would only cost CPU on every reconnect.
    return hashlib.sha256(token.encode()).hexdigest()
