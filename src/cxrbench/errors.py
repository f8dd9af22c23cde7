"""Exceptions with messages that say what was wrong, where, and what to do."""

from __future__ import annotations


class CxrBenchError(Exception):
    """Base class for every error cxrbench raises on purpose."""


class ConfigError(CxrBenchError, ValueError):
    """A user-supplied option is invalid (unknown name, level outside [0, 1), ...)."""


class DataError(CxrBenchError):
    """A dataset file is missing, unreadable or malformed."""


class CheckpointError(CxrBenchError):
    """A checkpoint cannot be read, is not the format an adapter expects, or its keys do not match."""


class WeightsNotAvailable(CxrBenchError):
    """A model's weights are not configured on this machine; the message says how to provide them."""


class OutputError(CxrBenchError):
    """Results cannot be written (a full disk, a read-only folder); nothing partial is left behind."""


class Note(UserWarning):
    """Something the user asked for was adjusted (a duplicate removed...); shown as one ``note:`` line."""
