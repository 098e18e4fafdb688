"""The read API's answers, apart from HTTP: what `/v1/...` returns and what `jesus mcp`'s tools return
are the same calls on a `ReadService`, so the two cannot drift.

Every answer takes the caller; a namespace the caller may not read is indistinguishable from an empty
one (a list without its runs, NotFoundError for a run). Lists, runs, their calls and cost sums may be
answered from an `AnswerCache` (jesus.readapi.answers): asked only after the caller's access was
reviewed, under a key that holds what the caller may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from jesus.api.objects import JsonObject
from jesus.logic.run_queries import (
    CursorSigner,
    GroupBy,
    QueryError,
    RunFilter,
    TimeRange,
    parse_audit_filter,
    parse_group_by,
    parse_limit,
    parse_run_filter,
    parse_time_range,
)
from jesus.readapi.access import Caller, NamespaceAccess
from jesus.readapi.answers import AnswerCache
from jesus.readapi.bodies import cost_report_body, run_detail_body, run_list_body
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
from jesus.records.reader import ArchiveReader, CostLine, CostPoint, FoundRun, RunSummary, Visible

A = TypeVar("A")

BudgetSource = Callable[[], Awaitable[list[JsonObject]]]
"""Every Budget object (the cluster's, or the spec files' in local mode)."""


@dataclass(frozen=True)
class _PageAsked:
    """A page asked for, checked: what it is kept under (the caller's namespaces included)."""

    question: RunFilter
    visible: Visible
    after: tuple[object, ...] | None
    size: int

    @property
    def key(self) -> tuple[Hashable, ...]:
        visible = None if self.visible is None else frozenset(self.visible)
        return (self.question, visible, self.after, self.size)


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
        asked = await self._page_asked(
            who, namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end,
            limit=limit, cursor=cursor, search=search,
        )  # fmt: skip

        async def page() -> RunList:
            shown, more = await self._page(asked)
            return RunList(items=[Run.of(r) for r in shown], next_cursor=more)

        return await self._answer(("runs", *asked.key), page, lambda answer: 512 + 1024 * len(answer.items))

    async def list_runs_body(
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
    ) -> bytes:
        """`list_runs`'s answer as the JSON of a `RunList` (kept as such: a kept page is not written
        again)."""
        asked = await self._page_asked(
            who, namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end,
            limit=limit, cursor=cursor, search=None,
        )  # fmt: skip

        async def page() -> bytes:
            return run_list_body(*await self._page(asked))

        return await self._answer(("runs-json", *asked.key), page, len)

    async def _page_asked(
        self,
        who: Caller,
        *,
        namespace: str | None,
        team: str | None,
        user: str | None,
        phase: str | None,
        model: str | None,
        start: str | None,
        end: str | None,
        limit: int | str | None,
        cursor: str | None,
        search: str | None,
    ) -> _PageAsked:
        question = parse_run_filter(
            namespace=namespace, team=team, user=user, phase=phase, model=model, start=start, end=end,
            search=search,
        )  # fmt: skip
        size = parse_limit(limit)
        after = self.signer.read("runs", question, cursor)
        if after is not None and (len(after) != 2 or not all(isinstance(x, str | None) for x in after)):
            raise QueryError("cursor", "holds no run position")
        visible = await self._visible(who, question.namespace)
        return _PageAsked(question, visible, None if after is None else tuple(after), size)

    async def _page(self, asked: _PageAsked) -> tuple[list[RunSummary], str | None]:
        """The page's runs and the cursor after them (None on the last page)."""
        found = await self.reader.list_runs(asked.question, asked.visible, asked.after, asked.size + 1)
        shown = found[: asked.size]
        more = None
        if len(found) > asked.size:
            more = self.signer.make("runs", asked.question, shown[-1].position)
        return shown, more

    async def get_run(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> RunDetail:
        """One archived run with its whole record (the newest of that name unless `uid` is given)."""
        found = await self._found_run(who, namespace, name, uid)
        return RunDetail.with_record(found.summary, found.record)

    async def get_run_body(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> bytes:
        """`get_run`'s answer as the JSON of a `RunDetail`, the record as the archive holds it."""
        found = await self._found_run(who, namespace, name, uid)
        return run_detail_body(found.summary, found.record_json)

    async def _found_run(self, who: Caller, namespace: str, name: str, uid: str | None) -> FoundRun:
        if await self.access.may_read(who, namespace):

            async def run() -> FoundRun | None:
                return await self.reader.find_run(namespace, name, None, uid)

            def size(kept: FoundRun | None) -> int:
                return 0 if kept is None else 1024 + kept.record_chars

            answer = await self._answer(("run", namespace, name, uid), run, size)
            if answer is not None:
                return answer
        raise NotFoundError(f"no archived AgentRun {namespace}/{name}" + (f" with uid {uid}" if uid else ""))

    async def calls(self, who: Caller, namespace: str, name: str, uid: str | None = None) -> CallList:
        """The model calls of an archived run, in order, with their fallbacks."""
        run = (await self._found_run(who, namespace, name, uid)).summary.uid  # the caller's access checked

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
        grouping, window, lines = await self._cost_lines(who, group_by, namespace, start, end)
        return CostReport(
            group_by=grouping.value,
            from_=window.start,
            to=window.end,
            groups=[CostGroup.of(line) for line in lines],
            total_micros=sum(line.cost_micros for line in lines),
        )

    async def costs_body(
        self,
        who: Caller,
        *,
        group_by: str | None,
        namespace: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> bytes:
        """`costs`' answer as the JSON of a `CostReport`."""
        grouping, window, lines = await self._cost_lines(who, group_by, namespace, start, end)
        return cost_report_body(grouping.value, window.start, window.end, lines)

    async def _cost_lines(
        self, who: Caller, group_by: str | None, namespace: str | None, start: str | None, end: str | None
    ) -> tuple[GroupBy, TimeRange, tuple[CostLine, ...]]:
        grouping = parse_group_by(group_by)
        window = parse_time_range(start, end)
        asked = parse_run_filter(namespace=namespace).namespace
        visible = await self._visible(who, asked)

        async def lines() -> tuple[CostLine, ...]:
            return tuple(await self.reader.costs(grouping, window, visible))

        key = ("costs", grouping, window, visible)
        return grouping, window, await self._answer(key, lines, lambda found: 512 + 256 * len(found))

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
