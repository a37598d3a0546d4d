"""Shared by the HTTP client and platform tests: a client that records its waits."""

from __future__ import annotations

import pytest

from socialpulse.http import HttpClient, HttpPolicy


class Sleeps(list):
    """Records the client's waits instead of sleeping them (the server's behaviour is real)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def fast_client(sleeps: Sleeps) -> HttpClient:
    """Short timeouts, one retry, waits recorded in ``sleeps``: a test never really waits."""
    return HttpClient(policy=HttpPolicy(read_timeout=0.5, retries=1, backoff=0.01), sleep=sleeps)
