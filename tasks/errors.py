"""The project's one error base: a mistake the user can fix, reported as one line, no traceback.

It lives in the bottom layer (tasks/) so that task loaders, the harness and the trainer all raise
the same type and the app (`longact`) catches exactly one. Each subclass sets its exit code.
"""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and what to do."""

    exit_code = 2
