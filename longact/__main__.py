"""`python -m longact ARGS` = `longact ARGS` (what torchrun runs with `-m longact train ...`)."""

from longact.cli import run

run()
