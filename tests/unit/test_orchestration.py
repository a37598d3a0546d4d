"""What a task does with an error: permanent ones fail at once, transient ones are retried."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from socialpulse.orchestration import fail_fast
from socialpulse.pipeline import FetchFailed
from socialpulse.registry import RegistryError


@pytest.mark.parametrize("error", [RegistryError("companies.yaml: bad"), FetchFailed("2 accounts")])
def test_permanent_errors_skip_the_retries_and_keep_their_message(error):
    with pytest.raises(AirflowFailException, match=str(error)) as err, fail_fast():
        raise error
    assert err.value.__cause__ is error


@pytest.mark.parametrize("error", [ConnectionError("reset"), TimeoutError("slow"), OSError("lock")])
def test_transient_errors_stay_retryable(error):
    with pytest.raises(type(error)), fail_fast():
        raise error
