"""Video backbones: one family per module, registered builders, ``create_model``."""

from vidgrid.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
