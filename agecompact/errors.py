"""Errors that reach the user as one line on stderr and a non-zero exit code.

Exit codes: 0 ok, 1 runtime error, 2 usage error or command not available, 3 input data or model file
missing or unreadable, 4 no face found (``predict --strict``), 130 interrupted.
"""


class AgecompactError(Exception):
    """An expected failure: the message is shown as is, without a traceback."""

    exit_code = 1


class UsageError(AgecompactError):
    exit_code = 2


class NotAvailableError(AgecompactError):
    exit_code = 2


class InputError(AgecompactError):
    """A file the user pointed at is missing, truncated, corrupt or of the wrong kind."""

    exit_code = 3


class NoFaceError(AgecompactError):
    exit_code = 4
