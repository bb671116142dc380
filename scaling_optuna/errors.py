"""Errors a user can fix.

Every error raised for bad input derives from :class:`UserError`. The CLI prints
its message as one line and exits with status 2; Python callers catch the
specific subclass. Messages name the problem and the fix.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a spec, a dataset, a storage URL or a command-line value."""


class SpecError(UserError):
    """The experiment spec is malformed or inconsistent."""


class DataError(UserError):
    """The dataset cannot be loaded, or does not match what the experiment expects."""


class StorageError(UserError):
    """The storage URL is malformed or the store cannot be reached."""


class ExperimentMismatchError(UserError):
    """The store holds an experiment of the same name created from an incompatible spec."""


class UnknownSizeError(UserError):
    """A training-set size asked of an experiment that is not one of its sizes (``exp.records(123)``)."""


class WorkerError(RuntimeError):
    """A worker cannot go on for a reason that is not bad input (e.g. every trial fails); the CLI exits 1."""


class DeviceError(UserError):
    """The training device is not a device name, or this machine does not have it."""
