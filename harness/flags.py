"""Config fields that are also CLI flags: each declares its flag, help and parser where it is defined.

    port: int | None = flag("--port", "port of a started server (default: a free one)", parse=int)

harness/run/config.py builds the `longact eval` parser from these declarations; a config class in
any layer (harness/backends/serve.py's `ServerConfig`) declares its flags the same way.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable


def flag(name: str, help: str, default: Any = None, parse: Callable | None = None,
         default_factory: Callable | None = None, **kw) -> Any:
    """A dataclass field that is also a CLI flag. `parse` turns the flag's string into the value;
    `default_factory` makes the default when the flag is absent; other keywords go to argparse
    (`action`, `metavar`, `choices`)."""
    meta = {"flag": name, "help": help, "parse": parse, "argparse": kw}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
