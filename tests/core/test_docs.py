"""The README cannot drift from the CLI: every command, flag and exit code is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from batchgen.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    """Each subcommand has a description and appears as `batchgen NAME` in the README."""
    parser = subcommands()[name]
    assert parser.description
    assert f"batchgen {name}" in README


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_has_help_and_is_in_the_readme(name: str) -> None:
    """Every option of every command has help text and is named in the README."""
    for action in subcommands()[name]._actions:
        for flag in action.option_strings:
            if flag in ("-h", "--help") or not flag.startswith("--"):
                continue
            assert action.help, f"{name} {flag} has no help text"
            assert flag in README, f"`batchgen {name} {flag}` is not documented in README.md"


def test_exit_codes_table_matches_the_cli() -> None:
    """The README's exit-code table lists exactly the codes the CLI documents."""
    from batchgen import cli

    documented = set(re.findall(r"^\| (\d+) \|", README, flags=re.M))
    in_cli = set(re.findall(r"(\d+) [a-z]", cli.__doc__.split("Exit codes:")[1]))
    assert documented == in_cli == {"0", "1", "2", "3", "4", "130", "141"}
