"""Secrets, contact details and site patterns in plain strings: each becomes `[REDACTED:<kind>]`."""

from __future__ import annotations

import pytest

from jesus.redaction import PresidioRedactor, RedactionConfig, RedactionConfigError, SitePattern

KEY_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop"


@pytest.mark.parametrize(
    ("text", "kind", "kept"),
    [
        ("key sk-proj-abcdefghijklmnopqrstuvwx1234 here", "openai-key", "key "),
        ("\nsk-proj-abcdefghijklmnopqrstuvwx1234", "openai-key", "\n"),
        ("use sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "anthropic-key", "use "),
        ("AKIAIOSFODNN7EXAMPLE is the id", "aws-access-key", " is the id"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws-secret-key", "= "),
        ("token ghp_" + "a" * 36, "github-token", "token "),
        ("glpat-abcdefghij0123456789", "gitlab-token", ""),
        ("xoxb-1234567890-abcdefghij", "slack-token", ""),
        ("AIza" + "B" * 35, "google-api-key", ""),
        ("ya29.a0AfH6SMBabcdefghijklmnopqrstu", "google-oauth-token", ""),
        ("sk_live_" + "c" * 24, "stripe-key", ""),
        (f"jwt {JWT}", "jwt", "jwt "),
        (f"(\n{JWT})", "jwt", ")"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", "bearer-token", "Authorization: Bearer "),
        ("postgres://admin:s3cretpw@db:5432/app", "url-password", "postgres://admin:"),
        ('{"api_key": "Zx81kLmQ0pW2"}', "secret", '{"api_key": "'),
        (f"before\n{KEY_BLOCK}\nafter", "private-key", "after"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", "private-key", ""),
        ("write to ada.lovelace@example.com today", "email", "today"),
        ("ada.lovelace@example.com\nis the owner", "email", "is the owner"),
        ("Call +44 20 7946 0958 after lunch", "phone", "after lunch"),
        ("call (415) 555-0132", "phone", "call "),
        ("card 4111 1111 1111 1111 on file", "card-number", "on file"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "iban", "IBAN "),
        ("she lives at 12 Baker Street, London NW1 6XE.", "address", "she lives at "),
        ("Please forward it to Ada Lovelace today.", "person", "today."),
    ],
)
def test_findings_are_replaced_by_a_marker(
    redactor: PresidioRedactor, text: str, kind: str, kept: str
) -> None:
    redacted = redactor(text)
    assert f"[REDACTED:{kind}]" in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "plain prose with no secrets",
        "sk-short",
        "the task costs 3.00 USD",
        "path/to/file.py:12",
        "a@b",
        "task-abcdefghijklmnopqrstuvwxyz is a job name",
        "max_tokens: 4096",
        "card 4111 1111 1111 1112 fails the checksum",
        "",
    ],
)
def test_ordinary_text_is_left_alone(redactor: PresidioRedactor, text: str) -> None:
    assert redactor(text) == text


def test_findings_carry_their_kind_and_place(redactor: PresidioRedactor) -> None:
    text = "mail ada@example.com"
    [finding] = redactor.analyze(text)
    assert (finding.kind, text[finding.start : finding.end]) == ("email", "ada@example.com")


def test_site_patterns_from_the_environment_are_redacted() -> None:
    config = RedactionConfig.from_environ({"JESUS_REDACTION_PATTERNS": '{"employee-id": "EMP-[0-9]{6}"}'})
    assert config.site_patterns == (SitePattern("employee-id", "EMP-[0-9]{6}"),)
    assert config.redactor()("ticket for EMP-123456 closed") == "ticket for [REDACTED:employee-id] closed"


def test_names_can_be_turned_off_for_a_patterns_only_redactor() -> None:
    redact = RedactionConfig.from_environ({"JESUS_REDACTION_NAMES": "false"}).redactor()
    assert redact("Ada Lovelace (ada@example.com) is away") == "Ada Lovelace ([REDACTED:email]) is away"


@pytest.mark.parametrize(
    ("environ", "names_default", "names"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"JESUS_REDACTION_NAMES": "true"}, False, True),
        ({"JESUS_REDACTION_NAMES": "off"}, True, False),
        ({"JESUS_REDACTION_NAMES": " "}, False, False),
    ],
)
def test_a_component_chooses_the_default_of_the_names_stage(
    environ: dict[str, str], names_default: bool, names: bool
) -> None:
    config = RedactionConfig.from_environ(environ, names_default=names_default)
    assert config.names is names
    assert config.patterns_only().names is False
    assert config.patterns_only().site_patterns == config.site_patterns


def test_the_platform_name_and_allowed_words_are_never_redacted(redactor: PresidioRedactor) -> None:
    assert (
        redactor("Hello from Jesus! The task was: say hello.") == "Hello from Jesus! The task was: say hello."
    )
    redact = RedactionConfig.from_environ({"JESUS_REDACTION_ALLOW": "Grace Hopper, x"}).redactor()
    assert redact("Dear Grace Hopper, thanks") == "Dear Grace Hopper, thanks"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "JSON object"),
        ("{not json", "JESUS_REDACTION_PATTERNS"),
        ('{"bad": "(unclosed"}', "JESUS_REDACTION_PATTERNS"),
        ('{"Bad Kind": "x"}', "must be lower-case"),
    ],
)
def test_a_bad_site_configuration_is_refused_with_the_variable(value: str, message: str) -> None:
    with pytest.raises(RedactionConfigError, match="JESUS_REDACTION_PATTERNS") as caught:
        RedactionConfig.from_environ({"JESUS_REDACTION_PATTERNS": value})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call +1 212-555-0142 now", "+1 212-555-0142"),
        ("US (415) 555-0123.", "(415) 555-0123"),
        ("London 020 7946 0958, ask at the desk", "020 7946 0958"),  # a UK number without +
        ("Berlin +49 30 1234567", "+49 30 1234567"),
        ("dots: 1.212.555.0142", "1.212.555.0142"),
    ],
)
def test_phone_numbers_are_found_in_each_region(redactor: PresidioRedactor, text: str, phone: str) -> None:
    assert [(f.kind, text[f.start : f.end]) for f in redactor.analyze(text)] == [("phone", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "at 2026-12-02 10:38:47 UTC",
        "on 12/02/2026 09 sharp",
        "build 1.2.3456789 released",
        "v10.12.3456789",
        "order id 12345678901234",
    ],
)
def test_dates_versions_and_ids_are_not_phone_numbers(redactor: PresidioRedactor, text: str) -> None:
    assert [f.kind for f in redactor.analyze(text)] == []


def test_many_texts_at_once_are_redacted_as_each_alone(redactor: PresidioRedactor) -> None:
    texts = [
        "Dear Ada Lovelace, your key sk-ant-api03-" + "a" * 48 + " expired",
        "",
        "nothing here",
        "Grace Hopper wrote from grace@example.com",
        "Dear Ada Lovelace, your key sk-ant-api03-" + "a" * 48 + " expired",
    ]
    together = redactor.redact_many(texts)
    assert together == [redactor(text) for text in texts]
    assert "[REDACTED:person]" in together[3] and "[REDACTED:anthropic-key]" in together[0]


def test_spacy_forgets_the_words_it_read_so_a_long_lived_process_does_not_grow(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jesus.redaction import engines

    monkeypatch.setattr(engines._ZONE, "renew_after", 2)
    redactor("Dear Ada Lovelace, hello")  # the model is loaded
    strings = engines.spacy_pipeline(engines.name_analyzer()).vocab.strings

    def read(word: str) -> None:
        assert "[REDACTED:person]" in redactor(f"Dear Grace Hopper, the build {word} finished")

    for word in ("Zqxvfirstwlk", "Zqxvsecondwlk", "Zqxvthirdwlk", "Zqxvfourthwlk"):
        read(word)
    # The zone was renewed after two batches: the words read before it are gone, the last ones kept.
    assert "Zqxvfirstwlk" not in strings and "Zqxvsecondwlk" not in strings
    assert "Zqxvfourthwlk" in strings
