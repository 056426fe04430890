"""`python -m longact ARGS` = `longact ARGS` (what torchrun runs with `-m longact train ...`)."""

import sys

from longact.cli import main

sys.exit(main())
