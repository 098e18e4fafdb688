"""Each command's help comes from its module docstring, read by `jesus.cli.command_parser`."""

from __future__ import annotations

import argparse
import importlib

import pytest

from jesus.cli import COMMAND_MODULES, build_parser, command_parser


def _subparsers() -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return argparse.ArgumentParser(prog="jesus").add_subparsers()


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_is_named_and_described_by_its_docstring(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc: str = importlib.import_module(f"jesus.cli.{name}").__doc__ or ""
    summary, _, rest = doc.partition("\n")
    with pytest.raises(SystemExit) as exited:
        build_parser(name).parse_args([name, "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: jesus {name}")
    assert summary.startswith(f"`jesus {name}")
    # argparse rewraps the description (and may break at hyphens): compare without whitespace.
    assert "".join(rest.split()) in "".join(help_text.split())
    listed = "".join(build_parser().format_help().split())
    assert "".join(summary.split(": ", 1)[1].rstrip(".").split()) in listed


def test_the_summary_line_becomes_the_help_and_the_rest_the_description() -> None:
    doc = """`jesus shout WORD...`: say it louder.

    Prints each WORD in capitals,
    one per line.
    """
    parser = command_parser(_subparsers(), doc)
    assert parser.prog.endswith("shout")
    assert parser.description == "Prints each WORD in capitals, one per line."
    assert "say it louder" not in build_parser().format_help()  # nothing registered it there


def test_a_one_line_docstring_has_no_description() -> None:
    parser = command_parser(_subparsers(), "`jesus ping`: answer pong.")
    assert parser.description is None


@pytest.mark.parametrize(
    "doc", [None, "", "Run things.", "jesus run: no backticks", "`jesus Run`: upper case"]
)
def test_a_docstring_without_the_summary_line_is_refused(doc: str | None) -> None:
    with pytest.raises(ValueError, match="command docstring must start with"):
        command_parser(_subparsers(), doc)
