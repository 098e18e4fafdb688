"""The five kinds as data: names, plural, short names, and a parser from a Kubernetes dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jesus.api.agentrun import AgentRun
from jesus.api.budget import Budget
from jesus.api.common import API_VERSION
from jesus.api.lesson import Lesson
from jesus.api.modeladapter import ModelAdapter
from jesus.api.routepolicy import RoutePolicy

ApiObject = AgentRun | RoutePolicy | Budget | ModelAdapter | Lesson


@dataclass(frozen=True)
class KindInfo:
    """How one kind is named in the API."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[AgentRun] | type[RoutePolicy] | type[Budget] | type[ModelAdapter] | type[Lesson]


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo("AgentRun", "agentruns", "agentrun", ("ar", "arun"), AgentRun),
        KindInfo("RoutePolicy", "routepolicies", "routepolicy", ("rp", "rpol"), RoutePolicy),
        KindInfo("Budget", "budgets", "budget", ("bgt",), Budget),
        KindInfo("ModelAdapter", "modeladapters", "modeladapter", ("ma", "madapter"), ModelAdapter),
        KindInfo("Lesson", "lessons", "lesson", ("lsn",), Lesson),
    )
}


def kind_info(kind: str) -> KindInfo:
    """The KindInfo of `kind`; KeyError names the known kinds."""
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def parse_object(body: dict[str, Any]) -> ApiObject:
    """Validate a Kubernetes dict (apiVersion, kind, metadata, spec, status) into its model.

    Raises KeyError for a foreign apiVersion or kind, pydantic.ValidationError for a bad body.
    """
    api_version = body.get("apiVersion")
    if api_version != API_VERSION:
        raise KeyError(f"apiVersion {api_version!r} is not {API_VERSION}")
    return kind_info(str(body.get("kind"))).model.model_validate(body)
