"""`python -m mediamon`."""

import sys

from mediamon.cli import main

sys.exit(main())
