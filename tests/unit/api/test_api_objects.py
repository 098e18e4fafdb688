"""The object facts shared by the pure builders and the cluster client: bounded names, digests, owners."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus.api.objects import (
    DIGEST_PATTERN,
    NAME_LIMIT,
    Ownership,
    bounded_name,
    content_digest,
    controller_of,
    owner_reference,
    ownership,
    spec_digest,
)

UID = "6f1c2a7e-0000-4000-8000-000000000001"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

dns_names = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,250}[a-z0-9])?", fullmatch=True)
suffixes = st.from_regex(r"[a-z0-9]{0,12}", fullmatch=True)
limits = st.integers(min_value=23, max_value=NAME_LIMIT)


@given(base=dns_names, suffix=suffixes, limit=limits)
def test_a_bounded_name_is_never_longer_than_its_limit(base: str, suffix: str, limit: int) -> None:
    assert len(bounded_name(base, suffix=suffix, limit=limit)) <= limit


@given(base=dns_names, suffix=suffixes, limit=limits)
def test_a_bounded_name_is_stable(base: str, suffix: str, limit: int) -> None:
    assert bounded_name(base, suffix=suffix, limit=limit) == bounded_name(base, suffix=suffix, limit=limit)


@given(first=dns_names, second=dns_names, suffix=suffixes)
def test_distinct_names_stay_distinct(first: str, second: str, suffix: str) -> None:
    if first != second:
        assert bounded_name(first, suffix=suffix) != bounded_name(second, suffix=suffix)


@given(base=dns_names.filter(lambda name: "." not in name), suffix=suffixes)
def test_a_shortened_dns_label_is_still_a_dns_label(base: str, suffix: str) -> None:
    assert DNS_LABEL.match(bounded_name(base, suffix=suffix, limit=40))


@pytest.mark.parametrize(
    ("base", "suffix", "limit", "expected"),
    [
        ("run", "a1", 52, "run-a1"),
        ("llama", "", 63, "llama"),
        ("a" * 63, "", 63, "a" * 63),
        ("a" * 64, "", 63, "a" * 54 + "-" + hashlib.sha256(b"a" * 64).hexdigest()[:8]),
        ("x" * 60, "a10", 52, "x" * 39 + "-" + hashlib.sha256(b"x" * 60).hexdigest()[:8] + "-a10"),
        # The cut never leaves a dot or dash before the digest.
        (
            "a" * 53 + ".-" + "b" * 20,
            "",
            63,
            "a" * 53 + "-" + hashlib.sha256(b"a" * 53 + b".-" + b"b" * 20).hexdigest()[:8],
        ),
    ],
)
def test_names_are_kept_when_they_fit_and_cut_with_a_digest_when_not(
    base: str, suffix: str, limit: int, expected: str
) -> None:
    assert bounded_name(base, suffix=suffix, limit=limit) == expected


def test_the_digest_can_stand_for_another_spelling_of_the_name() -> None:
    name = "vllm-" + "m-" * 40
    assert bounded_name(name, key="m." * 40) != bounded_name(name, key="m-" * 40)
    assert bounded_name(name, key="m." * 40).endswith(hashlib.sha256(("m." * 40).encode()).hexdigest()[:8])


def test_a_spec_digest_is_canonical_json_whatever_the_key_order() -> None:
    spec = {"b": [1, {"y": "ü", "x": None}], "a": 2}
    canonical = b'{"a":2,"b":[1,{"x":null,"y":"\xc3\xbc"}]}'
    assert spec_digest(spec) == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert spec_digest(json.loads(json.dumps(spec, sort_keys=True))) == spec_digest(spec)
    assert spec_digest({**spec, "a": 3}) != spec_digest(spec)
    assert re.match(DIGEST_PATTERN, spec_digest(spec))


def test_a_content_digest_names_its_algorithm() -> None:
    assert content_digest(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert re.match(DIGEST_PATTERN, content_digest(b""))


def test_an_owner_reference_makes_the_owner_the_controller() -> None:
    owner = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": UID}}
    assert owner_reference(owner) == {
        "apiVersion": "jesus.dev/v1alpha1",
        "kind": "AgentRun",
        "name": "r",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize(
    ("owners", "expected"),
    [
        (None, Ownership.ORPHAN),
        ([], Ownership.ORPHAN),
        ([{"uid": UID, "controller": True}], Ownership.OURS),
        ([{"uid": "someone-else", "controller": True}], Ownership.FOREIGN),
        ([{"uid": "someone-else", "controller": False}], Ownership.ORPHAN),
        ([{"uid": UID, "controller": False}, {"uid": "someone-else", "controller": True}], Ownership.FOREIGN),
    ],
)
def test_ownership_of_a_live_object(owners: list[dict[str, Any]] | None, expected: Ownership) -> None:
    assert ownership({"metadata": {"ownerReferences": owners}}, UID) is expected


def test_an_object_without_metadata_is_an_orphan_and_nobody_controls_it() -> None:
    assert ownership({}, UID) is Ownership.ORPHAN
    assert controller_of({}) == "nobody"


def test_the_controller_is_named_for_messages() -> None:
    live = {
        "metadata": {
            "ownerReferences": [
                {"kind": "ModelAdapter", "name": "a"},
                {"kind": "AgentRun", "name": "b", "controller": True},
            ]
        }
    }
    assert controller_of(live) == "AgentRun b"
