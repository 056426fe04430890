"""Errors of an evaluation run; all derive from the project's one base, `tasks.errors.UserError`."""

from tasks.errors import UserError

__all__ = ["UserError", "IncompleteRunError"]


class IncompleteRunError(UserError):
    """Work was done and saved, but some of it failed; a rerun resumes."""

    exit_code = 3
