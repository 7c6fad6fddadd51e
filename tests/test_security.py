"""Capabilities: unguessable ids and tokens, stored only as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Callable

import pytest

from server import rules, security
from server.models import evolve
from tests.factories import new_session

URLSAFE = set(string.ascii_letters + string.digits + "-_")
HEX = set("0123456789abcdef")


def bits(text: str, alphabet: set[str]) -> float:
    return len(text) * math.log2(len(alphabet))


@pytest.mark.parametrize("make", [security.new_session_id, security.new_token])
def test_secrets_carry_at_least_128_bits(make: Callable[[], str]) -> None:
    for _ in range(50):
        value = make()
        assert isinstance(value, str)
        assert set(value) <= URLSAFE, value  # safe in URLs and fragments as is
        assert bits(value, URLSAFE) >= 128


def test_tokens_are_longer_than_session_ids() -> None:
    # A session link lets people in; a token lets them act as someone.
    assert len(security.new_token()) > len(security.new_session_id()) >= 22


@pytest.mark.parametrize(
    "make",
    [security.new_session_id, security.new_token, security.new_participant_id],
)
def test_ids_and_tokens_do_not_repeat(make: Callable[[], str]) -> None:
    values = [make() for _ in range(2000)]
    assert len(set(values)) == len(values)


def test_participant_ids_are_short_public_hex() -> None:
    value = security.new_participant_id()
    assert len(value) == 12
    assert set(value) <= HEX


def test_the_hash_is_sha256_of_the_token_and_never_the_token() -> None:
    token = security.new_token()
    hashed = security.hash_token(token)
    assert hashed != token
    assert token not in hashed
    assert hashed == hashlib.sha256(token.encode()).hexdigest()
    assert len(hashed) == 64
    assert set(hashed) <= HEX


def test_the_hash_is_stable_and_distinguishes_tokens() -> None:
    token = security.new_token()
    assert security.hash_token(token) == security.hash_token(token)
    assert security.hash_token(token) != security.hash_token(token + "x")
    assert security.hash_token("a") != security.hash_token("A")


def test_a_facilitator_link_matches_its_own_hash_only() -> None:
    token = security.new_token()
    session = evolve(new_session(), facilitator_hash=security.hash_token(token))
    rules.check_link(session, security.hash_token(token))
    for wrong in (security.new_token(), token[:-1], ""):
        with pytest.raises(rules.RuleError):
            rules.check_link(session, security.hash_token(wrong))
    # Knowing the stored hash does not help: the hash itself is not a valid token.
    with pytest.raises(rules.RuleError):
        rules.check_link(session, security.hash_token(session.facilitator_hash))


def test_links_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def recording_compare(a: str, b: str) -> bool:
        seen.append((a, b))
        return a == b

    monkeypatch.setattr("hmac.compare_digest", recording_compare)
    stored = security.hash_token("secret")
    session = evolve(new_session(), facilitator_hash=stored)
    rules.check_link(session, stored)
    assert seen == [(stored, stored)]
