"""Exceptions the library raises for bad input.

Every error a user can cause (a missing data file, an unknown criterion name, a bad
shape, a NaN loss) is a ``SupermaskError``: the command-line tools print its message
and exit with status 2 instead of showing a traceback. Messages say what was expected,
what was received, and what to do about it.
"""


class SupermaskError(Exception):
    """Base class of all errors caused by bad input or a bad environment."""


class ConfigError(SupermaskError, ValueError):
    """An invalid hyperparameter, name or shape (unknown criterion, rate out of range...)."""


class DataError(SupermaskError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


class TrainingError(SupermaskError):
    """Training diverged (non-finite loss) or cannot continue."""
