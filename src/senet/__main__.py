"""``python -m senet``: the same as the ``senet`` console script."""

import sys

from senet.cli import main

sys.exit(main())
