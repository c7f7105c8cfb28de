"""Model families. Importing this package registers every model (see :mod:`senet.models.registry`)."""

from senet.models import (  # noqa: F401  (registers models)  # noqa: F401  (registers models)
           cifar,
           inception,
           inception_resnet,
           mobile,
           notebook,
           resnet,
           shufflenet,
           vgg,
)
from senet.models.naming import named_se_blocks, se_block_name
from senet.models.registry import (
           create_model,
           default_input_size,
           get_model_builder,
           list_models,
           model_config,
           register_model,
)

__all__ = ["create_model", "default_input_size", "get_model_builder", "list_models", "model_config", "named_se_blocks", "register_model",
           "se_block_name"]
