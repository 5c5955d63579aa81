"""The converter: any depthwise network (torchvision's or timm's MobileNet, EfficientNet,
ConvNeXt, ...) made multi-domain in one call, in the shape of a PEFT tuner (PAPER.md section 9).

    from multidomain.convert import ConvertConfig, convert

    model = convert(torchvision.models.mobilenet_v3_small(), {"svhn": 10, "dtd": 47})
    logits = model(images, domain="svhn")
"""

from multidomain.convert.config import ConvertConfig
from multidomain.convert.model import ConvertedNet, convert
from multidomain.convert.sources import build_network, load_network_weights

__all__ = ["ConvertConfig", "ConvertedNet", "build_network", "convert", "load_network_weights"]
