"""The dev control plane's audit policy: the API server gets it with a log in the plane's directory,
Secrets and tokens are never recorded beyond Metadata, every write to jesus.dev objects is recorded
with its request and response, and docs/security.md gives managed clusters the same policy."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML

from jesus.devcluster import components
from jesus.devcluster.components import Ports

REPO = Path(__file__).resolve().parents[3]
POLICY_TEXT = resources.files("jesus.devcluster").joinpath(components.AUDIT_POLICY).read_text()


def _level_for(rules: list[dict[str, object]], group: str, resource: str, verb: str) -> str:
    """The level of the first rule that matches, as the API server picks it."""
    for rule in rules:
        verbs = rule.get("verbs")
        if verbs is not None and verb not in verbs:  # type: ignore[operator]
            continue
        kinds = rule.get("resources")
        if kinds is not None and not any(
            k["group"] == group and ("resources" not in k or resource in k["resources"])
            for k in kinds  # type: ignore[attr-defined]
        ):
            continue
        return str(rule["level"])
    return "None"


def test_the_api_server_writes_the_audit_log_into_the_planes_directory(tmp_path: Path) -> None:
    ports = Ports(1, 2, 3, 4, 5, 6)
    args = components.apiserver_args(ports, tmp_path / "pki", tmp_path)
    assert f"--audit-policy-file={tmp_path / 'audit-policy.yaml'}" in args
    assert f"--audit-log-path={tmp_path / 'audit.log'}" in args
    assert "--audit-log-format=json" in args
    assert (tmp_path / "audit-policy.yaml").read_text() == POLICY_TEXT


def test_a_plane_without_audit_gets_no_audit_flag(tmp_path: Path) -> None:
    args = components.apiserver_args(Ports(1, 2, 3, 4, 5, 6), tmp_path / "pki", tmp_path, audit=False)
    assert not [a for a in args if a.startswith("--audit")]
    assert any(a.startswith("--etcd-servers=") for a in args)
    assert not (tmp_path / "audit-policy.yaml").exists()


def test_secrets_and_tokens_stay_at_metadata_and_platform_writes_are_recorded_in_full() -> None:
    policy = YAML(typ="safe", pure=True).load(POLICY_TEXT)
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    rules = policy["rules"]
    for verb in ("get", "list", "create", "update", "patch", "delete"):
        assert _level_for(rules, "", "secrets", verb) == "Metadata", verb
    assert _level_for(rules, "", "serviceaccounts/token", "create") == "Metadata"
    assert _level_for(rules, "authentication.k8s.io", "tokenreviews", "create") == "Metadata"
    for resource in ("agentruns", "budgets", "routepolicies", "modeladapters", "agentruns/status"):
        for verb in ("create", "update", "patch", "delete"):
            assert _level_for(rules, "jesus.dev", resource, verb) == "RequestResponse", (resource, verb)
        assert _level_for(rules, "jesus.dev", resource, "get") == "None"
    assert _level_for(rules, "", "pods", "create") == "None"


def test_the_security_docs_give_managed_clusters_the_same_policy() -> None:
    text = (REPO / "docs" / "security.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert POLICY_TEXT in blocks, "docs/security.md's audit policy differs from the dev control plane's"
