"""The webhook signature a receiver checks: HMAC-SHA256 over the timestamp and the body, a timestamp too
far from the receiver's clock refused (a replay), a delivery id seen before dropped."""

from __future__ import annotations

import pytest

from flows.channels import BadSignature, ReplayGuard, sign, verify

SECRET = "webhook-secret-for-the-tests-0123456789"


def test_a_receiver_refuses_a_wrong_signature_an_old_timestamp_and_sees_a_replay():
    body = b'{"id": 1}'
    now = 1_800_000_000
    good = sign(SECRET, now, body)
    assert verify(SECRET, body, str(now), good, now=now + 10) == now
    with pytest.raises(BadSignature, match="does not match"):
        verify(SECRET, body + b" ", str(now), good, now=now)
    with pytest.raises(BadSignature, match="does not match"):
        verify("another-secret", body, str(now), good, now=now)
    with pytest.raises(BadSignature, match="a replay or a wrong clock"):
        verify(SECRET, body, str(now), good, now=now + 301)
    with pytest.raises(BadSignature, match="does not match"):  # a fresh timestamp on an old signature
        verify(SECRET, body, str(now + 400), good, now=now + 400)
    with pytest.raises(BadSignature, match="missing"):
        verify(SECRET, body, None, good)
    guard = ReplayGuard()
    assert guard.first_time("7", now=now) and not guard.first_time("7", now=now + 5)
