"""``python -m tools.devenv``: see :mod:`tools.devenv.cli`."""

import sys

from tools.devenv.cli import main

sys.exit(main())
