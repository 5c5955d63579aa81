"""multidomain: learning many visual domains with one network.

Implements Guo et al., "Depthwise Convolution is All You Need for Learning Multiple Visual
Domains" (AAAI 2019): a depthwise-separable ResNet-26 whose pointwise convolutions are shared by
all domains while each domain owns its depthwise filters, batch norms and classifier head.
"""

from multidomain.convert import ConvertConfig, convert
from multidomain.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["ConvertConfig", "__version__", "convert", "create_model", "list_models"]
