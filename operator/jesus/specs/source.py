"""Reading multi-document YAML with the line of every field, as plain JSON-like data.

ruamel.yaml's round-trip loader keeps positions; we walk its nodes once and record, for every path
of keys and indexes, the line it starts on. Plain dicts and lists go on to pydantic; the line map
turns pydantic's error locations back into lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

FieldPath = tuple[str | int, ...]

MAX_FILE_BYTES = 4 * 1024 * 1024  # etcd refuses objects past ~1.5 MiB; a spec file has no reason to be larger
MAX_NODES = 200_000  # bounds alias expansion ("billion laughs") and absurd documents
MAX_DEPTH = 64

YAML11_BOOLEANS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}


class SourceError(Exception):
    """A file that cannot be read as YAML; `line` is 1-based."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Document:
    """One YAML document: its data as plain Python, and the line of each field path (1-based)."""

    file: Path
    index: int
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)
    # Where the YAML said null: pruned from `data` as the API server prunes them, but a null under a
    # field the schema does not know is still an unknown field to the server.
    nulls: tuple[FieldPath, ...] = ()

    @property
    def line(self) -> int:
        """The line the document starts on."""
        return self.lines.get((), 1)

    def line_of(self, path: FieldPath) -> int:
        """The line of `path`, or of its nearest ancestor that the document has."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.line


class _Converter:
    """Turns ruamel's round-trip nodes into plain data, recording lines and bounding size."""

    def __init__(self) -> None:
        self.lines: dict[FieldPath, int] = {}
        self.nulls: list[FieldPath] = []
        self.nodes = 0

    def convert(self, node: Any, path: FieldPath, line: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SourceError(f"document has more than {MAX_NODES} values (aliases expanded)", line)
        if len(path) > MAX_DEPTH:
            raise SourceError(f"document nests deeper than {MAX_DEPTH} levels", line)
        self.lines.setdefault(path, line)
        if isinstance(node, CommentedMap):
            result: dict[str, Any] = {}
            for key, value in node.items():
                key_line = _key_line(node, key, line)
                if not isinstance(key, str):
                    raise SourceError(f"key {key!r} is not a string; quote it", key_line)
                if value is None:
                    # The API server prunes nulls from objects before validating; so do we.
                    self.lines.setdefault((*path, key), key_line)
                    self.nulls.append((*path, key))
                    continue
                result[key] = self.convert(value, (*path, key), key_line)
            return result
        if isinstance(node, CommentedSeq):
            items = [self.convert(item, (*path, i), _item_line(node, i, line)) for i, item in enumerate(node)]
            return _decimals_kept_in_lists(node, items)
        if isinstance(node, dict):  # maps produced by merge keys or aliases
            return {str(k): self.convert(v, (*path, str(k)), line) for k, v in node.items()}
        if isinstance(node, list):
            return [self.convert(v, (*path, i), line) for i, v in enumerate(node)]
        if isinstance(node, datetime.datetime | datetime.date):
            # An unquoted timestamp; Kubernetes would see the string the user wrote.
            return node.isoformat().replace("+00:00", "Z")
        if isinstance(node, bool | int | float | str) or node is None:
            # ruamel subclasses (ScalarFloat, LiteralScalarString...) become the plain type
            if isinstance(node, bool) or node is None:
                return node
            if isinstance(node, int):
                return int(node)
            if isinstance(node, float):
                # The API server takes 2.0 as the integer 2 (JSON has one number type); so do we.
                return int(node) if node.is_integer() else float(node)
            if type(node) is str and node in YAML11_BOOLEANS:
                # kubectl reads YAML 1.1, where a plain yes, no, on, off, y or n is a boolean; seeing
                # what the API server will see keeps `jesus validate` and the cluster in agreement.
                return YAML11_BOOLEANS[node]
            return str(node)
        raise SourceError(f"unsupported YAML value of type {type(node).__name__}", line)


def _decimals_kept_in_lists(node: list[Any], items: list[Any]) -> list[Any]:
    """`items`, with a decimal such as 2.0 left a decimal.

    The API server takes a scalar 2.0 as the integer 2, but its CEL rules see 2.0 inside a list as a
    double and refuse the list (`isSorted` has no overload for it, even for [2.0] alone). Keeping the
    decimal makes `jesus validate` refuse such a list too ("must be a whole number").
    """
    return [float(raw) if isinstance(raw, float) else item for raw, item in zip(node, items, strict=True)]


def _key_line(node: CommentedMap, key: Any, default: int) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return default


def _item_line(node: CommentedSeq, index: int, default: int) -> int:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (KeyError, TypeError, AttributeError, IndexError):
        return default


def _node_line(node: Any) -> int:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return int(lc.line) + 1
    return 1


def read_documents(path: Path) -> list[Document]:
    """Every non-empty document of a YAML file, with field lines. Raises SourceError with a line."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise SourceError(f"file is {size} bytes; specs are limited to {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    return parse_documents(text, path)


def parse_documents(text: str, path: Path) -> list[Document]:
    """Parse YAML text (possibly several documents) into Documents; raises SourceError with a line."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.preserve_quotes = True  # quoted scalars keep their own type, so plain ones can be told apart
    documents: list[Document] = []
    try:
        for index, node in enumerate(yaml.load_all(text)):
            if node is None:
                continue  # an empty document, e.g. after a trailing `---`
            converter = _Converter()
            data = converter.convert(node, (), _node_line(node))
            documents.append(
                Document(
                    file=path, index=index, data=data, lines=converter.lines, nulls=tuple(converter.nulls)
                )
            )
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise SourceError(f"invalid YAML: {what}", line) from exc
    except YAMLError as exc:
        raise SourceError(f"invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise SourceError("invalid YAML: nested too deeply") from exc
    return documents
