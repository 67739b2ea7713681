"""Shared command-line conventions: bad input is one line naming the argument, exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Mapping, NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message}")


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def fail_for_field(prog: str, error: Exception, flags: Mapping[str, str]) -> NoReturn:
    """Turn 'field: message' from a validating constructor into 'prog: error: --flag: message'."""
    text = str(error)
    field, sep, rest = text.partition(": ")
    if sep and field in flags:
        text = f"{flags[field]}: {rest}"
    fail(f"{prog}: error: {text}")
