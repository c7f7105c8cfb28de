"""Progress bars for every loop over data: live on a terminal, a line every 30 s in a log file or CI."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable, *, desc: str, enabled: bool = True, **kwargs: Any):
    """A tqdm bar over ``iterable`` (``enabled=False`` gives a silent pass-through with the same interface).

    When stderr is not a terminal the bar redraws at most every 30 seconds, so logs stay readable.
    """
    from senet._extras import require

    tqdm = require("tqdm.auto", "train", purpose="progress bars").tqdm
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True,
                mininterval=0.1 if interactive else 30.0, **kwargs)
