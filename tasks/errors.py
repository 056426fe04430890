"""The project's one error base: a mistake the user can fix, reported as one line, no traceback.

It lives in the bottom layer (tasks/) so that task loaders, the harness and the trainer all raise
the same type and the app (`longact`) catches exactly one. Each subclass sets its exit code.
"""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and what to do."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A setting (in a config file, an override or a flag) is wrong: the message names the setting
    and what it accepts. Only validation raises it, so a ValueError from inside a run stays a bug
    with its traceback. Also a ValueError, as the checks that raise it always were."""
