"""Durable artifacts in S3-compatible storage, as pure decisions (ADR 0030, docs/artifacts.md).

The key layout, the scoped upload grant an attempt gets (a pre-signed POST policy, signed here with
the operator's key and an injected clock), the compression, the check of what a pod says it stored,
and the retention arithmetic. No network and no SDK: the operator's S3 client
(`jesus.records.artifacts`) and the runner's uploader (`jesus.runner.artifacts`) perform what this
module decides.

Layout, per run UID (a run's name can be reused, its UID cannot):

    runs/<namespace>/<uid>/a<attempt>/<sha256 hex>.gz     an artifact, gzip, content-addressed
    expiries/<YYYYmmddTHHMMSSZ>/<namespace>/<uid>/<name>  empty: the run's artifacts expire then

An attempt's grant covers `runs/<namespace>/<uid>/a<attempt>/` and nothing else, so neither the expiry
index nor another attempt's or run's objects can be written by a runner.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jesus.api.objects import content_digest
from jesus.logic.clock import parse_time

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
"""A plain file name: no path, no `..`, no leading dot."""
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UID = re.compile(r"^[0-9a-fA-F-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_RUN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
RUNS_PREFIX = "runs/"
EXPIRIES_PREFIX = "expiries/"
_MARKER_TIME = "%Y%m%dT%H%M%SZ"

DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024
"""The grant's cap on one stored (compressed) object."""
DEFAULT_MAX_CONTENT_BYTES = 64 * 1024 * 1024
"""The most an artifact may expand to when the operator reads it (a gzip bomb stops here)."""
GRANT_SLACK_SECONDS = 600
"""A grant outlives the Job's deadline by this much: the runner uploads last, just before it exits."""
READ_URL_SECONDS = 300
"""How long a pre-signed download URL the read API hands out stays valid."""
ALGORITHM = "AWS4-HMAC-SHA256"


class ArtifactLayoutError(ValueError):
    """A name, key or URI that is not one this layout makes; the message names it."""


@dataclass(frozen=True, slots=True)
class ArtifactBucket:
    """Where the artifacts go: an S3-compatible endpoint and one bucket in it."""

    endpoint: str
    """Base URL both the operator and runner pods reach, e.g. http://seaweedfs.jesus-system.svc:8333."""
    bucket: str
    region: str = "us-east-1"
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES

    @property
    def bucket_url(self) -> str:
        """Where the grant's form is posted (path-style: works on every S3-compatible server)."""
        return f"{self.endpoint.rstrip('/')}/{self.bucket}"


# --- key layout -----------------------------------------------------------------------------------


def run_prefix(namespace: str, uid: str) -> str:
    """Every artifact of the run with `uid` lives under this prefix."""
    if not _NAMESPACE.match(namespace or ""):
        raise ArtifactLayoutError(f"namespace {namespace!r} is not a DNS label")
    if not _UID.match(uid or ""):
        raise ArtifactLayoutError(f"run UID {uid!r} is not a Kubernetes UID")
    return f"{RUNS_PREFIX}{namespace}/{uid}/"


def attempt_prefix(namespace: str, uid: str, attempt: int) -> str:
    """The prefix attempt `attempt` may write; the trailing slash keeps a1 from covering a10."""
    if attempt < 1:
        raise ArtifactLayoutError(f"attempt {attempt} is not a positive number")
    return f"{run_prefix(namespace, uid)}a{attempt}/"


def object_key(prefix: str, digest: str) -> str:
    """The key of content with `digest` (`sha256:<hex>` of the uncompressed bytes) under `prefix`."""
    hex_digest = digest.removeprefix("sha256:")
    if not digest.startswith("sha256:") or not _HEX.match(hex_digest):
        raise ArtifactLayoutError(f"digest {digest!r} is not sha256:<64 hex>")
    return f"{prefix}{hex_digest}.gz"


def artifact_uri(bucket: str, key: str) -> str:
    """The `s3://bucket/key` URI a status entry carries."""
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://` URI this layout made; ArtifactLayoutError for anything else."""
    if not uri.startswith("s3://"):
        raise ArtifactLayoutError(f"artifact URI {uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    parts = key.split("/")
    if (
        not bucket
        or not key.startswith(RUNS_PREFIX)
        or len(parts) != 5
        or any(part in ("", ".", "..") for part in parts)
        or not parts[3].startswith("a")
        or not parts[3][1:].isdigit()
        or not parts[4].endswith(".gz")
        or not _HEX.match(parts[4].removesuffix(".gz"))
    ):
        raise ArtifactLayoutError(f"artifact URI {uri!r} is not runs/<namespace>/<uid>/a<n>/<sha256>.gz")
    try:
        run_prefix(parts[1], parts[2])
    except ArtifactLayoutError as exc:
        raise ArtifactLayoutError(f"artifact URI {uri!r}: {exc}") from None
    return bucket, key


def key_digest(key: str) -> str:
    """The `sha256:<hex>` a content-addressed key names."""
    return "sha256:" + key.rsplit("/", 1)[-1].removesuffix(".gz")


# --- compression ----------------------------------------------------------------------------------


def compress(content: bytes) -> bytes:
    """gzip with no timestamp, so equal content gives equal objects."""
    return gzip.compress(content, compresslevel=6, mtime=0)


def decompress(blob: bytes, limit: int = DEFAULT_MAX_CONTENT_BYTES) -> bytes:
    """The content of a stored object; ArtifactIntegrityError when it is not gzip or expands past `limit`."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        content = inflater.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise ArtifactIntegrityError(f"not gzip data: {exc}") from None
    if len(content) > limit:
        raise ArtifactIntegrityError(f"expands past {limit} bytes")
    if not inflater.eof:
        raise ArtifactIntegrityError("truncated gzip data")
    return content


class ArtifactIntegrityError(ValueError):
    """Stored bytes are not what their status entry says; the message says how."""


def check_content(name: str, digest: str | None, size_bytes: int | None, content: bytes) -> None:
    """Raise ArtifactIntegrityError unless `content` has the entry's digest and size."""
    actual = content_digest(content)
    if digest != actual:
        raise ArtifactIntegrityError(f"artifact {name}: stored content has digest {actual}, not {digest}")
    if size_bytes is not None and size_bytes != len(content):
        raise ArtifactIntegrityError(
            f"artifact {name}: stored content is {len(content)} bytes, not {size_bytes}"
        )


def check_claim(name: str, uri: str, digest: str | None, bucket: str, prefix: str) -> str:
    """The key a pod's artifact entry may name: in our bucket, under the attempt's prefix, addressed by
    its own digest. Returns the key; ArtifactIntegrityError says what is wrong."""
    if not ARTIFACT_NAME.match(name):
        raise ArtifactIntegrityError(f"artifact name {name!r} is not a plain file name")
    try:
        claimed_bucket, key = parse_s3_uri(uri)
    except ArtifactLayoutError as exc:
        raise ArtifactIntegrityError(f"artifact {name}: {exc}") from None
    if claimed_bucket != bucket or not key.startswith(prefix):
        raise ArtifactIntegrityError(
            f"artifact {name}: {uri} is outside this attempt's s3://{bucket}/{prefix}"
        )
    if digest is None or key_digest(key) != digest:
        raise ArtifactIntegrityError(f"artifact {name}: key {key} does not name its digest {digest}")
    return key


# --- the upload grant -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadGrant:
    """A pre-signed POST policy: whoever holds it may store objects under `prefix` (no larger than
    `max_bytes`) in `bucket` until `expires`, and nothing else. It carries no secret key."""

    url: str
    bucket: str
    prefix: str
    max_bytes: int
    expires: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The form the Job's environment carries (JESUS_ARTIFACT_GRANT)."""
        return json.dumps(
            {
                "url": self.url,
                "bucket": self.bucket,
                "prefix": self.prefix,
                "maxBytes": self.max_bytes,
                "expires": self.expires,
                "fields": dict(self.fields),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> UploadGrant:
        """Parse a grant; ValueError names what is missing."""
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the artifact grant is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("the artifact grant is not a JSON object")
        try:
            fields = data["fields"]
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                raise TypeError("its fields are not strings")
            return cls(
                url=str(data["url"]),
                bucket=str(data["bucket"]),
                prefix=str(data["prefix"]),
                max_bytes=int(data["maxBytes"]),
                expires=str(data["expires"]),
                fields={str(k): v for k, v in fields.items()},
            )
        except KeyError as exc:
            raise ValueError(f"the artifact grant has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the artifact grant is not valid: {exc}") from None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, day: str, region: str) -> bytes:
    """SigV4's derived key for `day` (YYYYmmdd) in `region` for S3."""
    key = _hmac(("AWS4" + secret_key).encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, "s3")
    return _hmac(key, "aws4_request")


def sign_upload_grant(
    target: ArtifactBucket,
    access_key: str,
    secret_key: str,
    prefix: str,
    *,
    now: datetime,
    lifetime_seconds: int,
) -> UploadGrant:
    """A POST policy for `prefix` valid from `now` for `lifetime_seconds`, signed with the operator's key.

    The S3 server checks the policy: the key must start with `prefix`, the object must be at most
    `target.max_object_bytes`, the policy must not have expired. The secret key never leaves here.
    """
    moment = now.astimezone(UTC)
    day = moment.strftime("%Y%m%d")
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{access_key}/{day}/{target.region}/s3/aws4_request"
    expires = (moment + timedelta(seconds=lifetime_seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policy = {
        "expiration": expires,
        "conditions": [
            {"bucket": target.bucket},
            ["starts-with", "$key", prefix],
            ["content-length-range", 1, target.max_object_bytes],
            {"x-amz-algorithm": ALGORITHM},
            {"x-amz-credential": credential},
            {"x-amz-date": amz_date},
        ],
    }
    encoded = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
    signature = hmac.new(signing_key(secret_key, day, target.region), encoded.encode(), hashlib.sha256)
    return UploadGrant(
        url=target.bucket_url,
        bucket=target.bucket,
        prefix=prefix,
        max_bytes=target.max_object_bytes,
        expires=expires,
        fields={
            "policy": encoded,
            "x-amz-algorithm": ALGORITHM,
            "x-amz-credential": credential,
            "x-amz-date": amz_date,
            "x-amz-signature": signature.hexdigest(),
        },
    )


def grant_lifetime_seconds(timeout_seconds: int, grace_seconds: int) -> int:
    """How long an attempt's grant lives: the Job's deadline and some slack, and no longer."""
    return timeout_seconds + grace_seconds + GRANT_SLACK_SECONDS


# --- retention ------------------------------------------------------------------------------------


def expires_at(completion_time: str | None, retention_days: int) -> datetime | None:
    """When a finished run's artifacts expire; None for a run that has not finished (or no valid time)."""
    if not completion_time:
        return None
    try:
        return parse_time(completion_time) + timedelta(days=retention_days)
    except ValueError:
        return None


def is_expired(completion_time: str | None, retention_days: int, now: datetime) -> bool:
    """Whether the artifacts of a run that finished at `completion_time` are past their retention."""
    moment = expires_at(completion_time, retention_days)
    return moment is not None and moment <= now


def expiry_marker_key(moment: datetime, namespace: str, uid: str, name: str) -> str:
    """The empty object that says the artifacts of run `name` (`uid`) expire at `moment`; keys sort by
    time, so a sweep lists only what is due."""
    run_prefix(namespace, uid)  # validates both
    if not _RUN_NAME.match(name or ""):
        raise ArtifactLayoutError(f"run name {name!r} is not a DNS subdomain")
    return f"{EXPIRIES_PREFIX}{moment.astimezone(UTC).strftime(_MARKER_TIME)}/{namespace}/{uid}/{name}"


@dataclass(frozen=True, slots=True)
class ExpiryMarker:
    """One entry of the expiry index."""

    key: str
    moment: datetime
    namespace: str
    uid: str
    name: str

    @property
    def run_prefix(self) -> str:
        """The prefix whose objects go when the marker is due."""
        return run_prefix(self.namespace, self.uid)


def parse_expiry_marker(key: str) -> ExpiryMarker | None:
    """The marker `key` names; None for a key this layout did not make (it is left alone)."""
    parts = key.removeprefix(EXPIRIES_PREFIX).split("/")
    if not key.startswith(EXPIRIES_PREFIX) or len(parts) != 4:
        return None
    try:
        moment = datetime.strptime(parts[0], _MARKER_TIME).replace(tzinfo=UTC)
        if expiry_marker_key(moment, parts[1], parts[2], parts[3]) != key:
            return None
    except (ValueError, ArtifactLayoutError):
        return None
    return ExpiryMarker(key=key, moment=moment, namespace=parts[1], uid=parts[2], name=parts[3])


def due_markers(keys: list[str], now: datetime) -> list[ExpiryMarker]:
    """The markers among `keys` whose moment has come, oldest first."""
    markers = [m for key in keys if (m := parse_expiry_marker(key)) is not None]
    return sorted((m for m in markers if m.moment <= now), key=lambda m: m.key)
