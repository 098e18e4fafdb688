"""Router tokens sealed into the runner Job, opened with a key only the namespace's Secrets hold.

A run's router token used to travel in a Secret of its own: one more API write per attempt (issue 20).
Now the operator seals the token (Fernet: AES-CBC with an HMAC, from `cryptography`) with the
namespace's runner key and writes the sealed text into the Job's pod spec; the pod reads the key from
the one Secret per namespace (`jesus-runner-key`, created once) and opens the token. Who can read Jobs
or pods (the `view` role) sees only the sealed text, useless without the key; who can read the Secret
could read every per-run token Secret before, so nobody gains a token they could not get then.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from jesus.api.objects import JsonObject

RUNNER_KEY_SECRET = "jesus-runner-key"
RUNNER_KEY_FIELD = "key"
SEALED_TOKEN_VARIABLE = "JESUS_ROUTER_TOKEN_SEALED"
RUNNER_KEY_VARIABLE = "JESUS_RUNNER_KEY"
LABEL_RUNNER_KEY = "jesus.dev/runner-key"
# A sealed router token is about 1.4 times the token (at most 4,096 characters) plus 100; anything far
# longer is not ours and is refused unread.
MAX_SEALED_LENGTH = 8192


class SealError(ValueError):
    """A sealed token or a runner key that cannot be used; the message says which and why."""


def new_key() -> str:
    """A fresh runner key (random; URL-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str, where: str) -> Fernet:
    try:
        return Fernet(key.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error) as exc:
        raise SealError(f"{where} is not a runner key (32 bytes, URL-safe base64)") from exc


def seal(key: str, token: str, now: int) -> str:
    """`token` sealed with runner key `key` at Unix time `now`."""
    return _fernet(key, "the runner key").encrypt_at_time(token.encode("ascii"), now).decode("ascii")


def unseal(key: str, sealed: str, *, key_source: str = f"Secret {RUNNER_KEY_SECRET}") -> str:
    """The token `sealed` holds; SealError when it is not a sealed token or `key` did not seal it
    (the namespace's key was replaced since the Job was made)."""
    fernet = _fernet(key, key_source)
    if len(sealed) > MAX_SEALED_LENGTH or not sealed.isascii():
        raise SealError(f"${SEALED_TOKEN_VARIABLE} is not a sealed router token")
    try:
        return fernet.decrypt(sealed.strip().encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeDecodeError) as exc:
        raise SealError(
            f"${SEALED_TOKEN_VARIABLE} was not sealed with the key in {key_source} "
            "(the key was replaced after the Job was made, or the value was altered)"
        ) from exc


def build_runner_key_secret(namespace: str, key: str, labels: Mapping[str, str]) -> JsonObject:
    """The namespace's one Secret with the runner key."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": RUNNER_KEY_SECRET,
            "namespace": namespace,
            "labels": {**labels, LABEL_RUNNER_KEY: "true"},
        },
        "stringData": {RUNNER_KEY_FIELD: key},
    }


def secret_key(secret: Mapping[str, Any]) -> str:
    """The runner key a runner-key Secret holds (base64 in `data`, as the API server returns it, or in
    `stringData` as built); SealError naming the Secret when it holds none, or not one of ours."""
    metadata = secret.get("metadata") or {}
    where = f"Secret {metadata.get('namespace')}/{metadata.get('name')}"
    if (metadata.get("labels") or {}).get(LABEL_RUNNER_KEY) != "true":
        raise SealError(f"{where} is not a Jesus runner key (it lacks the label {LABEL_RUNNER_KEY}=true)")
    raw = (secret.get("data") or {}).get(RUNNER_KEY_FIELD)
    if isinstance(raw, str):
        try:
            text = base64.b64decode(raw, validate=True).decode("ascii")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SealError(f"{where}: data.{RUNNER_KEY_FIELD} is not base64 text") from exc
    else:
        given = (secret.get("stringData") or {}).get(RUNNER_KEY_FIELD)
        if not isinstance(given, str):
            raise SealError(f"{where} has no data.{RUNNER_KEY_FIELD}")
        text = given
    _fernet(text, f"{where} data.{RUNNER_KEY_FIELD}")
    return text.strip()


def sealed_token_of(job: Mapping[str, Any]) -> str | None:
    """The sealed router token in a runner Job's pod spec, or None (a Job made before sealing)."""
    containers = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for container in containers:
        for variable in container.get("env") or []:
            if variable.get("name") == SEALED_TOKEN_VARIABLE and isinstance(variable.get("value"), str):
                return str(variable["value"])
    return None
