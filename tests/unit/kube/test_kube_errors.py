"""A failed API request becomes the KubeError its status calls for, with the API server's words."""

from __future__ import annotations

import httpx
import pytest

from jesus.kube import ConflictError, InvalidError, KubeError, NotFoundError
from jesus.kube.errors import error_from_response


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFoundError), (409, ConflictError), (422, InvalidError), (500, KubeError), (403, KubeError)],
)
def test_the_status_chooses_the_error(status: int, kind: type[KubeError]) -> None:
    body = {"kind": "Status", "reason": "SomeReason", "message": "what the server said"}
    error = error_from_response(httpx.Response(status, json=body))
    assert type(error) is kind
    assert (error.status, error.reason, error.message) == (status, "SomeReason", "what the server said")
    assert str(error) == f"{status} SomeReason: what the server said"


def test_a_body_that_is_no_json_keeps_the_status_line_and_the_text() -> None:
    error = error_from_response(httpx.Response(502, text="bad gateway from a proxy"))
    assert (error.status, error.reason, error.message) == (502, "Bad Gateway", "bad gateway from a proxy")
