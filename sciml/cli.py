"""The one command-line convention: bad input is one line naming the flag, exit code 2, before any work.

Library code raises ``ValueError('<field>: ...')`` naming a field (core.checks); only a
command line knows its flags, so each CLI keeps a ``{field: flag}`` map and reports
through :func:`fail_for_field`. Standard library only: every entry point may import it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Mapping, NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: error: {message}")


def fail(message: str) -> NoReturn:
    """Print ``message`` on one line to stderr and exit with EXIT_BAD_INPUT."""
    print(" ".join(str(message).split("\n")), file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def flag_message(error: Exception, flags: Mapping[str, str]) -> str:
    """'field: message' from a validating constructor as '--flag: message' (unchanged if the field has no flag)."""
    text = str(error)
    field, sep, rest = text.partition(": ")
    if sep and field in flags:
        return f"{flags[field]}: {rest}"
    return text


def fail_for_field(prog: str, error: Exception, flags: Mapping[str, str]) -> NoReturn:
    """Exit 2 with 'prog: error: --flag: message' for a library error naming a field."""
    fail(f"{prog}: error: {flag_message(error, flags)}")
