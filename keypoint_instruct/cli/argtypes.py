"""Argument types shared by every subcommand: a bad number is argparse's one-line error, exit code 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def count(minimum: int) -> Callable[[str], int]:
    """A whole number of at least ``minimum`` (``count(1)`` for sizes and limits, ``count(0)`` for ids)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    parse.__name__ = f"count>={minimum}"
    return parse


def positive_float(text: str) -> float:
    """A finite number above zero (seconds, rates, dollars): ``inf`` would overflow a timer or a timestamp later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value
