"""`jesus sanitize`: the gate finds what the redaction service redacts, says where and of what kind and
never what, fails closed on what it cannot read, and lets the placeholders standards reserve pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jesus.cli import main
from jesus.redaction import PresidioRedactor
from jesus.redaction.scan import files_under, is_example_value, locate, scan
from jesus.redaction.text import Finding

REPO = Path(__file__).resolve().parents[3]
# Planted values: each would leak if the gate let it through.
KEY = "sk-ant-api03-" + "Zq8Xw2Lm5Nv7Rt4Yp1Kd9Hs6Gf3Jc0Ba" * 2
MAIL = "dana.ruiz@acme-corp.io"
PHONE = "+1 (415) 555-0172"


def sanitize(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sanitize", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def patterns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's defaults whatever the environment running the tests says."""
    for variable in ("JESUS_REDACTION_NAMES", "JESUS_REDACTION_PATTERNS", "JESUS_REDACTION_ALLOW"):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.usefixtures("patterns_only")
def test_a_planted_secret_fails_the_gate_naming_file_line_column_and_kind_but_not_the_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lesson = tmp_path / "lessons" / "retry.yaml"
    lesson.parent.mkdir()
    lesson.write_text(
        "kind: Lesson\nspec:\n  text: |\n    Retry after 30 s.\n"
        f"    The key {KEY} worked; mail {MAIL} or call {PHONE}.\n"
    )
    (tmp_path / "clean.yaml").write_text("kind: Lesson\nspec:\n  text: Retry after 30 s.\n")
    code, out, err = sanitize(capsys, str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    where = f"{lesson}:5:"
    assert any(line.startswith(where) and line.endswith(": anthropic-key") for line in lines), out
    assert any(line.startswith(where) and line.endswith(": email") for line in lines), out
    assert any(line.startswith(where) and line.endswith(": phone") for line in lines), out
    column = int(next(line for line in lines if line.endswith(": email")).split(":")[2])
    assert lesson.read_text().splitlines()[4][column - 1 :].startswith(MAIL)
    for planted in (KEY, MAIL, PHONE, "sk-ant"):
        assert planted not in out + err
    assert "clean.yaml" not in out
    assert "2 file(s) scanned" in err


@pytest.mark.usefixtures("patterns_only")
def test_the_shipped_specs_examples_policies_and_chart_pass(capsys: pytest.CaptureFixture[str]) -> None:
    # What the example pull-request workflow scans must not fail on the project's own files.
    paths = [str(REPO / p) for p in ("specs", "examples", "policies", "charts")]
    code, out, err = sanitize(capsys, *paths)
    assert (code, out) == (0, ""), out
    assert "0 finding(s), 0 file(s) not scanned" in err


@pytest.mark.usefixtures("patterns_only")
def test_what_cannot_be_read_as_text_fails_closed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scanned, elsewhere = tmp_path / "scanned", tmp_path / "elsewhere"
    scanned.mkdir()
    elsewhere.mkdir()
    (elsewhere / "key.txt").write_text(KEY)
    (scanned / "blob.bin").write_bytes(b"PK\x03\x04\x00\x00" + KEY.encode())
    (scanned / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") + MAIL.encode())
    (scanned / "big.txt").write_text("x" * 2000)
    os.mkfifo(scanned / "pipe")  # a FIFO would block a reader for ever
    (scanned / "dangling").symlink_to(tmp_path / "nowhere")
    (scanned / "loop").symlink_to(scanned, target_is_directory=True)  # covered: scanned anyway
    (scanned / "away").symlink_to(elsewhere, target_is_directory=True)  # not followed, so reported
    code, out, _ = sanitize(capsys, str(scanned), "--max-bytes", "1000")
    assert code == 1
    reasons = dict(line.split(": not scanned: ") for line in out.splitlines())
    assert "binary" in reasons.pop(str(scanned / "blob.bin"))
    assert "UTF-8" in reasons.pop(str(scanned / "latin1.txt"))
    assert "larger than 1000 bytes" in reasons.pop(str(scanned / "big.txt"))
    assert "not a regular file" in reasons.pop(str(scanned / "pipe"))
    assert "link to nothing" in reasons.pop(str(scanned / "dangling"))
    assert "not a regular file" in reasons.pop(str(scanned / "away"))
    assert reasons == {}
    assert KEY not in out and MAIL not in out


@pytest.mark.usefixtures("patterns_only")
def test_a_link_to_a_file_is_scanned_through_and_excludes_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "outside.txt"
    target.write_text(f"token {KEY}\n")
    tree = tmp_path / "tree"
    (tree / ".git").mkdir(parents=True)
    (tree / ".git" / "config").write_text(f"{KEY}\n")  # version control's own: not content
    (tree / "vendored").mkdir()
    (tree / "vendored" / "x.txt").write_text(f"{KEY}\n")
    (tree / "link.txt").symlink_to(target)
    code, out, _ = sanitize(capsys, str(tree), "--exclude", "vendored", "-o", "json")
    report = json.loads(out)
    assert code == 1
    assert [(f["path"], f["line"], f["kind"]) for f in report["findings"]] == [
        (str(tree / "link.txt"), 1, "anthropic-key")
    ]
    assert report["notScanned"] == [] and report["scanned"] == 1


@pytest.mark.usefixtures("patterns_only")
def test_careless_input_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = sanitize(capsys, str(tmp_path / "missing"))
    assert code == 2 and f"{tmp_path / 'missing'}: no such file or folder" in err
    code, _, err = sanitize(capsys, str(tmp_path), "--max-bytes", "0")
    assert code == 2 and "--max-bytes" in err
    with monkeypatch.context() as patched:
        patched.setenv("JESUS_REDACTION_PATTERNS", "{not json")
        code, _, err = sanitize(capsys, str(tmp_path))
    assert code == 2 and "JESUS_REDACTION_PATTERNS" in err
    (tmp_path / "empty.yaml").write_text("")
    assert sanitize(capsys, str(tmp_path))[0] == 0


@pytest.mark.usefixtures("patterns_only")
def test_a_sites_own_pattern_and_names_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    note = tmp_path / "note.md"
    note.write_text("Ticket EMP-123456 was closed.\nMargaret Hamilton reviewed the change.\n")
    assert sanitize(capsys, str(note))[0] == 0
    monkeypatch.setenv("JESUS_REDACTION_PATTERNS", '{"employee-id": "EMP-[0-9]{6}"}')
    code, out, _ = sanitize(capsys, str(note))
    assert (code, out) == (1, f"{note}:1:8: employee-id\n")
    code, out, _ = sanitize(capsys, str(note), "--names")
    assert code == 1 and f"{note}:2:1: person" in out


def test_crlf_and_a_byte_order_mark_keep_lines_and_columns(
    tmp_path: Path, redactor: PresidioRedactor
) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nmail " + MAIL.encode() + b"\r\n")
    report = scan([path], redactor)
    assert [(f.line, f.column, f.kind) for f in report.findings] == [(2, 6, "email")]


def test_locate_counts_lines_and_columns_from_one() -> None:
    text = "ab\ncd\n\nefg"
    findings = [
        Finding(0, 1, "a", 1.0),
        Finding(4, 5, "d", 1.0),
        Finding(7, 8, "e", 1.0),
        Finding(9, 10, "g", 1.0),
    ]
    assert locate(text, findings) == [(1, 1, "a"), (2, 2, "d"), (4, 1, "e"), (4, 3, "g")]


@pytest.mark.parametrize(
    ("kind", "text", "passes"),
    [
        ("ip-address", "127.0.0.1", True),
        ("ip-address", "192.0.2.15", True),
        ("ip-address", "169.254.20.10/32", True),
        ("ip-address", "2001:db8::7", True),
        ("ip-address", "10.20.30.40", False),  # a site's own network
        ("ip-address", "8.8.8.8", False),
        ("ip-address", "not-an-address", False),
        ("email", "ada@example.com", True),
        ("email", "ops@mail.example.org", True),
        ("email", "ada@example.com.attacker.io", False),
        ("email", "ada@notexample.com", False),
        ("phone", "25000000", True),
        ("phone", "502/503/504", True),
        ("phone", "+44 20 7946 0958", False),
        ("secret", "$ANTHROPIC_API_KEY", True),
        ("secret", "${TOKEN}", True),
        ("url-password", "<password>", True),
        ("url-password", "PASSWORD", False),  # a word in capitals may be a password: flagged
        ("url-password", "<pass word>", False),
        ("secret", KEY, False),
        ("person", "Ada Lovelace", False),
    ],
)
def test_only_reserved_placeholders_pass(kind: str, text: str, passes: bool) -> None:
    assert is_example_value(kind, text) is passes


def test_files_are_listed_sorted_without_version_control(tmp_path: Path) -> None:
    for name in ("b.txt", "a/z.txt", "a/y.txt", ".git/HEAD"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in files_under([tmp_path])] == [
        "b.txt",
        "a/y.txt",
        "a/z.txt",
    ]
