"""Who may do what, and who did what (issue 16), decided by the real API server: the chart's roles for
people and its run-owner ValidatingAdmissionPolicy, applied as rendered, with people impersonated
(`kubectl --as USER --as-group GROUP`, which the admin may do). Every refusal here is the API
server's: RBAC's "cannot create resource", or the policy's message naming the field. The dev control
plane's audit log records each create with the person it was made as.

One set of roles, namespaces and the policy is shared by the module (made once, removed at its end):
the policy is cluster-wide and would refuse the runs of other tests' unlabelled namespaces.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.builders.agentrun import agent_run
from tests.builders.budget import team_budget
from tests.cluster.harness import apply, wait_for
from tests.cluster.test_chart import CHART, KUBE_VERSION, helm

from jesus.devcluster import ControlPlane

RELEASE, RELEASE_NAMESPACE = "jesus", "jesus-system"
POLICY = f"{RELEASE_NAMESPACE}-{RELEASE}-run-owner"  # the chart's cluster-scoped name
TEAM_LABEL = "jesus.dev/team"
ADA = ("ada@example.com", "team-a")  # submits in team a's namespace
BOB = ("bob@example.com", "team-b")  # submits in team b's namespace
VERA = ("vera@example.com", "auditors")  # reads team a's runs
PAT = ("pat@example.com", "platform")  # the platform: Budgets, RoutePolicies, ModelAdapters
ARGO = ("system:serviceaccount:argocd:argocd-application-controller", "gitops")  # applies Git for others


@dataclass(frozen=True)
class People:
    """Who the module's roles are bound to, each as (user, group): test_oidc.py binds its OIDC users."""

    submitter_a: tuple[str, str] = ADA
    submitter_b: tuple[str, str] = BOB
    viewer_a: tuple[str, str] = VERA
    platform: tuple[str, str] = PAT
    applier: tuple[str, str] = ARGO


@dataclass
class Teams:
    """The module's namespaces: team a's, team b's, and one nobody labelled."""

    plane: ControlPlane
    a: str
    b: str
    unlabelled: str
    rendered: str

    def as_person(
        self, who: tuple[str, str], *args: str, input: str | None = None, extra_groups: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as `who` (user, group), impersonated by the admin."""
        groups = [f"--as-group={g}" for g in (who[1], *extra_groups)]
        return self.plane.kubectl(f"--as={who[0]}", *groups, *args, input=input, check=False)

    def create(
        self, who: tuple[str, str], namespace: str, obj: dict[str, Any], *, extra_groups: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.as_person(
            who, "create", "-n", namespace, "-f", "-", input=json.dumps(obj), extra_groups=extra_groups
        )


def run_of(name: str, user: str, team: str) -> dict[str, Any]:
    run = agent_run(name)
    run["spec"]["owner"] = {"user": user, "team": team}
    return run


def values(a: str, b: str, people: People) -> dict[str, Any]:
    return {
        "access": {
            "approverGroups": [people.platform[1]],
            "teams": [
                {
                    "name": "a",
                    "namespace": a,
                    "groups": [people.submitter_a[1]],
                    "viewerGroups": [people.viewer_a[1]],
                },
                {"name": "b", "namespace": b, "groups": [people.submitter_b[1]]},
            ],
            "runOwnerPolicy": {"trustedAppliers": {"groups": [people.applier[1]]}},
        }
    }


@pytest.fixture(scope="module")
def teams(crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teams]:
    with installed_teams(crds, tmp_path_factory.mktemp("access"), People()) as found:
        yield found


@contextmanager
def installed_teams(crds: ControlPlane, directory: Path, people: People) -> Iterator[Teams]:
    """Team a's, team b's and an unlabelled namespace, the chart's roles for `people` and its run-owner
    policy, applied and in force; all removed again at the end."""
    ada = people.submitter_a
    suffix = uuid.uuid4().hex[:6]
    a, b, unlabelled = f"access-a-{suffix}", f"access-b-{suffix}", f"access-none-{suffix}"
    for name in (a, b, unlabelled):
        crds.kubectl("create", "namespace", name)
    crds.kubectl("label", "namespace", a, f"{TEAM_LABEL}=a")
    crds.kubectl("label", "namespace", b, f"{TEAM_LABEL}=b")
    values_file = directory / "values.json"
    values_file.write_text(json.dumps(values(a, b, people)))
    rendered = helm(
        "template",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        f"--kube-version={KUBE_VERSION}",
        "-f",
        str(values_file),
        "--show-only=templates/people-rbac.yaml",
        "--show-only=templates/run-owner-policy.yaml",
    ).stdout
    crds.kubectl("apply", "-f", "-", input=rendered)
    found = Teams(crds, a, b, unlabelled, rendered)
    try:
        # The aggregation controller fills in the roles' rules, and the API server loads the policy,
        # each a moment after they are applied.
        wait_for(
            lambda: (
                found.as_person(ada, "auth", "can-i", "create", "agentruns.jesus.dev", "-n", a).stdout.strip()
                == "yes"
            ),
            what="the aggregated submitter role to reach team a",
        )
        wait_for(
            lambda: "spec.owner.team" in found.create(ada, a, run_of("probe", ada[0], "b")).stderr,
            what=f"the ValidatingAdmissionPolicy {POLICY} to refuse a run of another team",
        )
        yield found
    finally:
        crds.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rendered, check=False)
        for name in (a, b, unlabelled):
            crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


def forbidden_by_rbac(
    result: subprocess.CompletedProcess[str], who: str, verb: str, resource: str, ns: str
) -> bool:
    return result.returncode != 0 and (
        f'User "{who}" cannot {verb} resource "{resource}" in API group "jesus.dev" in the namespace "{ns}"'
        in result.stderr
    )


def denied_by_policy(result: subprocess.CompletedProcess[str]) -> str:
    """The policy's message when the API server denied the request through it, else ''."""
    marker = f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
    if result.returncode == 0 or marker not in result.stderr:
        return ""
    return result.stderr.split(marker, 1)[1].strip()


def test_a_submitter_creates_runs_in_its_teams_namespace_and_is_refused_in_another(teams: Teams) -> None:
    created = teams.create(ADA, teams.a, run_of("ada-run", ADA[0], "a"))
    assert created.returncode == 0, created.stderr
    elsewhere = teams.create(ADA, teams.b, run_of("ada-in-b", ADA[0], "b"))
    assert forbidden_by_rbac(elsewhere, ADA[0], "create", "agentruns", teams.b), elsewhere.stderr
    # Bob, of team b, may not touch ada's run either.
    deleted = teams.as_person(BOB, "delete", "agentrun", "ada-run", "-n", teams.a)
    assert forbidden_by_rbac(deleted, BOB[0], "delete", "agentruns", teams.a), deleted.stderr
    # Ada may delete her own run (the server checks, and keeps it), and the status stays the operator's.
    own = teams.as_person(ADA, "delete", "agentrun", "ada-run", "-n", teams.a, "--dry-run=server")
    assert own.returncode == 0, own.stderr
    for verb in ("patch", "update"):
        status = teams.as_person(
            ADA, "auth", "can-i", verb, "agentruns.jesus.dev", "--subresource=status", "-n", teams.a
        )
        assert status.stdout.strip() == "no", verb


def test_a_submitter_cannot_create_or_edit_a_budget_and_the_platform_can(teams: Teams) -> None:
    budget = team_budget("a-budget", "a", "10.00")
    refused = teams.create(ADA, teams.a, budget)
    assert forbidden_by_rbac(refused, ADA[0], "create", "budgets", teams.a), refused.stderr
    created = teams.create(PAT, teams.a, budget)
    assert created.returncode == 0, created.stderr
    edit = teams.as_person(
        ADA,
        "patch",
        "budget",
        "a-budget",
        "-n",
        teams.a,
        "--type=merge",
        "-p",
        '{"spec": {"limit": "1000.00"}}',
    )
    assert forbidden_by_rbac(edit, ADA[0], "patch", "budgets", teams.a), edit.stderr
    # Lessons too: long-term memory is what the platform reviewed (a pull request, or the approver).
    for kind in ("routepolicies", "modeladapters", "lessons"):
        allowed = teams.as_person(ADA, "auth", "can-i", "create", f"{kind}.jesus.dev", "-n", teams.a)
        assert allowed.stdout.strip() == "no", kind
        allowed = teams.as_person(PAT, "auth", "can-i", "create", f"{kind}.jesus.dev", "-n", teams.b)
        assert allowed.stdout.strip() == "yes", kind


def test_a_submitter_cannot_claim_another_owner_or_team(teams: Teams) -> None:
    other_user = denied_by_policy(teams.create(ADA, teams.a, run_of("as-grace", "grace@example.com", "a")))
    assert other_user == (
        'AgentRun as-grace: spec.owner.user is "grace@example.com" but the submitter is "ada@example.com"; '
        "a run's owner is the person who submits it"
    )
    other_team = denied_by_policy(teams.create(ADA, teams.a, run_of("as-b", ADA[0], "b")))
    assert other_team == (
        f'AgentRun as-b: spec.owner.team is "b" but namespace {teams.a} belongs to team "a" '
        f"(label {TEAM_LABEL}); a run's team is its namespace's team"
    )
    # A run named by the server (generateName) is named in the message by the name it was given.
    generated = run_of("unused", "grace@example.com", "a")
    generated["metadata"] = {"generateName": "nightly-"}
    message = denied_by_policy(teams.create(ADA, teams.a, generated))
    assert re.match(r'AgentRun nightly-[a-z0-9]{5}: spec\.owner\.user is "grace@example\.com"', message), (
        message
    )
    # Careless case: the submitter's name in another case is another name (the API server's is exact).
    upper = denied_by_policy(teams.create(ADA, teams.a, run_of("as-upper", "Ada@example.com", "a")))
    assert 'spec.owner.user is "Ada@example.com"' in upper


def test_an_owner_cannot_be_changed_later_but_other_edits_pass(teams: Teams) -> None:
    assert teams.create(ADA, teams.a, run_of("kept", ADA[0], "a")).returncode == 0
    handed_over = teams.as_person(
        ADA, "patch", "agentrun", "kept", "-n", teams.a, "--type=merge",
        "-p", '{"spec": {"owner": {"user": "grace@example.com"}}}',
    )  # fmt: skip
    assert 'spec.owner.user is "grace@example.com"' in denied_by_policy(handed_over)
    # An edit that leaves the owner alone is not the policy's business, whoever makes it (the operator
    # writes its annotations and finalizers as its own service account).
    labelled = teams.as_person(ADA, "label", "agentrun", "kept", "-n", teams.a, "stage=review")
    assert labelled.returncode == 0, labelled.stderr
    annotated = teams.plane.kubectl("annotate", "agentrun", "kept", "-n", teams.a, "kopf.zalando.org/x=1")
    assert annotated.returncode == 0


def test_a_namespace_without_a_team_label_takes_no_runs_even_from_the_admin(teams: Teams) -> None:
    result = teams.plane.kubectl(
        "create",
        "-n",
        teams.unlabelled,
        "-f",
        "-",
        input=json.dumps(run_of("lost", "jesus-admin", "a")),
        check=False,
    )
    assert denied_by_policy(result) == (
        f"AgentRun lost: namespace {teams.unlabelled} has no label {TEAM_LABEL}, so spec.owner.team cannot "
        "be checked and no run may be submitted there; the platform labels a team's namespace with its team"
    )


def test_a_viewer_lists_runs_and_creates_none(teams: Teams) -> None:
    assert teams.create(ADA, teams.a, run_of("seen", ADA[0], "a")).returncode == 0
    listed = teams.as_person(VERA, "get", "agentruns", "-n", teams.a, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "agentrun.jesus.dev/seen" in listed.stdout.split()
    created = teams.create(VERA, teams.a, run_of("vera-run", VERA[0], "a"))
    assert forbidden_by_rbac(created, VERA[0], "create", "agentruns", teams.a), created.stderr
    other = teams.as_person(VERA, "get", "agentruns", "-n", teams.b)
    assert forbidden_by_rbac(other, VERA[0], "list", "agentruns", teams.b), other.stderr


def test_a_gitops_applier_names_any_owner_but_only_the_namespaces_team(teams: Teams) -> None:
    # Argo CD's controller, bound as team a's submitter, applies a run a person committed to Git.
    applied = teams.create(
        ARGO, teams.a, run_of("from-git", "grace@example.com", "a"), extra_groups=(ADA[1],)
    )
    assert applied.returncode == 0, applied.stderr
    other_team = teams.create(
        ARGO, teams.a, run_of("git-b", "grace@example.com", "b"), extra_groups=(ADA[1],)
    )
    assert 'spec.owner.team is "b"' in denied_by_policy(other_team)


def test_the_roles_aggregate_and_stay_out_of_kubernetes_view(teams: Teams) -> None:
    viewer = json.loads(teams.plane.kubectl("get", "clusterrole", "jesus-viewer", "-o", "json").stdout)
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in viewer["rules"]} == {
        (("agentruns", "budgets", "routepolicies", "modeladapters", "lessons"), ("get", "list", "watch"))
    }
    view = json.loads(teams.plane.kubectl("get", "clusterrole", "view", "-o", "json").stdout)
    assert not [r for r in view.get("rules") or [] if "jesus.dev" in r.get("apiGroups", [])]


def _audit_events(plane: ControlPlane) -> list[dict[str, Any]]:
    return [json.loads(line) for line in plane.audit_log.read_text().splitlines() if line.strip()]


def test_the_audit_log_records_the_run_create_as_the_person_and_secrets_without_their_data(
    teams: Teams,
) -> None:
    name = f"audited-{uuid.uuid4().hex[:6]}"
    assert teams.create(ADA, teams.a, run_of(name, ADA[0], "a")).returncode == 0

    def creates() -> list[dict[str, Any]]:
        return [
            e
            for e in _audit_events(teams.plane)
            if e["verb"] == "create"
            and e.get("objectRef", {}).get("resource") == "agentruns"
            and e["objectRef"].get("name") == name
            and e["stage"] == "ResponseComplete"
        ]

    [event] = wait_for(creates, what=f"the audit event of AgentRun {name}'s create", timeout=10)
    assert event["level"] == "RequestResponse"
    assert event["impersonatedUser"]["username"] == ADA[0]
    assert ADA[1] in event["impersonatedUser"]["groups"]
    assert event["user"]["username"] == "jesus-admin"  # who impersonated
    assert event["objectRef"]["namespace"] == teams.a
    assert event["responseStatus"]["code"] == 201
    assert event["requestObject"]["spec"]["owner"] == {"user": ADA[0], "team": "a"}
    # A refused create is recorded too, with the policy's answer.
    teams.create(ADA, teams.a, run_of(f"{name}-x", "grace@example.com", "a"))
    refused = wait_for(
        lambda: [
            e
            for e in _audit_events(teams.plane)
            if e.get("objectRef", {}).get("name") == f"{name}-x" and e["stage"] == "ResponseComplete"
        ],
        what="the audit event of the refused create",
        timeout=10,
    )
    assert refused[0]["responseStatus"]["code"] == 403
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-key"},
        "stringData": {"apiKey": "sk-never-in-the-audit-log"},
    }
    apply(teams.plane, teams.a, secret)
    secret_events = wait_for(
        lambda: [
            e
            for e in _audit_events(teams.plane)
            if e.get("objectRef", {}).get("resource") == "secrets"
            and e["objectRef"].get("name") == f"{name}-key"
        ],
        what="the audit event of the Secret",
        timeout=10,
    )
    assert {e["level"] for e in secret_events} == {"Metadata"}
    assert "sk-never-in-the-audit-log" not in teams.plane.audit_log.read_text()
    assert Path(teams.plane.audit_log).parent == teams.plane.state_dir
