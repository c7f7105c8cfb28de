"""torch.hub entry points: ``torch.hub.load(path_to_checkout, "se_resnet50", source="local")``.

Every model of ``senet.list_models()`` is an entry point taking the same keyword arguments as
``senet.create_model`` (``num_classes``, ``in_chans``, ``features_only``, ...). No weights ship with this
repository: ``pretrained=True`` raises instead of downloading anything; load your own with ``senet.load_model``.
"""

import os
import sys

dependencies = ["torch", "torchvision"]

# A local checkout imports its own sources, whatever version of senet may be installed.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from senet.errors import ConfigError
from senet.models import create_model, list_models


def _entrypoint(name):
    def build(pretrained=False, **kwargs):
        if pretrained:
            raise ConfigError(f"no pretrained weights ship for {name!r}: build it with pretrained=False and load your "
                              "own checkpoint with senet.load_model(path)")
        return create_model(name, **kwargs)

    build.__name__ = name
    build.__doc__ = f"senet.create_model({name!r}, **kwargs); pretrained=True is refused (no weights ship)."
    return build


for _name in list_models():
    globals()[_name] = _entrypoint(_name)
