"""Router tokens sealed into runner Jobs: opened only with the key that sealed them; keys and Secrets
that are not ours are refused by name."""

from __future__ import annotations

import base64

import pytest

from jesus.logic import sealing
from jesus.logic.sealing import SealError

NOW = 1_800_000_000


def key_secret(key: str, *, labelled: bool = True) -> dict[str, object]:
    labels = {sealing.LABEL_RUNNER_KEY: "true"} if labelled else {}
    return {
        "metadata": {"name": sealing.RUNNER_KEY_SECRET, "namespace": "team", "labels": labels},
        "data": {sealing.RUNNER_KEY_FIELD: base64.b64encode(key.encode()).decode()},
    }


def test_a_sealed_token_opens_with_its_key_only_and_hides_the_token() -> None:
    key, token = sealing.new_key(), "jr2.payload.mac"
    sealed = sealing.seal(key, token, NOW)
    assert token not in sealed and "payload" not in sealed
    assert sealing.unseal(key, sealed) == token
    with pytest.raises(SealError, match="was not sealed with the key in Secret jesus-runner-key"):
        sealing.unseal(sealing.new_key(), sealed)
    assert sealing.new_key() != sealing.new_key()


@pytest.mark.parametrize("sealed", ["", "not-fernet", "x" * 9000, "gAAAAAB\u00e9"])
def test_text_that_is_not_a_sealed_token_is_refused(sealed: str) -> None:
    with pytest.raises(SealError):
        sealing.unseal(sealing.new_key(), sealed)


def test_the_key_is_read_from_a_secret_as_the_api_server_returns_it_or_as_built() -> None:
    key = sealing.new_key()
    assert sealing.secret_key(key_secret(key)) == key
    built = sealing.build_runner_key_secret("team", key, {"app.kubernetes.io/managed-by": "jesus"})
    assert sealing.secret_key(built) == key
    assert built["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jesus"


def test_a_secret_that_is_not_a_runner_key_is_refused_naming_it() -> None:
    key = sealing.new_key()
    with pytest.raises(SealError, match="Secret team/jesus-runner-key is not a Jesus runner key"):
        sealing.secret_key(key_secret(key, labelled=False))  # someone else's Secret of that name
    with pytest.raises(SealError, match=r"team/jesus-runner-key data.key is not a runner key"):
        sealing.secret_key(key_secret("too-short"))
    broken = key_secret(key)
    broken["data"] = {sealing.RUNNER_KEY_FIELD: "%%%"}
    with pytest.raises(SealError, match="is not base64 text"):
        sealing.secret_key(broken)
    empty = key_secret(key)
    empty["data"] = {}
    with pytest.raises(SealError, match=r"has no data\.key"):
        sealing.secret_key(empty)


def test_the_sealed_token_is_found_in_a_runner_jobs_pod_spec() -> None:
    job = {
        "spec": {
            "template": {
                "spec": {"containers": [{"env": [{"name": sealing.SEALED_TOKEN_VARIABLE, "value": "s"}]}]}
            }
        }
    }
    assert sealing.sealed_token_of(job) == "s"
    assert sealing.sealed_token_of({"spec": {}}) is None  # a Job made before tokens were sealed
