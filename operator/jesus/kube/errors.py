"""The errors of the cluster client that the reconcilers act on, one class per API status they tell
apart, and what a child of another owner raises."""

from __future__ import annotations

from collections.abc import Mapping

import httpx


class KubeError(Exception):
    """An API request failed; `status` is the HTTP status, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(KubeError):
    """404: the object does not exist."""


class ConflictError(KubeError):
    """409: the object exists already, or its resourceVersion moved on."""


class InvalidError(KubeError):
    """422: the API server rejected the object (schema, CEL, admission)."""


class WatchExpiredError(KubeError):
    """410: a watch cannot continue from the resourceVersion it was given; list again."""


class ForeignChildError(KubeError):
    """A child's name is taken by an object another owner controls; it is neither adopted nor touched.

    Not a ConflictError: re-reading the parent and trying again at once would meet the same object.
    """

    def __init__(self, kind: str, name: str, controller: str) -> None:
        super().__init__(409, "AlreadyExists", f"{kind} {name} exists and is controlled by {controller}")
        self.kind = kind
        self.name = name
        self.controller = controller


_ERRORS: Mapping[int, type[KubeError]] = {404: NotFoundError, 409: ConflictError, 422: InvalidError}


def error_from_response(response: httpx.Response) -> KubeError:
    """The KubeError for a failed response, with the API server's Status reason and message."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    reason = str(body.get("reason", response.reason_phrase))
    message = str(body.get("message", response.text[:500]))
    return _ERRORS.get(response.status_code, KubeError)(response.status_code, reason, message)
