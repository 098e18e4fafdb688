"""The operator's side of durable artifacts (ADR 0030): the only holder of the storage credential.

It signs each attempt's upload grant, checks what a pod says it stored, reads an artifact back with
its digest checked (`read_artifact`, for the lesson loop, the CLI and the read API), hands out
short-lived download URLs, and deletes a run's artifacts once its retention has passed (the expiry
index under `expiries/`). Blocking (boto3): async callers run it in a thread. The layout and every
decision are `jesus.logic.artifacts`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jesus.api.agentrun import ArtifactRef
from jesus.logic.artifacts import (
    DEFAULT_MAX_CONTENT_BYTES,
    READ_URL_SECONDS,
    ArtifactBucket,
    ArtifactIntegrityError,
    ArtifactLayoutError,
    ExpiryMarker,
    UploadGrant,
    attempt_prefix,
    check_claim,
    check_content,
    decompress,
    due_markers,
    expiry_marker_key,
    parse_s3_uri,
    run_prefix,
    sign_upload_grant,
)
from jesus.logic.clock import Clock, system_clock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

ACCESS_KEY_VARIABLE = "JESUS_ARTIFACTS_ACCESS_KEY_ID"
SECRET_KEY_VARIABLE = "JESUS_ARTIFACTS_SECRET_ACCESS_KEY"  # nosec B105 - a variable's name, not a secret


class ArtifactStoreError(Exception):
    """The S3 server could not be reached or refused the operator; the message names the object."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What the operator made of an attempt's artifact entries: the ones it found intact, and why the
    others were left out of the status."""

    artifacts: tuple[ArtifactRef, ...]
    problems: tuple[str, ...]


class S3Artifacts:
    """One bucket of an S3-compatible server, with the operator's credential."""

    def __init__(
        self,
        target: ArtifactBucket,
        access_key: str,
        secret_key: str,
        *,
        clock: Clock = system_clock,
        client: S3Client | None = None,
    ) -> None:
        if not access_key or not secret_key:
            raise ArtifactStoreError(
                f"no storage credential: set {ACCESS_KEY_VARIABLE} and {SECRET_KEY_VARIABLE} "
                "(the chart takes them from the Secret artifacts.credentialsSecret)"
            )
        self.target = target
        self.clock = clock
        self._access_key = access_key
        self._secret_key = secret_key
        self.client: S3Client = client or boto3.client(
            "s3",
            endpoint_url=target.endpoint,
            region_name=target.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    @classmethod
    def from_environment(cls, target: ArtifactBucket, *, clock: Clock = system_clock) -> S3Artifacts:
        """The store with the credential from the operator's environment (the chart's Secret)."""
        return cls(
            target,
            os.environ.get(ACCESS_KEY_VARIABLE, ""),
            os.environ.get(SECRET_KEY_VARIABLE, ""),
            clock=clock,
        )

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.target.bucket

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as exc:
                raise ArtifactStoreError(f"bucket {self.bucket} could not be created: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(f"bucket {self.bucket} could not be reached: {exc}") from exc

    # --- writing: grants, and the expiry index ----------------------------------------------------

    def grant(self, namespace: str, uid: str, attempt: int, lifetime_seconds: int) -> UploadGrant:
        """The attempt's upload grant: its own prefix only, capped, expiring (signed, no request made)."""
        return sign_upload_grant(
            self.target,
            self._access_key,
            self._secret_key,
            attempt_prefix(namespace, uid, attempt),
            now=self.clock(),
            lifetime_seconds=lifetime_seconds,
        )

    def mark_expiry(self, namespace: str, uid: str, name: str, moment: datetime) -> str:
        """Record in the expiry index that the run's artifacts go at `moment`; returns the marker's key."""
        key = expiry_marker_key(moment, namespace, uid, name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(
                f"expiry marker s3://{self.bucket}/{key} could not be written: {exc}"
            ) from exc
        return key

    def sweep(self, now: datetime | None = None, *, limit: int = 100) -> list[ExpiryMarker]:
        """Delete the artifacts of every run whose marker is due (at most `limit` runs); returns them."""
        moment = now or self.clock()
        done: list[ExpiryMarker] = []
        for marker in due_markers(list(self._keys("expiries/", limit=10 * limit)), moment)[:limit]:
            deleted = self.delete_prefix(marker.run_prefix)
            self._delete([marker.key])
            logger.info(
                "Deleted expired artifacts namespace=%s uid=%s objects=%d expiredAt=%s",
                marker.namespace,
                marker.uid,
                deleted,
                marker.moment.isoformat(),
            )
            done.append(marker)
        return done

    def delete_run(self, namespace: str, uid: str) -> int:
        """Delete every artifact of the run; returns how many objects went."""
        return self.delete_prefix(run_prefix(namespace, uid))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`."""
        keys = list(self._keys(prefix))
        for start in range(0, len(keys), 1000):
            self._delete(keys[start : start + 1000])
        return len(keys)

    def _delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(
                f"objects under s3://{self.bucket}/ could not be deleted: {exc}"
            ) from exc

    def _keys(self, prefix: str, limit: int | None = None) -> Iterator[str]:
        token: str | None = None
        count = 0
        try:
            while True:
                page = (
                    self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, ContinuationToken=token)
                    if token
                    else self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
                )
                for item in page.get("Contents", []):
                    yield item["Key"]
                    count += 1
                    if limit is not None and count >= limit:
                        return
                if not page.get("IsTruncated"):
                    return
                token = page.get("NextContinuationToken")
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"s3://{self.bucket}/{prefix} could not be listed: {exc}") from exc

    # --- reading ----------------------------------------------------------------------------------

    def fetch(self, key: str, limit: int = DEFAULT_MAX_CONTENT_BYTES) -> bytes | None:
        """The decompressed content of `key`; None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise ArtifactStoreError(f"s3://{self.bucket}/{key} could not be read: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(f"s3://{self.bucket}/{key} could not be read: {exc}") from exc
        if head.get("ContentLength", 0) > self.target.max_object_bytes:
            size, cap = head["ContentLength"], self.target.max_object_bytes
            raise ArtifactIntegrityError(f"s3://{self.bucket}/{key} is {size} bytes, over the cap of {cap}")
        try:
            blob = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"s3://{self.bucket}/{key} could not be read: {exc}") from exc
        try:
            return decompress(blob, limit)
        except ArtifactIntegrityError as exc:
            raise ArtifactIntegrityError(f"s3://{self.bucket}/{key}: {exc}") from None

    def verify(self, artifacts: Sequence[ArtifactRef], namespace: str, uid: str, attempt: int) -> Verified:
        """Check every `s3://` entry a pod listed: in the attempt's prefix, present, digest and size as
        listed. Entries of another scheme are not ours to check and are kept as they are."""
        prefix = attempt_prefix(namespace, uid, attempt)
        kept: list[ArtifactRef] = []
        problems: list[str] = []
        for ref in artifacts:
            if not ref.uri.startswith("s3://"):
                kept.append(ref)
                continue
            try:
                key = check_claim(ref.name, ref.uri, ref.digest, self.bucket, prefix)
                content = self.fetch(key)
                if content is None:
                    raise ArtifactIntegrityError(f"artifact {ref.name}: {ref.uri} is not in the bucket")
                check_content(ref.name, ref.digest, ref.size_bytes, content)
            except ArtifactIntegrityError as exc:
                # The checks name the artifact; the bucket's answers name the object.
                problem = str(exc)
                named = problem if problem.startswith("artifact ") else f"artifact {ref.name}: {problem}"
                problems.append(named)
                continue
            kept.append(ref)
        return Verified(tuple(kept), tuple(problems))

    def read(self, ref: ArtifactRef) -> bytes:
        """The content of the status entry `ref`, its digest and size checked."""
        bucket, key = parse_s3_uri(ref.uri)
        if bucket != self.bucket:
            raise ArtifactIntegrityError(f"artifact {ref.name}: {ref.uri} is not in bucket {self.bucket}")
        try:
            content = self.fetch(key)
        except ArtifactIntegrityError as exc:
            raise ArtifactIntegrityError(f"artifact {ref.name}: {exc}") from None
        if content is None:
            raise ArtifactIntegrityError(f"artifact {ref.name}: {ref.uri} is not in the bucket (expired?)")
        check_content(ref.name, ref.digest, ref.size_bytes, content)
        return content

    def download_url(self, ref: ArtifactRef, seconds: int = READ_URL_SECONDS) -> str:
        """A pre-signed GET of the entry's object, valid `seconds`; the response is the stored gzip,
        labelled so a browser inflates it and saves it under the artifact's name."""
        bucket, key = parse_s3_uri(ref.uri)
        if bucket != self.bucket:
            raise ArtifactIntegrityError(f"artifact {ref.name}: {ref.uri} is not in bucket {self.bucket}")
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ResponseContentEncoding": "gzip",
                "ResponseContentDisposition": f'attachment; filename="{ref.name}"',
            },
            ExpiresIn=seconds,
        )


def read_artifact(ref: ArtifactRef, store: S3Artifacts | None = None) -> bytes:
    """The content of an AgentRun status `artifacts` entry, its digest checked: from the S3 store for
    `s3://` URIs, from the file for `file://` ones (the directory backend of `jesus run`).

    Raises ArtifactIntegrityError when the content is gone or is not what the entry says,
    ArtifactStoreError when the store cannot be reached, ArtifactLayoutError for another URI.
    """
    if ref.uri.startswith("s3://"):
        if store is None:
            raise ArtifactStoreError(f"artifact {ref.name} is in {ref.uri} and no S3 store is configured")
        return store.read(ref)
    parsed = urlparse(ref.uri)
    if parsed.scheme != "file":
        raise ArtifactLayoutError(f"artifact {ref.name}: URI {ref.uri!r} is neither s3:// nor file://")
    path = Path(unquote(parsed.path))
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ArtifactIntegrityError(
            f"artifact {ref.name}: {path} could not be read: {exc.strerror}"
        ) from None
    check_content(ref.name, ref.digest, ref.size_bytes, content)
    return content
