"""Errors a user can act on. The app shows them as ``gr.Error``, the CLI as a message."""


class LabError(Exception):
    """Bad input, missing data or weights: the message says what to do."""


class Cancelled(LabError):
    """The user stopped a long job; what was finished is already on disk."""
