"""A synthetic redaction corpus, generated from a seed: prompts, transcripts and tool outputs with planted
names, e-mails, phones, card numbers, IBANs, addresses, API keys and JWTs, and where each one sits.

Nothing is downloaded: names, streets and templates are small lists here, card numbers get a valid Luhn
digit, IBANs a valid check sum, keys random bodies in each provider's format. The quality test and the
benchmark both use it.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass, field

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Barbara",
    "Katherine",
    "Dennis",
    "Ken",
    "Guido",
    "Bjarne",
    "Anita",
    "Radia",
    "Frances",
    "Hedy",
    "Tim",
    "Vint",
    "Sophie",
    "Oliver",
    "Amelia",
    "Harry",
    "Isla",
    "Noah",
    "Priya",
    "Arjun",
    "Mei",
    "Hiroshi",
    "Fatima",
    "Omar",
    "Lucia",
    "Mateo",
    "Ingrid",
    "Lars",
    "Chloe",
    "Jakub",
    "Zofia",
    "Aisha",
    "Kwame",
    "Elena",
    "Dmitri",
    "Sven",
    "Astrid",
    "Rafael",
    "Camila",
    "Yusuf",
    "Leila",
    "Jonas",
    "Clara",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Liskov",
    "Johnson",
    "Ritchie",
    "Thompson",
    "Rossum",
    "Stroustrup",
    "Borg",
    "Perlman",
    "Allen",
    "Lamarr",
    "Berners-Lee",
    "Cerf",
    "Martin",
    "Garcia",
    "Okafor",
    "Nakamura",
    "Patel",
    "Sharma",
    "Chen",
    "Tanaka",
    "Haddad",
    "Rossi",
    "Fernandez",
    "Lindqvist",
    "Kowalski",
    "Novak",
    "Mensah",
    "Petrova",
    "Ivanov",
    "Andersen",
    "Schmidt",
    "Dubois",
    "Moreau",
    "Silva",
    "Costa",
    "Yilmaz",
    "Rahman",
    "Keller",
    "Fischer",
    "Weber",
    "Jensen",
    "Murphy",
    "Kelly",
]
STREETS = [
    "Baker",
    "Elm",
    "Maple",
    "Oak",
    "Pine",
    "High",
    "Church",
    "Mill",
    "Station",
    "Victoria",
    "Park",
    "Cedar",
    "Willow",
]
STREET_TYPES = ["Street", "Road", "Avenue", "Lane", "Drive", "Way", "Place", "Court", "Terrace", "Boulevard"]
CITIES = [
    "London",
    "Manchester",
    "Springfield",
    "Portland",
    "Boston",
    "Dublin",
    "Leeds",
    "Austin",
    "Denver",
    "Bristol",
]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.co.uk", "acme.io"]
IBAN_COUNTRIES = {"GB": 18, "DE": 18, "FR": 23, "NL": 14, "ES": 20, "IE": 18}

SECRET_KINDS = (
    "anthropic-key",
    "openai-key",
    "aws-access-key",
    "github-token",
    "slack-token",
    "jwt",
    "private-key",
    "bearer-token",
    "google-api-key",
)
STRUCTURED_KINDS = ("email", "phone", "card-number", "iban", "address")
NAME_KINDS = ("person",)


@dataclass(frozen=True, slots=True)
class Planted:
    """One planted entity: its kind and where it sits in the document."""

    kind: str
    start: int
    end: int
    text: str


@dataclass(slots=True)
class Document:
    """A generated text and what was planted in it."""

    text: str = ""
    planted: list[Planted] = field(default_factory=list)

    def add(self, piece: str, kind: str | None = None) -> None:
        """Append `piece`; when `kind` is given, record it as planted."""
        if kind is not None:
            self.planted.append(Planted(kind, len(self.text), len(self.text) + len(piece), piece))
        self.text += piece


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits + "0")):
        n = int(d)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return digits + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_COUNTRIES))
    bban = "".join(rng.choice(string.digits) for _ in range(IBAN_COUNTRIES[country]))
    if country in ("GB", "IE", "NL"):  # a bank code of four letters first
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + bban[4:]
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _token(rng: random.Random, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def make_value(kind: str, rng: random.Random) -> str:
    """A realistic value of `kind`."""
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    values = {
        "person": name,
        "email": f"{name.lower().replace(' ', rng.choice('._'))}@{rng.choice(DOMAINS)}",
        "phone": rng.choice(
            [
                f"+44 20 7946 {rng.randint(0, 9999):04d}",
                f"(415) 555-{rng.randint(100, 199):04d}",
                f"+1 212-555-{rng.randint(100, 199):04d}",
                f"+49 30 {rng.randint(1000000, 9999999)}",
                f"020 7946 {rng.randint(0, 9999):04d}",
            ]
        ),
        "card-number": _card(rng),
        "iban": _iban(rng),
        "address": f"{rng.randint(1, 999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}, "
        f"{rng.choice(CITIES)}",
        "anthropic-key": "sk-ant-api03-" + _token(rng, 48, string.ascii_letters + string.digits + "_-"),
        "openai-key": rng.choice(["sk-proj-", "sk-"]) + _token(rng, 40),
        "aws-access-key": "AKIA" + _token(rng, 16, string.ascii_uppercase + string.digits),
        "github-token": "ghp_" + _token(rng, 36),
        "slack-token": f"xoxb-{rng.randint(10**9, 10**10)}-{_token(rng, 24).lower()}",
        "google-api-key": "AIza" + _token(rng, 35),
        "jwt": f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': str(rng.randint(1, 10**6))})}."
        + _token(rng, 43, string.ascii_letters + string.digits + "_-"),
        "bearer-token": _token(rng, 40),
        "private-key": "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(_token(rng, 64) for _ in range(3))
        + "\n-----END RSA PRIVATE KEY-----",
    }
    return values[kind]


def _card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "55", "37"])
    length = 15 if prefix == "37" else 16
    digits = _luhn_complete(
        prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    )
    if rng.random() < 0.5 and length == 16:
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    return digits


# Templates: `{kind}` is a planted entity; the text around it is what prompts, transcripts and tool
# outputs look like. `{n}` is a harmless number, to tempt the number recognizers.
TEMPLATES = (
    "Please draft a reply to {person} about the renewal; cc {email}.",
    "Customer {person} called from {phone} asking why card {card-number} was charged twice.",
    "Refund to IBAN {iban} for {person}, order #{n}.",
    "Ship the replacement to {address} and text {phone} when it leaves.",
    "{person} wrote: the staging deploy failed again, can you look? Reach me at {email}.",
    'Tool output:\n{{"status": "ok", "owner": "{email}", "retries": {n}}}',
    "export ANTHROPIC_API_KEY={anthropic-key}\nexport OTHER=1",
    'The config had OPENAI_API_KEY="{openai-key}" in plain text at line {n}.',
    "curl -H 'Authorization: Bearer {bearer-token}' https://api.example.com/v1/items",
    "aws configure set aws_access_key_id {aws-access-key}",
    "{github-token}\nwas found in .git/config",
    "Slack bot token {slack-token} posted in #ops by {person}.",
    "Session cookie: {jwt}",
    "key file contents:\n{private-key}\nend of file",
    "maps key {google-api-key} was committed by {person}",
    "Meeting notes: {person} and {person} agreed to move the launch; {person} will confirm by Friday.",
    "assistant: I looked up the account. The holder is {person}, billing address {address}.",
    "error: upstream returned 401 for key {openai-key}\n{email}\nretry {n} of 3",
    "Dear {person},\nyour payment with card ending {n} failed. Card on file: {card-number}.",
    "Transfer {n} EUR from {iban} to {iban} as {person} requested.",
    "{email}\n{phone}\n{address}",
    "Hi {person}, the report for job {n} is attached. Call me on {phone} if anything is unclear.",
)

# Text with nothing to redact: what most of a transcript is.
CLEAN = (
    "The deployment finished in 42 seconds; all 12 pods are ready and the health check passes.",
    "def retry(fn, attempts=3):\n    for i in range(attempts):\n        try:\n            return fn()\n"
    "        except TimeoutError:\n            continue\n",
    '{"status": "ok", "items": [1, 2, 3], "next": null, "elapsed_ms": 118.5}',
    "2026-03-01T12:00:00Z INFO request handled path=/v1/chat status=200 duration_ms=87",
    "the task costs 3.00 USD and used 1200 input tokens and 340 output tokens",
    "Summary: the cache hit rate went from 71% to 93% after the index change; latency p95 is 210 ms.",
    "error: the config map is missing the key `replicas`; set it and run the job again.",
    "Step 3 of 7: compile the module, then run the unit tests with -x and report failures.",
)


def generate(seed: int, documents: int) -> list[Document]:
    """`documents` generated texts, the same for the same seed."""
    rng = random.Random(seed)
    result = []
    for _ in range(documents):
        document = Document()
        for part in _parts(rng.choice(TEMPLATES)):
            if part.startswith("{") and part.endswith("}") and part[1:-1] in _KINDS:
                document.add(make_value(part[1:-1], rng), part[1:-1])
            elif part == "{n}":
                document.add(str(rng.randint(2, 9999)))
            else:
                document.add(part.replace("{{", "{").replace("}}", "}"))
        if rng.random() < 0.5:
            document.add("\n" + rng.choice(CLEAN))
        result.append(document)
    return result


_KINDS = frozenset(SECRET_KINDS + STRUCTURED_KINDS + NAME_KINDS)


def _parts(template: str) -> list[str]:
    """`template` split into literal text and `{placeholder}`s (a doubled brace is literal)."""
    parts, current, i = [], "", 0
    while i < len(template):
        if template.startswith(("{{", "}}"), i):
            current += template[i : i + 2]
            i += 2
        elif template[i] == "{":
            end = template.index("}", i)
            parts += [current, template[i : end + 1]]
            current, i = "", end + 1
        else:
            current += template[i]
            i += 1
    return [*parts, current]


def clean_text(seed: int, size: int) -> str:
    """About `size` characters of text with nothing to redact."""
    rng = random.Random(seed)
    text = ""
    while len(text) < size:
        text += rng.choice(CLEAN) + "\n"
    return text
