"""Errors the CLI turns into one readable line and a non-zero exit, without a traceback."""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and what to do."""

    exit_code = 2


class IncompleteRunError(UserError):
    """Work was done and saved, but some of it failed; a rerun resumes."""

    exit_code = 3
