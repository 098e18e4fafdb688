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

    async def _answer(self, key: Hashable, make: Callable[[], Awaitable[A]], size: Callable[[A], int]) -> A:
        """`make`'s answer, or the one kept under `key` (asked only once the caller's access allows
        what `key` holds)."""
        if self.answers is None:
            return await make()
        return await self.answers.answer(key, make, size)

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

        async def page() -> RunList:
            found = await self.reader.list_runs(question, visible, after, size + 1)
            shown = found[:size]
            more = self.signer.make("runs", question, shown[-1].position) if len(found) > size else None
            return RunList(items=[Run.of(r) for r in shown], next_cursor=more)

        key = ("runs", question, visible, None if after is None else tuple(after), size)
        return await self._answer(key, page, lambda answer: 512 + 1024 * len(answer.items))

    async def get_run(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> RunDetail:
        """One archived run with its whole record (the newest of that name unless `uid` is given)."""
        if await self.access.may_read(who, namespace):

            async def run() -> tuple[RunDetail, int] | None:
                found = await self.reader.find_run(namespace, name, None, uid)
                if found is None:
                    return None
                return RunDetail.with_record(found.summary, found.record), found.record_chars

            answer = await self._answer(
                ("run", namespace, name, uid), run, lambda kept: 0 if kept is None else 1024 + kept[1]
            )
            if answer is not None:
                return answer[0]
        raise NotFoundError(f"no archived AgentRun {namespace}/{name}" + (f" with uid {uid}" if uid else ""))

    async def calls(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> CallList:
        """The model calls of an archived run, in order, with their fallbacks."""
        run = (await self.get_run(who, namespace, name, uid)).uid  # the caller's access checked there

        async def calls() -> CallList:
            found = await self.reader.calls(run)
            return CallList(namespace=namespace, name=name, uid=run, items=[Call.of(c) for c in found])

        return await self._answer(("calls", run), calls, lambda answer: 512 + 512 * len(answer.items))

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

        async def report() -> CostReport:
            lines = await self.reader.costs(grouping, window, visible)
            return CostReport(
                group_by=grouping.value,
                from_=window.start,
                to=window.end,
                groups=[CostGroup.of(line) for line in lines],
                total_micros=sum(line.cost_micros for line in lines),
            )

        key = ("costs", grouping, window, visible)
        return await self._answer(key, report, lambda answer: 512 + 256 * len(answer.groups))

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

        async def series() -> tuple[CostPoint, ...]:
            return tuple(await self.reader.cost_series(grouping, window, visible, asked))

        def size(points: tuple[CostPoint, ...]) -> int:
            return 512 + 128 * len(points)

        key = ("series", grouping, window, visible, asked)
        points = await self._answer(key, series, size)
        return list(points)

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
