"""Video backbones: one family per module, each registering its variant table; ``create_model``."""

from vidgrid.models.registry import create_model, list_models, model_config, register_family
from vidgrid.models import mvit  # noqa: F401,E402  (registers the MViT variants)
from vidgrid.models import resnet3d, x3d  # noqa: F401,E402  (register the ResNet-3D and X3D variants)
from vidgrid.models.exported import load_exported  # noqa: E402

__all__ = ["create_model", "load_exported", "list_models", "model_config", "register_family"]
