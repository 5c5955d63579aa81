"""Find what to make per domain in a foreign network, by structure (PAPER.md section 9).

A depthwise convolution is a ``Conv2d`` with ``groups == in_channels > 1`` and a kernel larger
than 1x1 (timm's ``Conv2dSame`` is one; a ``MixedConv2d`` holds one per kernel size). Layers
are told apart by their type, never by their names, except where a type can only be known by
name without importing its library (squeeze-excitation, ConvNeXt blocks, timm's ``CondConv2d``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn

from multidomain.errors import ConfigError

CATEGORIES = (
    "depthwise",
    "pointwise",
    "conv",
    "norm",
    "layer_scale",
    "se",
    "classifier_hidden",
    "classifier",
)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
# Squeeze-excitation modules of torchvision (SqueezeExcitation) and timm (SqueezeExcite, SEModule).
SE_CLASSES = frozenset({"SqueezeExcitation", "SqueezeExcite", "SEModule", "EffectiveSEModule"})
# Blocks holding a per-block layer scale as a bare parameter: (attribute, whether a per-sample
# value of shape (B, *shape) broadcasts in the block's forward, i.e. a mixed batch can pass once).
LAYER_SCALES = {"CNBlock": ("layer_scale", True), "ConvNeXtBlock": ("gamma", False)}
REFUSED = {
    "CondConv2d": "its kernel is a per-sample mixture of expert kernels, so there is no one "
    "depthwise kernel to copy per domain; convert the same family without CondConv "
    "(e.g. efficientnet_b0 instead of efficientnet_cc_b0_4e)",
}


@dataclass(frozen=True)
class Target:
    path: str
    category: str


@dataclass
class Targets:
    """What the converter touches, in module order.

    Attributes:
        modules: the modules to make per domain or to mark shared, with their category.
        layer_scales: ``(block path, attribute, batchable)`` of per-block layer scales.
        classifier: path of the final linear layer (replaced by per-domain heads).
    """

    modules: list[Target] = field(default_factory=list)
    layer_scales: list[tuple[str, str, bool]] = field(default_factory=list)
    classifier: str = ""

    def of(self, category: str) -> list[str]:
        return [t.path for t in self.modules if t.category == category]


def is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.in_channels > 1
        and module.groups == module.in_channels
        and module.kernel_size != (1, 1)
    )


def find_targets(network: nn.Module) -> Targets:
    """Classify every parameter-holding module of ``network``.

    Raises:
        ConfigError: a refused layer type, a layer with parameters of unknown purpose, no
            classifier, or no depthwise convolution; naming the module path and the way forward.
    """
    classifier, hidden = find_classifier(network)
    targets = Targets(classifier=classifier)
    _walk(network, "", targets, hidden)
    if not targets.of("depthwise"):
        raise ConfigError(_no_depthwise_message(network))
    return targets


def _walk(module: nn.Module, path: str, targets: Targets, hidden: set[str]) -> None:
    kind = type(module).__name__
    if kind in REFUSED:
        raise ConfigError(f"cannot convert {path} ({kind}): {REFUSED[kind]}")
    category = _category(module, path, targets.classifier, hidden)
    if category is not None:
        targets.modules.append(Target(path, category))
        return
    if kind in LAYER_SCALES and isinstance(getattr(module, LAYER_SCALES[kind][0]), nn.Parameter):
        attribute, batchable = LAYER_SCALES[kind]
        targets.layer_scales.append((path, attribute, batchable))
    own = [n for n, _ in module.named_parameters(recurse=False)]
    unknown = [n for n in own if kind not in LAYER_SCALES or n != LAYER_SCALES[kind][0]]
    if unknown:
        raise ConfigError(
            f"cannot convert {path or 'the network'} ({kind}): it holds parameters "
            f"{unknown} of a layer type the converter does not know, so it cannot tell "
            "whether they are shared or per domain; supported: convolutions, linear layers, "
            "batch/layer/group norms, squeeze-excitation, ConvNeXt layer scales"
        )
    for name, child in module.named_children():
        _walk(child, f"{path}.{name}" if path else name, targets, hidden)


def _category(module: nn.Module, path: str, classifier: str, hidden: set[str]) -> str | None:
    if path == classifier:
        return "classifier"
    if path in hidden:
        return "classifier_hidden"
    if type(module).__name__ in SE_CLASSES:
        return "se"
    if is_depthwise(module):
        return "depthwise"
    if isinstance(module, nn.Conv2d):
        pointwise = module.kernel_size == (1, 1) and module.groups == 1
        return "pointwise" if pointwise else "conv"
    if isinstance(module, nn.Linear):  # ConvNeXt's pointwise layers over channels-last tensors
        return "pointwise"
    if isinstance(module, NORMS):
        return "norm"
    return None


def find_classifier(network: nn.Module) -> tuple[str, set[str]]:
    """The path of the final linear layer, and those of the classifier's hidden layers.

    timm networks name their classifier (``get_classifier()``); a timm MobileNetV3's hidden
    layer is its ``conv_head`` (after pooling) and a ``NormMlpClassifierHead``'s is its
    ``pre_logits``. Elsewhere the classifier is the last ``nn.Linear``, and the other linear
    layers of its container (torchvision's ``classifier`` Sequential) are its hidden layers.
    """
    paths = {id(m): p for p, m in network.named_modules()}
    if hasattr(network, "get_classifier"):
        final = network.get_classifier()
        if not isinstance(final, nn.Linear):
            raise ConfigError(
                f"{type(network).__name__} has no linear classifier ({type(final).__name__}): "
                "create it with num_classes >= 1; the converter replaces it by per-domain heads"
            )
        path = paths[id(final)]
        return path, _timm_hidden(network, path)
    linears = [p for p, m in network.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(
            f"{type(network).__name__} has no nn.Linear classifier: the converter replaces a "
            "network's final linear layer by per-domain heads"
        )
    path = linears[-1]
    parent = path.rpartition(".")[0]
    siblings = {p for p in linears[:-1] if parent and p.rpartition(".")[0] == parent}
    return path, siblings


def _timm_hidden(network: nn.Module, classifier: str) -> set[str]:
    hidden = set()
    if type(network).__name__ == "MobileNetV3" and _has_parameters(network, "conv_head"):
        hidden.add("conv_head")
    head = classifier.rpartition(".")[0]
    if head and _has_parameters(network, f"{head}.pre_logits"):
        hidden.add(f"{head}.pre_logits")
    return hidden


def _has_parameters(network: nn.Module, path: str) -> bool:
    try:
        module = network.get_submodule(path)
    except AttributeError:
        return False
    return any(True for _ in module.parameters())


def _no_depthwise_message(network: nn.Module) -> str:
    grouped = list(_grouped(network))
    found = ""
    if grouped:
        path, conv = grouped[0]
        found = (
            f"; its {len(grouped)} grouped convolutions (e.g. {path}: groups={conv.groups}, "
            f"in_channels={conv.in_channels}) are grouped, not depthwise"
        )
    return (
        f"{type(network).__name__} has no depthwise convolution (Conv2d with groups == "
        f"in_channels and a kernel larger than 1x1){found}: the converter makes depthwise-"
        "separable networks multi-domain (MobileNetV2/V3, EfficientNet, ConvNeXt, MnasNet, "
        "ShuffleNetV2); for other networks use a registered model (multidomain.list_models())"
    )


def _grouped(network: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    for path, module in network.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            yield path, module
