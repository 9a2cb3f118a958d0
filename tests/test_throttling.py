"""Rate limits: counted per key, hashed, shared through Redis between app processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from flask_portcullis.exceptions import Throttled
from flask_portcullis.throttling import Throttle

from .conftest import (
    REDIS_URL,
    make_app,
    submit,
)


def test_limits_count_per_key() -> None:
    throttle = Throttle()
    for _ in range(2):
        throttle.hit("2/minute", "scope", "a")
    throttle.hit("2/minute", "scope", "b")  # another key has its own count
    throttle.hit("2/minute", "other-scope", "a")  # and so has another scope
    with pytest.raises(Throttled) as caught:
        throttle.hit("2/minute", "scope", "a")
    assert 0 < caught.value.retry_after <= 60


def test_several_limits_apply_together() -> None:
    throttle = Throttle()
    throttle.hit("5/minute; 1/second", "scope", "a")
    with pytest.raises(Throttled):
        throttle.hit("5/minute; 1/second", "scope", "a")


def test_a_disabled_throttle_never_refuses() -> None:
    throttle = Throttle(enabled=False)
    for _ in range(10):
        throttle.hit("1/hour", "scope", "a")


def test_in_process_counts_belong_to_one_app(tmp_path: Path) -> None:
    first, second = make_app(tmp_path / "one"), make_app(tmp_path / "two")
    for _ in range(3):
        submit(first.test_client(), "/forgot-password", {"email": "x@example.com"})
    assert (
        submit(first.test_client(), "/forgot-password", {"email": "x@example.com"}).status_code
        == 429
    )
    assert (
        submit(second.test_client(), "/forgot-password", {"email": "x@example.com"}).status_code
        == 200
    )


@pytest.mark.services
def test_redis_shares_counts_between_processes(tmp_path: Path, redis_prefix: str) -> None:
    config: dict[str, Any] = {
        "PORTCULLIS_REDIS_URL": REDIS_URL,
        "PORTCULLIS_REDIS_PREFIX": redis_prefix,
    }
    worker_a = make_app(tmp_path / "a", None, **config)
    worker_b = make_app(tmp_path / "b", None, **config)
    for worker in (worker_a, worker_b, worker_a):
        response = submit(worker.test_client(), "/forgot-password", {"email": "x@example.com"})
        assert response.status_code == 200
    refused = submit(worker_b.test_client(), "/forgot-password", {"email": "x@example.com"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0

    keys = [key.decode() for key in redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_prefix}*")]
    assert keys, "the counts live in Redis under the configured prefix"
    assert not any("x@example.com" in key for key in keys)  # addresses are hashed


@pytest.mark.services
def test_redis_prefixes_keep_deployments_apart(tmp_path: Path, redis_prefix: str) -> None:
    ours = make_app(
        tmp_path / "a", PORTCULLIS_REDIS_URL=REDIS_URL, PORTCULLIS_REDIS_PREFIX=redis_prefix
    )
    theirs = make_app(
        tmp_path / "b",
        PORTCULLIS_REDIS_URL=REDIS_URL,
        PORTCULLIS_REDIS_PREFIX=redis_prefix + "-other",
    )
    try:
        for _ in range(3):
            submit(ours.test_client(), "/forgot-password", {"email": "x@example.com"})
        # Ours has used up the address's three mails an hour; theirs counts apart.
        refused = submit(ours.test_client(), "/forgot-password", {"email": "x@example.com"})
        assert refused.status_code == 429
        response = submit(theirs.test_client(), "/forgot-password", {"email": "x@example.com"})
        assert response.status_code == 200
        counted = redis.Redis.from_url(REDIS_URL)
        assert list(counted.scan_iter(f"{redis_prefix}-other*"))  # theirs, under its prefix
        counted.close()
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{redis_prefix}-other*"))
        if keys:
            client.delete(*keys)
        client.close()
