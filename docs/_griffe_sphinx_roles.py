"""A griffe extension for the API reference: Sphinx roles in docstrings render as code.

The docstrings cross-reference with reStructuredText roles (``:func:`senet.train.train```), which read well in
``help()`` and in editors; Markdown would show the role markup verbatim. This rewrites each role to inline code
(``~`` keeps only the last dotted component, as Sphinx does) and reST's double backticks to single ones.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
DOUBLE_BACKTICKS = re.compile(r"``([^`]+)``")


def _code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def markdown_from_rest(text: str) -> str:
    """``text`` with Sphinx roles and double-backtick literals as Markdown inline code."""
    return DOUBLE_BACKTICKS.sub(r"`\1`", ROLE.sub(_code, text))


class SphinxRolesToCode(Extension):
    """Rewrite every docstring as it is loaded."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_from_rest(obj.docstring.value)
