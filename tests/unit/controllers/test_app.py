"""The operator's Kopf settings: the lean diff-base builds exactly Kopf's essence."""

from __future__ import annotations

from typing import Any, cast

import kopf

from jesus.controllers.app import LeanDiffBaseStorage


def body() -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": "jesus.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {
            "name": "run",
            "namespace": "team",
            "uid": "1234",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"team": "a"},
            "annotations": {
                "jesus.dev/last-handled-configuration": '{"spec": {}}',
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "owner": "ada",
            },
            "finalizers": ["jesus.dev/finalizer"],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"task": {"instructions": "hi"}, "limits": {"maxCost": "1.00"}},
        "status": {"phase": "Running", "calls": [{"adapter": "a"}]},
    }
    return kopf.Body(cast(kopf.RawBody, raw))


def test_the_lean_essence_is_kopfs_essence() -> None:
    lean = LeanDiffBaseStorage(prefix="jesus.dev", key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix="jesus.dev", key="last-handled-configuration")
    essence = lean.build(body=body())
    assert essence == kopfs.build(body=body())
    assert essence["spec"]["limits"] == {"maxCost": "1.00"}
    assert "status" not in essence
    assert essence["metadata"] == {"labels": {"team": "a"}, "annotations": {"owner": "ada"}}


def test_with_extra_fields_it_is_kopfs_own_build() -> None:
    lean = LeanDiffBaseStorage(prefix="jesus.dev", key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix="jesus.dev", key="last-handled-configuration")
    extra = ["status.phase"]
    assert lean.build(body=body(), extra_fields=extra) == kopfs.build(body=body(), extra_fields=extra)
    assert lean.build(body=body(), extra_fields=extra)["status"] == {"phase": "Running"}
