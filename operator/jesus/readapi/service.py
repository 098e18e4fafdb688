"""The read API's answers, apart from HTTP: what `/v1/...` returns and what `jesus mcp`'s tools return
are the same calls on a `ReadService`, so the two cannot drift.

Every answer takes the caller; a namespace the caller may not read is indistinguishable from an empty
one (a list without its runs, NotFoundError for a run). Lists, runs, their calls and cost sums may be
answered from an `AnswerCache` (jesus.readapi.answers): asked only after the caller's access was
reviewed, under a key that holds what the caller may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from jesus.api.objects import JsonObject
from jesus.logic.run_queries import (
    CursorSigner,
    QueryError,
    parse_audit_filter,
    parse_group_by,
    parse_limit,
    parse_run_filter,
    parse_time_range,
)
from jesus.readapi.access import Caller, NamespaceAccess
from jesus.readapi.answers import AnswerCache
from jesus.readapi.models import (
    AuditItem,
    AuditList,
    BudgetItem,
    BudgetList,
    Call,
    CallList,
    CostGroup,
    CostReport,
    Run,
    RunDetail,
    RunList,
)
from jesus.records.reader import ArchiveReader, CostPoint

A = TypeVar("A")

BudgetSource = Callable[[], Awaitable[list[JsonObject]]]
"""Every Budget object (the cluster's, or the spec files' in local mode)."""


class NotFoundError(Exception):
    """The thing asked for is not there, or not for this caller (the same answer)."""


class ReadService:
    """The archive, the Budgets and the audit log as one caller may see them."""

    def __init__(
        self,
        reader: ArchiveReader,
        access: NamespaceAccess,
        signer: CursorSigner,
        budgets: BudgetSource,
        answers: AnswerCache | None = None,
    ) -> None:
        self.reader, self.access, self.signer, self.budgets = reader, access, signer, budgets
        self.answers = answers

    def _kept(self, key: Hashable, kind: type[A]) -> A | None:
        found = self.answers.get(key) if self.answers is not None else None
        return found if isinstance(found, kind) else None

    def _keep(self, key: Hashable, answer: object, size: int) -> None:
        if self.answers is not None:
            self.answers.put(key, answer, size)

    async def _visible(self, who: Caller, namespace: str | None) -> frozenset[str] | None:
        """What `who` may read: the one namespace asked for (or none), else every one they may."""
        if namespace is not None:
            return frozenset({namespace}) if await self.access.may_read(who, namespace) else frozenset()
        return await self.access.visible(who)

    async def list_runs(
        self,
        who: Caller,
        *,
        namespace: str | None = None,
        team: str | None = None,
        user: str | None = None,
        phase: str | None = None,
        model: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | str | None = None,
        cursor: str | None = None,
        search: str | None = None,
    ) -> RunList:
        """Archived runs, newest first, one page at a time (`search`: a part of the name)."""
        question = parse_run_filter(
            namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end,
            search=search,
        )  # fmt: skip
        size = parse_limit(limit)
        after = self.signer.read("runs", question, cursor)
        if after is not None and (len(after) != 2 or not all(isinstance(x, str | None) for x in after)):
            raise QueryError("cursor", "holds no run position")
        visible = await self._visible(who, question.namespace)
        key = ("runs", question, visible, None if after is None else tuple(after), size)
        kept = self._kept(key, RunList)
        if kept is not None:
            return kept
        found = await self.reader.list_runs(question, visible, after, size + 1)
        page = found[:size]
        more = self.signer.make("runs", question, page[-1].position) if len(found) > size else None
        answer = RunList(items=[Run.of(r) for r in page], next_cursor=more)
        self._keep(key, answer, 512 + 1024 * len(page))
        return answer

    async def get_run(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> RunDetail:
        """One archived run with its whole record (the newest of that name unless `uid` is given)."""
        if await self.access.may_read(who, namespace):
            key = ("run", namespace, name, uid)
            kept = self._kept(key, RunDetail)
            if kept is not None:
                return kept
            found = await self.reader.find_run(namespace, name, None, uid)
            if found is not None:
                answer = RunDetail(**Run.of(found.summary).model_dump(), record=found.record)
                self._keep(key, answer, 1024 + found.record_chars)
                return answer
        raise NotFoundError(f"no archived AgentRun {namespace}/{name}" + (f" with uid {uid}" if uid else ""))

    async def calls(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> CallList:
        """The model calls of an archived run, in order, with their fallbacks."""
        run = (await self.get_run(who, namespace, name, uid)).uid  # the caller's access checked there
        key = ("calls", run)
        kept = self._kept(key, CallList)
        if kept is not None:
            return kept
        calls = await self.reader.calls(run)
        answer = CallList(namespace=namespace, name=name, uid=run, items=[Call.of(c) for c in calls])
        self._keep(key, answer, 512 + 512 * len(calls))
        return answer

    async def costs(
        self,
        who: Caller,
        *,
        group_by: str | None,
        namespace: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> CostReport:
        """Spend of the runs completed in [start, end), summed per team, user, model or adapter."""
        grouping = parse_group_by(group_by)
        window = parse_time_range(start, end)
        asked = parse_run_filter(namespace=namespace).namespace
        visible = await self._visible(who, asked)
        key = ("costs", grouping, window, visible)
        kept = self._kept(key, CostReport)
        if kept is not None:
            return kept
        lines = await self.reader.costs(grouping, window, visible)
        answer = CostReport(
            group_by=grouping.value,
            from_=window.start,
            to=window.end,
            groups=[CostGroup.of(line) for line in lines],
            total_micros=sum(line.cost_micros for line in lines),
        )
        self._keep(key, answer, 512 + 256 * len(lines))
        return answer

    async def cost_series(
        self,
        who: Caller,
        *,
        group_by: str | None,
        namespace: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> list[CostPoint]:
        """Spend per day and group of the runs completed in [start, end) (the dashboard's chart)."""
        grouping = parse_group_by(group_by)
        window = parse_time_range(start, end)
        asked = parse_run_filter(namespace=namespace).namespace
        visible = await self._visible(who, asked)
        key = ("series", grouping, window, visible, asked)
        kept = self._kept(key, tuple)
        if kept is not None:
            return list(kept)
        points = await self.reader.cost_series(grouping, window, visible, asked)
        self._keep(key, tuple(points), 512 + 128 * len(points))
        return points

    async def list_budgets(self, who: Caller, namespace: str | None = None) -> BudgetList:
        """The Budgets of the namespaces the caller may read, with their spec and status."""
        asked = parse_run_filter(namespace=namespace).namespace
        items = []
        for budget in await self.budgets():
            metadata = budget.get("metadata") or {}
            where = str(metadata.get("namespace") or "")
            if asked is not None and where != asked:
                continue
            if not await self.access.may_read(who, where):
                continue
            items.append(
                BudgetItem(
                    namespace=where,
                    name=str(metadata.get("name") or ""),
                    spec=budget.get("spec") or {},
                    status=budget.get("status") or {},
                )
            )
        items.sort(key=lambda b: (b.namespace, b.name))
        return BudgetList(items=items)

    async def audit(
        self,
        who: Caller,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        action: str | None = None,
        limit: int | str | None = None,
        cursor: str | None = None,
    ) -> AuditList:
        """Audit log rows, oldest first, with their hashes."""
        question = parse_audit_filter(namespace=namespace, run_uid=uid, action=action)
        size = parse_limit(limit)
        after = self.signer.read("audit", question, cursor)
        if after is not None and (len(after) != 1 or type(after[0]) is not int):
            raise QueryError("cursor", "holds no audit row position")
        visible = await self._visible(who, question.namespace)
        found = await self.reader.audit(question, visible, after[0] if after else None, size + 1)
        page = found[:size]
        more = self.signer.make("audit", question, [page[-1].id]) if len(found) > size else None
        return AuditList(items=[AuditItem.of(e) for e in page], next_cursor=more)
