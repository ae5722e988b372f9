"""Errors of the generation library."""

from __future__ import annotations


class StrategyError(Exception):
    """The set cannot be built (for example the model output could not be parsed).

    `raw_output` keeps what the model wrote so that a person can inspect it.
    """

    def __init__(self, message: str, raw_output: str = "") -> None:
        super().__init__(message)
        self.raw_output = raw_output
