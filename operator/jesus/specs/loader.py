"""Loading spec files and folders into typed objects, each with its source file and field lines."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from jesus.api import (
    API_VERSION,
    GROUP,
    KINDS,
    AgentRun,
    ApiObject,
    Budget,
    Lesson,
    ModelAdapter,
    RoutePolicy,
)
from jesus.logic.evals import EVAL_KIND, EvalSuite
from jesus.specs.discovery import discover
from jesus.specs.errors import describe_validation_error, error_path
from jesus.specs.groups import lookalike_problem
from jesus.specs.metadata import metadata_problems
from jesus.specs.problems import Problem, Severity, format_field_path
from jesus.specs.source import Document, FieldPath, SourceError, parse_documents, read_documents

T = TypeVar("T", AgentRun, RoutePolicy, Budget, ModelAdapter, Lesson)

# etcd's default request limit; the API server refuses larger objects.
MAX_OBJECT_BYTES = 1_572_864


@dataclass(frozen=True)
class LoadedObject:
    """A valid object from a spec file, with where it came from.

    `namespace` is metadata.namespace, else the kustomization's namespace, else "" (the namespace
    `kubectl apply` targets). References resolve within one namespace.
    """

    obj: ApiObject
    document: Document
    namespace: str

    @property
    def kind(self) -> str:
        """The object's kind."""
        return self.obj.kind

    @property
    def name(self) -> str:
        """The object's metadata.name."""
        return self.obj.metadata.name or ""

    @property
    def file(self) -> Path:
        """The file the object was read from."""
        return self.document.file

    @property
    def line(self) -> int:
        """The line the object's document starts on."""
        return self.document.line

    def line_of(self, path: FieldPath) -> int:
        """The line of a field such as ("spec", "chain", 1, "adapterRef")."""
        return self.document.line_of(path)

    def problem(self, path: FieldPath, message: str, severity: Severity = Severity.ERROR) -> Problem:
        """A problem about one of this object's fields."""
        return Problem(
            file=self.file,
            line=self.line_of(path),
            kind=self.kind,
            name=self.name,
            field=format_field_path(path),
            message=message,
            severity=severity,
        )


ObjectKey = tuple[str, str, str]  # kind, namespace, name


@dataclass
class SpecSet:
    """Everything read from a set of paths: valid typed objects, and the problems of the rest.

    `declared` holds the key of every jesus.dev object that had a kind and a name, valid or not, so
    a reference to an invalid object is not also reported as dangling.
    """

    objects: list[LoadedObject] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    declared: set[ObjectKey] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)
    _index: dict[ObjectKey, LoadedObject] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=0, repr=False, compare=False)

    def of_kind(self, model: type[T]) -> list[T]:
        """Every valid object of one kind, e.g. `spec_set.of_kind(AgentRun)`."""
        return [o.obj for o in self.objects if isinstance(o.obj, model)]

    def loaded_of_kind(self, kind: str) -> list[LoadedObject]:
        """Every valid object of one kind, with its source."""
        return [o for o in self.objects if o.kind == kind]

    def get(self, kind: str, name: str, namespace: str = "") -> LoadedObject | None:
        """The valid object of this kind, namespace and name (the first, if declared twice)."""
        if self._indexed != len(self.objects):  # objects were added since the index was built
            self._index.clear()
            for loaded in reversed(self.objects):
                self._index[(loaded.kind, loaded.namespace, loaded.name)] = loaded
            self._indexed = len(self.objects)
        return self._index.get((kind, namespace, name))

    def declares(self, kind: str, name: str, namespace: str = "") -> bool:
        """Whether any document (valid or not) declares this object."""
        return (kind, namespace, name) in self.declared

    @property
    def agent_runs(self) -> list[AgentRun]:
        """The valid AgentRuns."""
        return self.of_kind(AgentRun)

    @property
    def route_policies(self) -> list[RoutePolicy]:
        """The valid RoutePolicies."""
        return self.of_kind(RoutePolicy)

    @property
    def budgets(self) -> list[Budget]:
        """The valid Budgets."""
        return self.of_kind(Budget)

    @property
    def model_adapters(self) -> list[ModelAdapter]:
        """The valid ModelAdapters."""
        return self.of_kind(ModelAdapter)

    @property
    def has_errors(self) -> bool:
        """Whether loading found any error (warnings aside)."""
        return any(p.severity is Severity.ERROR for p in self.problems)


def _document_problem(document: Document, path: FieldPath, message: str, **kw: Any) -> Problem:
    return Problem(
        file=document.file,
        line=document.line_of(path),
        field=format_field_path(path),
        message=message,
        **kw,
    )


def load_document(
    document: Document, namespace_default: str, spec_set: SpecSet, *, force_namespace: bool = False
) -> None:
    """Validate one document into a typed object (added to `spec_set`) or into problems.

    The object's namespace is metadata.namespace, else `namespace_default`; with `force_namespace`
    (a kustomization's `namespace:`), `namespace_default` wins, as kustomize sets it on everything.
    """
    data = document.data
    if not isinstance(data, dict):
        spec_set.problems.append(
            _document_problem(document, (), f"a spec document must be a mapping, not {type(data).__name__}")
        )
        return
    kind = data.get("kind")
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    name_text = name if isinstance(name, str) else ""
    kind_text = kind if isinstance(kind, str) else ""
    if data.get("apiVersion") == API_VERSION and kind_text == EVAL_KIND:
        # Not a cluster object: `jesus eval` reads it. Checked here all the same, field by field.
        spec_set.problems.extend(_eval_suite_problems(document, data, name_text))
        return
    not_ours = _type_problem(document, data.get("apiVersion"), kind, name_text)
    if not_ours is not None:
        spec_set.problems.append(not_ours)
        return
    namespace = namespace_default if force_namespace else ""
    if not namespace and isinstance(metadata, dict) and isinstance(metadata.get("namespace"), str):
        namespace = metadata["namespace"]
    namespace = namespace or namespace_default
    meta_problems = [
        _document_problem(document, path, message, kind=kind_text, name=name_text)
        for path, message in metadata_problems(metadata)
    ]
    spec_set.problems.extend(meta_problems)
    if name_text:
        spec_set.declared.add((kind_text, namespace, name_text))
    elif name is None:
        spec_set.problems.append(
            _document_problem(document, ("metadata", "name"), "metadata.name is required", kind=kind_text)
        )
    obj = _validated(document, data, kind_text, name_text)
    if isinstance(obj, list):
        spec_set.problems.extend(obj)
        return
    if namespace and obj.metadata.namespace != namespace:
        # what `kubectl kustomize` would send: the namespace written into the object
        obj.metadata = obj.metadata.model_copy(update={"namespace": namespace})
    if name_text and not meta_problems:
        spec_set.objects.append(LoadedObject(obj=obj, document=document, namespace=namespace))


def _eval_suite_problems(document: Document, data: dict[str, Any], name: str) -> list[Problem]:
    """An EvalSuite's schema problems (docs/evals.md)."""
    try:
        EvalSuite.model_validate(data)
    except ValidationError as exc:
        return [
            _document_problem(document, path, message, kind=EVAL_KIND, name=name)
            for path, message in describe_validation_error(exc)
        ]
    return []


def _type_problem(document: Document, api_version: object, kind: object, name: str) -> Problem | None:
    """Why the document is not an object of ours (a warning for another API group), or None."""
    kind_text = kind if isinstance(kind, str) else ""
    if not isinstance(api_version, str) or not api_version:
        return _document_problem(
            document, ("apiVersion",), "apiVersion is missing", kind=kind_text, name=name
        )
    lookalike = lookalike_problem(api_version, kind_text)
    if lookalike is not None:
        return _document_problem(document, ("apiVersion",), lookalike, kind=kind_text, name=name)
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    if group != GROUP:
        message = f"skipped: {api_version} is not a {GROUP} object"
        return _document_problem(document, (), message, kind=kind_text, name=name, severity=Severity.WARNING)
    if api_version != API_VERSION:
        message = f"unknown version {api_version!r}; the API is {API_VERSION}"
        return _document_problem(document, ("apiVersion",), message, kind=kind_text, name=name)
    if kind_text not in KINDS:
        message = f"unknown kind {kind!r}; {GROUP} has {', '.join(KINDS)}"
        return _document_problem(document, ("kind",), message, name=name)
    return None


def _validated(document: Document, data: dict[str, Any], kind: str, name: str) -> ApiObject | list[Problem]:
    """The document as its kind's model, or the problems that stop it (size, schema, CEL rules)."""
    body = json.dumps(data)
    if len(body.encode()) > MAX_OBJECT_BYTES:
        message = (
            f"object is {len(body.encode())} bytes as JSON; the API server stores at most {MAX_OBJECT_BYTES}"
        )
        return [_document_problem(document, (), message, kind=kind, name=name)]
    unknown = [
        _document_problem(document, path, "unknown field", kind=kind, name=name)
        for path in _unknown_null_fields(KINDS[kind].model, data, document.nulls)
    ]
    try:
        # Strict JSON validation: "5" is not an integer and 5 is not a string, as for the API server.
        validated = KINDS[kind].model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        return unknown + [
            _document_problem(document, path, message, kind=kind, name=name)
            for path, message in describe_validation_error(exc)
        ]
    return unknown or validated


def _unknown_null_fields(
    model: type[ApiObject], data: dict[str, Any], nulls: Sequence[FieldPath]
) -> list[FieldPath]:
    """The null fields (pruned from `data`) that the schema does not know: the API server refuses an
    unknown field in strict field validation whatever its value."""
    unknown: list[FieldPath] = []
    for path in nulls:
        parent: Any = data
        for step in path[:-1]:
            parent = parent.get(step) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] in parent:
            continue  # under a pruned null itself, or also given a value by a merge key
        probe = copy.deepcopy(data)
        _at(probe, path[:-1])[path[-1]] = None
        try:
            model.model_validate(probe, strict=True)
        except ValidationError as exc:
            if any(
                error["type"] == "extra_forbidden" and error_path(error) == path
                for error in exc.errors(include_url=False)
            ):
                unknown.append(path)
    return unknown


def _at(data: Any, path: FieldPath) -> Any:
    for step in path:
        data = data[step]
    return data


def load_documents(
    documents: Iterable[Document],
    spec_set: SpecSet | None = None,
    namespace: str = "",
    *,
    force_namespace: bool = False,
) -> SpecSet:
    """Load already-parsed documents (all in `namespace` unless they name one, or it is forced)."""
    spec_set = spec_set if spec_set is not None else SpecSet()
    for document in documents:
        load_document(document, namespace, spec_set, force_namespace=force_namespace)
    return spec_set


def load_text(text: str, file: Path = Path("<text>"), namespace: str = "") -> SpecSet:
    """Load specs from YAML text; handy for tests and for `kubectl`-style stdin."""
    spec_set = SpecSet(files=[file])
    try:
        documents = parse_documents(text, file)
    except SourceError as exc:
        spec_set.problems.append(Problem(file=file, line=exc.line, message=exc.message))
        return spec_set
    return load_documents(documents, spec_set, namespace)


def load_specs(paths: Sequence[Path | str]) -> SpecSet:
    """Read every spec under `paths` (files or folders, multi-document YAML) into a SpecSet.

    Folders with a kustomization file are read as kustomize builds them (resources, namespace); see
    jesus.specs.discovery. Never raises for bad content: unreadable files, broken YAML and invalid
    objects become problems. Raises SpecPathError for a path that does not exist.
    """
    spec_set = SpecSet()
    for spec_file in discover([Path(p) for p in paths], spec_set.problems):
        if spec_file.path not in spec_set.files:
            spec_set.files.append(spec_file.path)
        try:
            documents = read_documents(spec_file.path)
        except SourceError as exc:
            spec_set.problems.append(Problem(file=spec_file.path, line=exc.line, message=exc.message))
            continue
        # a kustomization's namespace overrides the objects' own, as `kubectl apply -k` does
        load_documents(documents, spec_set, spec_file.namespace, force_namespace=bool(spec_file.namespace))
    return spec_set
