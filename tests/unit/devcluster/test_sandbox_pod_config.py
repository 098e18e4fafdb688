"""A pod's environment and volumes as the sandbox kubelet assembles them from the cluster (a fake one):
every env form, envFrom, items and modes, the projected service-account token, and the careless
references a kubelet reports instead of running the pod."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, cast

import pytest
from tests.builders.cluster import FakeKube

from jesus.devcluster.podconfig import PodConfig, PodConfigError
from jesus.kube import JsonObject, KubeClient

NS = "team"


class TokenKube(FakeKube):
    """Issues a token per request, bound to the pod it names."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    async def request_token(self, namespace: str, service_account: str, **options: Any) -> JsonObject:
        self.requests.append({"namespace": namespace, "account": service_account, **options})
        return {"token": f"token-of-{service_account}"}


def kube_with_objects() -> TokenKube:
    kube = TokenKube()
    kube.put(
        {"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}, "data": {"a": "1", "b": "2"}}
    )
    secret = {k: base64.b64encode(v).decode() for k, v in {"password": b"s3cret", "bin": b"\x00\x01"}.items()}
    kube.put({"kind": "Secret", "metadata": {"name": "creds", "namespace": NS}, "data": secret})
    return kube


def pod(volumes: list[dict[str, Any]] | None = None) -> JsonObject:
    return {
        "metadata": {"name": "p", "namespace": NS, "uid": "u-1", "labels": {"app": "x"}},
        "spec": {"serviceAccountName": "sa", "nodeName": "n", "containers": [], "volumes": volumes or []},
    }


def environment(container: dict[str, Any], kube: TokenKube | None = None) -> dict[str, str]:
    config = PodConfig(cast(KubeClient, kube or kube_with_objects()), pod(), pod_ip="192.0.2.2")
    return asyncio.run(config.environment({"name": "c", **container}, {"BASE": "b"}))


def test_every_env_form_resolves() -> None:
    env = environment(
        {
            "envFrom": [
                {"configMapRef": {"name": "settings"}, "prefix": "C_"},
                {"secretRef": {"name": "creds"}},
            ],
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "COMPOSED", "value": "$(A)-$(BASE)-$(LATER)"},
                {"name": "LATER", "value": "late"},
                {"name": "C_a", "value": "env beats envFrom"},
            ],
        }
    )
    assert env["A"] == "1" and env["P"] == "s3cret" and env["password"] == "s3cret"
    assert (env["IP"], env["LABEL"], env["SA"]) == ("192.0.2.2", "x", "sa")
    assert env["COMPOSED"] == "1-b-$(LATER)"  # only what comes before is expanded
    assert env["C_a"] == "env beats envFrom" and env["C_b"] == "2"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"secretKeyRef": {"name": "creds", "key": "absent"}}, 'secret "creds" has no key "absent"'),
        ({"secretKeyRef": {"name": "ghost", "key": "k"}}, 'secret "ghost" not found'),
        ({"configMapKeyRef": {"name": "ghost", "key": "k"}}, 'configmap "ghost" not found'),
        ({"fieldRef": {"fieldPath": "spec.containers[0]"}}, "fieldRef 'spec.containers[0]' is not supported"),
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "valueFrom ['resourceFieldRef'] is not supported"),
    ],
)
def test_careless_references_name_what_is_missing(item: dict[str, Any], message: str) -> None:
    with pytest.raises(PodConfigError, match="container 'c' env 'X'") as raised:
        environment({"env": [{"name": "X", "valueFrom": item}]})
    assert message in str(raised.value)


def test_optional_references_may_be_missing() -> None:
    env = environment(
        {
            "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "ghost", "key": "k", "optional": True}}}
            ],
            "envFrom": [{"configMapRef": {"name": "ghost", "optional": True}}],
        }
    )
    assert "X" not in env


def volumes(specs: list[dict[str, Any]], directory: Path, kube: TokenKube | None = None) -> dict[str, Path]:
    config = PodConfig(cast(KubeClient, kube or kube_with_objects()), pod(specs))
    return asyncio.run(config.volumes(directory))


def test_volumes_hold_their_keys_with_their_modes(tmp_path: Path) -> None:
    kube = kube_with_objects()
    written = volumes(
        [
            {
                "name": "cm",
                "configMap": {
                    "name": "settings",
                    "items": [{"key": "a", "path": "sub/a.txt", "mode": 0o600}],
                },
            },
            {"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "e", "emptyDir": {}},
            {
                "name": "api",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "path": "token",
                                "expirationSeconds": 600,
                                "audience": "vault",
                            }
                        },
                        {"configMap": {"name": "settings", "items": [{"key": "b", "path": "ca.crt"}]}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                ]
                            }
                        },
                    ]
                },
            },
        ],
        tmp_path,
        kube,
    )
    assert (written["cm"] / "sub" / "a.txt").read_text() == "1"
    assert not (written["cm"] / "b").exists()
    assert oct((written["cm"] / "sub" / "a.txt").stat().st_mode & 0o777) == "0o600"
    assert (written["s"] / "bin").read_bytes() == b"\x00\x01"
    assert oct((written["s"] / "password").stat().st_mode & 0o777) == "0o400"
    assert oct(written["e"].stat().st_mode & 0o777) == "0o777"
    api = written["api"]
    assert (api / "token").read_text() == "token-of-sa"
    assert (api / "ca.crt").read_text() == "2" and (api / "namespace").read_text() == NS
    [request] = kube.requests
    assert request["audiences"] == ["vault"] and request["expiration_seconds"] == 600
    assert request["bound_pod"]["metadata"]["uid"] == "u-1"


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"name": "v", "secret": {"secretName": "ghost"}}, "volume 'v': secret \"ghost\" not found"),
        (
            {"name": "v", "secret": {"secretName": "creds", "items": [{"key": "absent", "path": "x"}]}},
            'volume \'v\': secret "creds" has no key "absent"',
        ),
        (
            {
                "name": "v",
                "secret": {"secretName": "creds", "items": [{"key": "password", "path": "../../etc/x"}]},
            },
            "must not contain '..'",
        ),
        (
            {
                "name": "v",
                "secret": {"secretName": "creds", "items": [{"key": "password", "path": "/etc/x"}]},
            },
            "must be a relative path",
        ),
        (
            {
                "name": "v",
                "secret": {
                    "secretName": "creds",
                    "items": [{"key": "password", "path": "a"}, {"key": "bin", "path": "a/b"}],
                },
            },
            "goes through 'a', which is no directory",
        ),
        ({"name": "v", "hostPath": {"path": "/etc"}}, "volume type ['hostPath'] is not supported"),
    ],
)
def test_careless_and_hostile_volumes_are_refused(
    volume: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(PodConfigError) as raised:
        volumes([volume], tmp_path / "pod")
    assert message in str(raised.value)
    assert not (tmp_path / "etc").exists()


def test_an_optional_missing_secret_leaves_an_empty_volume(tmp_path: Path) -> None:
    written = volumes([{"name": "v", "secret": {"secretName": "ghost", "optional": True}}], tmp_path)
    assert list(written["v"].iterdir()) == []
