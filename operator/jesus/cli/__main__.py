"""`python -m jesus.cli` runs the command line, as the `jesus` script does."""

import sys

from jesus.cli import main

sys.exit(main())
