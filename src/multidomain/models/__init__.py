"""Multi-domain models, created by name through one registry."""

from multidomain.models import resnet26 as _resnet26  # noqa: F401  (registers the builders)
from multidomain.models._registry import build_model, create_model, list_models
from multidomain.models.base import MultiDomainNet
from multidomain.models.config import SHARE_POLICIES, ModelConfig

# The converter registers the torchvision: and timm: sources (imported last: it builds on us).
from multidomain.convert import sources as _sources  # noqa: F401  isort: skip

__all__ = [
    "SHARE_POLICIES",
    "ModelConfig",
    "MultiDomainNet",
    "build_model",
    "create_model",
    "list_models",
]
