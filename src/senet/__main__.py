"""``python -m senet``: the same as the ``senet`` console script."""

import sys

from senet.cli import console_main

sys.exit(console_main())
