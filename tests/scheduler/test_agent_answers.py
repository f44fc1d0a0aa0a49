"""The fast paths' refusals are what the API's exception handler makes of DRF's."""

import pytest
from rest_framework.exceptions import Throttled

from core.api_errors import api_exception_handler
from scheduler.agent_api.answers import throttled


@pytest.mark.parametrize("wait", [None, 0, 1, 2, 59])
def test_throttled_is_drfs_throttled(wait):
    exc = Throttled(wait=wait)
    drf = api_exception_handler(exc, {})

    answer = throttled(wait)

    assert drf is not None
    assert (answer.status, answer.body) == (drf.status_code, drf.data)
    assert answer.headers.get("Retry-After") == drf.get("Retry-After")
