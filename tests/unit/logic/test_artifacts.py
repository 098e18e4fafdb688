"""The artifact layout, the upload grant, compression and the checks, and the retention arithmetic
(jesus.logic.artifacts): pure, on injected moments. That the S3 server enforces the grant is proved
against SeaweedFS in tests/cluster/test_artifacts.py."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from jesus.api.objects import content_digest
from jesus.logic.artifacts import (
    ArtifactBucket,
    ArtifactIntegrityError,
    ArtifactLayoutError,
    UploadGrant,
    artifact_uri,
    attempt_prefix,
    check_claim,
    check_content,
    compress,
    decompress,
    due_markers,
    expires_at,
    expiry_marker_key,
    grant_lifetime_seconds,
    is_expired,
    key_digest,
    object_key,
    parse_expiry_marker,
    parse_s3_uri,
    run_prefix,
    sign_upload_grant,
    signing_key,
)

NOW = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)
UID = "6f1c2a9e-1b2c-4d5e-8f90-0123456789ab"
TARGET = ArtifactBucket("http://s3.test:8333/", "arts", region="eu-west-1", max_object_bytes=1000)
DIGEST = content_digest(b"hello")


# --- layout ---------------------------------------------------------------------------------------


def test_the_key_layout_is_per_run_uid_and_attempt_and_content_addressed() -> None:
    prefix = attempt_prefix("team-a", UID, 2)
    assert prefix == f"runs/team-a/{UID}/a2/"
    key = object_key(prefix, DIGEST)
    assert key == f"runs/team-a/{UID}/a2/{DIGEST.removeprefix('sha256:')}.gz"
    assert key_digest(key) == DIGEST
    assert parse_s3_uri(artifact_uri("arts", key)) == ("arts", key)
    assert run_prefix("team-a", UID) == f"runs/team-a/{UID}/"
    # a1 does not cover a10: the trailing slash.
    assert not attempt_prefix("team-a", UID, 10).startswith(attempt_prefix("team-a", UID, 1))


@pytest.mark.parametrize(
    ("namespace", "uid", "attempt"),
    [
        ("../etc", UID, 1),
        ("Team-A", UID, 1),
        ("", UID, 1),
        ("team-a", "../" + UID, 1),
        ("team-a", "", 1),
        ("team-a", "a/b", 1),
        ("team-a", UID, 0),
        ("team-a", UID, -1),
    ],
)
def test_a_prefix_of_a_hostile_or_careless_namespace_uid_or_attempt_is_refused(
    namespace: str, uid: str, attempt: int
) -> None:
    with pytest.raises(ArtifactLayoutError):
        attempt_prefix(namespace, uid, attempt)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///artifacts/result.json",
        "s3://arts",
        "s3:///runs/team-a/x/a1/" + "0" * 64 + ".gz",
        f"s3://arts/runs/team-a/{UID}/a1/../a2/{'0' * 64}.gz",
        f"s3://arts/runs/team-a/{UID}/../{'0' * 64}.gz",
        f"s3://arts/runs/team-a/{UID}/a1/{'0' * 64}",
        f"s3://arts/runs/team-a/{UID}/a1/{'0' * 63}.gz",
        f"s3://arts/runs/team-a/{UID}/ax/{'0' * 64}.gz",
        f"s3://arts/runs/team-a/{UID}/a1/sub/{'0' * 64}.gz",
        f"s3://arts/expiries/20260101T000000Z/team-a/{UID}/run",
        f"s3://arts/runs/Team-A/{UID}/a1/{'0' * 64}.gz",
    ],
)
def test_a_uri_the_layout_did_not_make_is_refused(uri: str) -> None:
    with pytest.raises(ArtifactLayoutError, match="artifact URI"):
        parse_s3_uri(uri)


@pytest.mark.parametrize("digest", ["sha256:XYZ", "md5:" + "0" * 32, "0" * 64, "sha256:" + "A" * 64, ""])
def test_an_object_key_needs_a_sha256_digest(digest: str) -> None:
    with pytest.raises(ArtifactLayoutError, match="is not sha256"):
        object_key("runs/a/b/a1/", digest)


# --- the grant ------------------------------------------------------------------------------------


def test_the_grant_is_a_policy_for_the_prefix_capped_and_expiring_signed_with_sigv4() -> None:
    prefix = attempt_prefix("team-a", UID, 1)
    grant = sign_upload_grant(TARGET, "AKIDEXAMPLE", "s3cr3t", prefix, now=NOW, lifetime_seconds=90)
    assert grant.url == "http://s3.test:8333/arts"
    assert grant.expires == "2026-12-01T00:01:00.000Z"  # across a month end
    policy = json.loads(base64.b64decode(grant.fields["policy"]))
    assert policy == {
        "expiration": "2026-12-01T00:01:00.000Z",
        "conditions": [
            {"bucket": "arts"},
            ["starts-with", "$key", prefix],
            ["content-length-range", 1, 1000],
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": "AKIDEXAMPLE/20261130/eu-west-1/s3/aws4_request"},
            {"x-amz-date": "20261130T235930Z"},
        ],
    }
    # SigV4 over the base64 policy with the key derived for the day, region and service.
    key = signing_key("s3cr3t", "20261130", "eu-west-1")
    expected = hmac.new(key, grant.fields["policy"].encode(), hashlib.sha256).hexdigest()
    assert grant.fields["x-amz-signature"] == expected
    # The grant carries no secret: not the key, not the derived signing key.
    text = grant.to_json()
    assert "s3cr3t" not in text and key.hex() not in text
    assert UploadGrant.from_json(text) == grant


def test_a_grant_signed_a_day_later_has_another_signature() -> None:
    prefix = attempt_prefix("team-a", UID, 1)
    today = sign_upload_grant(TARGET, "AK", "secret", prefix, now=NOW, lifetime_seconds=60)
    tomorrow = sign_upload_grant(
        TARGET, "AK", "secret", prefix, now=NOW + timedelta(days=1), lifetime_seconds=60
    )
    assert today.fields["x-amz-signature"] != tomorrow.fields["x-amz-signature"]
    assert tomorrow.fields["x-amz-credential"] == "AK/20261201/eu-west-1/s3/aws4_request"


def test_the_grant_lives_as_long_as_the_job_can_and_some_slack() -> None:
    assert grant_lifetime_seconds(3600, 30) == 3600 + 30 + 600


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"url": "u", "bucket": "b", "prefix": "p", "maxBytes": 1, "expires": "e"}',
        '{"url": "u", "bucket": "b", "prefix": "p", "maxBytes": 1, "expires": "e", "fields": {"a": 1}}',
        '{"url": "u", "bucket": "b", "prefix": "p", "maxBytes": "many", "expires": "e", "fields": {}}',
        "not json",
    ],
)
def test_a_careless_grant_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="the artifact grant"):
        UploadGrant.from_json(text)


# --- compression and checks -----------------------------------------------------------------------


def test_compression_is_deterministic_and_round_trips() -> None:
    assert compress(b"same") == compress(b"same")
    assert decompress(compress(b"x" * 10_000)) == b"x" * 10_000


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"plain text", "not gzip data"),
        (compress(b"abc" * 1000)[:20], "truncated"),
        (gzip.compress(b"\0" * 5000), "expands past 4096 bytes"),
    ],
)
def test_stored_bytes_that_are_no_honest_gzip_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(ArtifactIntegrityError, match=message):
        decompress(blob, limit=4096)


def test_content_must_have_the_listed_digest_and_size() -> None:
    check_content("a", DIGEST, 5, b"hello")
    check_content("a", DIGEST, None, b"hello")
    with pytest.raises(ArtifactIntegrityError, match=r"artifact a: stored content has digest sha256:"):
        check_content("a", DIGEST, 5, b"HELLO")
    with pytest.raises(ArtifactIntegrityError, match="is 5 bytes, not 6"):
        check_content("a", DIGEST, 6, b"hello")
    with pytest.raises(ArtifactIntegrityError, match="not None"):
        check_content("a", None, 5, b"hello")


def test_a_claim_must_be_in_the_bucket_under_the_attempts_prefix_and_name_its_digest() -> None:
    prefix = attempt_prefix("team-a", UID, 1)
    key = object_key(prefix, DIGEST)
    assert check_claim("a.md", artifact_uri("arts", key), DIGEST, "arts", prefix) == key
    other = content_digest(b"other")
    cases = {
        ("../a.md", artifact_uri("arts", key), DIGEST): "not a plain file name",
        (".hidden", artifact_uri("arts", key), DIGEST): "not a plain file name",
        ("a.md", artifact_uri("elsewhere", key), DIGEST): "outside this attempt's",
        (
            "a.md",
            artifact_uri("arts", object_key(attempt_prefix("team-a", UID, 2), DIGEST)),
            DIGEST,
        ): "outside",
        ("a.md", artifact_uri("arts", key), other): "does not name its digest",
        ("a.md", artifact_uri("arts", key), None): "does not name its digest",
        ("a.md", "https://evil.test/a.md", DIGEST): "is not an s3:// URI",
    }
    for (name, uri, digest), message in cases.items():
        with pytest.raises(ArtifactIntegrityError, match=message):
            check_claim(name, uri, digest, "arts", prefix)


# --- retention ------------------------------------------------------------------------------------


def test_expiry_is_the_completion_time_plus_the_retention() -> None:
    assert expires_at("2026-11-30T12:00:00Z", 1) == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert expires_at(None, 30) is None
    assert expires_at("yesterday", 30) is None  # a careless time expires nothing
    assert expires_at("2026-11-30T12:00:00", 30) is None  # nor one without an offset
    assert not is_expired("2026-11-30T12:00:00Z", 1, datetime(2026, 12, 1, 11, 59, 59, tzinfo=UTC))
    assert is_expired("2026-11-30T12:00:00Z", 1, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert not is_expired(None, 1, NOW), "a run that has not finished keeps its artifacts"


def test_the_expiry_index_sorts_by_time_and_only_due_markers_are_swept() -> None:
    early = expiry_marker_key(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), "team-a", UID, "first")
    late = expiry_marker_key(datetime(2026, 3, 1, tzinfo=UTC), "team-b", UID, "second.run")
    assert early == f"expiries/20260228T235959Z/team-a/{UID}/first"
    keys = [
        late,
        early,
        "expiries/garbage",
        "expiries/20260101T000000Z/team-a/x/y/z",
        "expiries/20260101T000000Z/../etc/passwd",
        f"expiries/2026-01-01/team-a/{UID}/r",
        f"runs/team-a/{UID}/a1/x.gz",
    ]
    assert due_markers(keys, datetime(2026, 2, 28, 23, 59, 58, tzinfo=UTC)) == []
    [due] = due_markers(keys, datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))
    assert (due.namespace, due.uid, due.name, due.run_prefix) == (
        "team-a",
        UID,
        "first",
        f"runs/team-a/{UID}/",
    )
    assert [m.name for m in due_markers(keys, datetime(2027, 1, 1, tzinfo=UTC))] == ["first", "second.run"]
    assert parse_expiry_marker(f"expiries/20260101T000000Z/team-a/{UID}/Bad_Name") is None


def test_a_marker_for_a_hostile_name_is_refused() -> None:
    for name in ("../x", "", "UPPER", "a/b"):
        with pytest.raises(ArtifactLayoutError):
            expiry_marker_key(NOW, "team-a", UID, name)
