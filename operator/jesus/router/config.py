"""From ModelAdapter objects to the adapters the router calls: prices, credentials, dry runs.

Credentials are resolved here, in the router, and nowhere else: from the environment for local runs,
from mounted Secret files in the router's pod. Without `live`, every adapter of a real provider is
replaced by a dry-run scripted one that answers with a placeholder and is priced like the real model.
Every adapter is wrapped in a `RedactingAdapter`: its failures' text is redacted (its own credential
removed literally), and prompts to a live adapter that may not receive personal data are redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from jesus.api.modeladapter import ModelAdapter, Provider, ScriptedReply
from jesus.logic.allowance import CallPrice
from jesus.logic.routing import RateLimit
from jesus.redaction import Redactor, default_redactor
from jesus.router.redacting import RedactingAdapter
from jesus.router.routed import RoutedAdapter
from jesus_adapters import AdapterConfig, AdapterConfigError, build_adapter
from jesus_adapters.base import ModelAdapter as Adapter
from jesus_adapters.types import ChatResponse, Price, ScriptedFailure, ScriptedTurn, ToolCall, Usage

# The variables the providers' own SDKs read, tried after the Secret-derived name.
PROVIDER_KEY_VARIABLES: Mapping[str, str] = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class RouterConfigError(Exception):
    """A ModelAdapter the router cannot build an adapter for; the message names it and why."""


class CredentialSource(Protocol):
    """Where the router finds the value of a Secret key."""

    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        """The credential, or None when this source does not have it."""
        ...


def secret_variable(secret: str, key: str) -> str:
    """The environment variable that carries a Secret key locally (openai-key, apiKey: OPENAI_KEY_APIKEY)."""
    return re.sub(r"[^A-Z0-9]", "_", f"{secret}_{key}".upper())


@dataclass(frozen=True)
class EnvironmentCredentials:
    """Credentials from environment variables: the Secret-derived name, else the provider's usual one."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        """See `secret_variable` and `PROVIDER_KEY_VARIABLES`."""
        value = self.environ.get(secret_variable(secret, key))
        if not value and provider in PROVIDER_KEY_VARIABLES:
            value = self.environ.get(PROVIDER_KEY_VARIABLES[provider])
        return value or None


@dataclass(frozen=True)
class MountedSecretCredentials:
    """Credentials from Secrets mounted as files: `<root>/<namespace>/<secret>/<key>`."""

    root: Path

    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        """The file's content without surrounding whitespace."""
        path = self.root / namespace / secret / key
        try:
            return path.read_text().strip() or None
        except OSError:
            return None


@dataclass(frozen=True)
class FirstOf:
    """Tries several credential sources in order."""

    sources: tuple[CredentialSource, ...]

    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        """The first source's answer that is not None."""
        for source in self.sources:
            value = source.lookup(namespace, secret, key, provider)
            if value is not None:
                return value
        return None


@dataclass(frozen=True)
class BuiltAdapters:
    """The router's adapters by ModelAdapter name, and which of them are dry-run stand-ins."""

    adapters: dict[str, RoutedAdapter]
    dry_run: tuple[str, ...]


def call_price(adapter: ModelAdapter) -> CallPrice:
    """The ModelAdapter's prices in micro-units per million tokens."""
    pricing = adapter.spec.pricing
    return CallPrice(pricing.input_micros_per_million, pricing.output_micros_per_million)


def rate_limit(adapter: ModelAdapter) -> RateLimit | None:
    """The ModelAdapter's client-side rate limits, None when it sets none."""
    limits = adapter.spec.limits
    if limits is None or (limits.requests_per_minute is None and limits.tokens_per_minute is None):
        return None
    return RateLimit(limits.requests_per_minute, limits.tokens_per_minute)


def build_routed_adapters(
    adapters: Mapping[str, ModelAdapter],
    *,
    live: bool,
    credentials: CredentialSource,
    namespace: str = "default",
    redact: Redactor | None = None,
) -> BuiltAdapters:
    """Build an adapter for every ModelAdapter; RouterConfigError names the first that cannot be built.

    `redact` (default: the process's `default_redactor`) cleans failures' text and, where an adapter
    may not receive personal data, its prompts.
    """
    redactor = redact or default_redactor()
    built: dict[str, RoutedAdapter] = {}
    dry_run: list[str] = []
    for name, spec_object in adapters.items():
        spec = spec_object.spec
        price = call_price(spec_object)
        sdk_price = Price(price.input_micros_per_mtok, price.output_micros_per_mtok)
        api_key = None
        if spec.provider is Provider.SCRIPTED:
            replies = spec.scripted.replies if spec.scripted is not None else []
            adapter = _scripted(spec.model, replies, sdk_price)
        elif not live:
            adapter = _dry_run(spec.provider.value, spec.model, sdk_price)
            dry_run.append(name)
        else:
            adapter, api_key = _live(name, spec_object, sdk_price, credentials, namespace)
        guarded = RedactingAdapter(
            adapter,
            redactor,
            credentials=(api_key,) if api_key else (),
            # A dry run or a script sends nothing anywhere: nothing to redact on the way out.
            redact_prompts=live and not spec.receives_personal_data,
        )
        built[name] = RoutedAdapter(name, guarded, price, rate_limit(spec_object))
    return BuiltAdapters(built, tuple(dry_run))


def _live(
    name: str, adapter: ModelAdapter, price: Price, credentials: CredentialSource, namespace: str
) -> tuple[Adapter, str | None]:
    spec = adapter.spec
    api_key = None
    if spec.credentials_secret_ref is not None:
        ref = spec.credentials_secret_ref
        api_key = credentials.lookup(namespace, ref.name, ref.key, spec.provider.value)
        if api_key is None:
            raise RouterConfigError(
                f"ModelAdapter {name}: no credential for Secret {ref.name} key {ref.key}; locally, set "
                f"{secret_variable(ref.name, ref.key)}"
                + (
                    f" or {PROVIDER_KEY_VARIABLES[spec.provider.value]}"
                    if spec.provider.value in PROVIDER_KEY_VARIABLES
                    else ""
                )
            )
    endpoint = spec.endpoint or (adapter.status.endpoint if adapter.status is not None else None)
    config = AdapterConfig(
        provider=spec.provider.value, model=spec.model, base_url=endpoint, api_key=api_key, price=price
    )
    try:
        return build_adapter(config), api_key
    except AdapterConfigError as exc:
        raise RouterConfigError(f"ModelAdapter {name}: {exc}") from exc


def _dry_run(provider: str, model: str, price: Price) -> Adapter:
    text = f"(dry run: {provider} model {model} was not called; run with --live to call it)"
    reply = ChatResponse(text, (), "stop", Usage(), model, "scripted")
    # Cycled, so a dry run never runs out of replies however many calls its runs make.
    config = AdapterConfig(
        provider="scripted", model=model, price=price, scripted_replies=(reply,), scripted_cycle=True
    )
    return build_adapter(config)


def _scripted_turn(index: int, reply: ScriptedReply, model: str) -> ScriptedTurn:
    """One scripted reply of a ModelAdapter spec as the scripted adapter plays it."""
    if reply.error is not None:
        return ScriptedFailure(reply.error.error_class.value, reply.error.message)
    calls = tuple(
        ToolCall(id=f"call-{index}-{position}", name=call.name, arguments=dict(call.arguments))
        for position, call in enumerate(reply.tool_calls or [])
    )
    usage = Usage(reply.usage.input_tokens, reply.usage.output_tokens) if reply.usage else Usage()
    return ChatResponse(reply.text or "", calls, "tool_calls" if calls else "stop", usage, model, "scripted")


def _scripted(model: str, replies: list[ScriptedReply], price: Price) -> Adapter:
    turns = tuple(_scripted_turn(index, reply, model) for index, reply in enumerate(replies))
    return build_adapter(AdapterConfig(provider="scripted", model=model, price=price, scripted_replies=turns))
