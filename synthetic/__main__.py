"""`python -m synthetic …` (see synthetic/cli.py)."""

import sys

from synthetic.cli import main

sys.exit(main())
