"""Video backbones: one family per module, registered builders, ``create_model``."""

from vidgrid.models.registry import create_model, list_models, register_model
from vidgrid.models import mvit  # noqa: F401,E402  (registers the MViT builders)
from vidgrid.models import resnet3d, x3d  # noqa: F401,E402  (register the ResNet-3D and X3D builders)

__all__ = ["create_model", "list_models", "register_model"]
