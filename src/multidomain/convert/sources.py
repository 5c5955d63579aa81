"""The ``torchvision:NAME`` and ``timm:NAME`` model sources, so a converted model is rebuilt from
its saved config alone (``load_model``) and trained by the engine (``model.source``).

Networks are built randomly initialised: no weights are downloaded. A user's pretrained weights
are loaded into the network before converting it (:func:`load_network_weights`: safetensors, or
``torch.load(weights_only=True)``, never unpickling).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from multidomain.convert.config import METHOD_DEFAULTS, SOURCE_OPTIONS
from multidomain.errors import ConfigError, DataError
from multidomain.models._registry import register_source
from multidomain.models.config import ModelConfig

TIMM_HINT = "timm is an optional extra: pip install 'multidomain[convert]'"


def build_network(source: str) -> nn.Module:
    """The randomly initialised network ``torchvision:NAME`` or ``timm:NAME`` names."""
    prefix, _, name = source.partition(":")
    if prefix == "torchvision":
        return _torchvision(name)
    if prefix == "timm":
        return _timm(name)
    raise ConfigError(
        f"cannot build {source!r}: the converter builds 'torchvision:NAME' or 'timm:NAME'"
    )


def _torchvision(name: str) -> nn.Module:
    import torchvision

    _check_torchvision(name)
    return torchvision.models.get_model(name, weights=None)


def _check_torchvision(name: str) -> None:
    import torchvision

    if name not in torchvision.models.list_models():
        raise ConfigError(
            f"unknown torchvision model {name!r}; e.g. mobilenet_v3_small, mobilenet_v2, "
            "efficientnet_b0, convnext_tiny (torchvision.models.list_models())"
        )


def _timm(name: str) -> nn.Module:
    import timm

    _check_timm(name)
    return timm.create_model(name, pretrained=False)


def _check_timm(name: str) -> None:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"cannot build timm:{name}: {TIMM_HINT}") from None
    if not timm.is_model(name):
        raise ConfigError(
            f"unknown timm model {name!r}; e.g. mobilenetv3_small_100, efficientnet_b0, "
            "convnext_tiny (timm.list_models())"
        )


def infer_source(network: nn.Module) -> str:
    """The source that builds ``network`` (so ``load_model`` can rebuild it): timm records it;
    for torchvision, the builder of the network's module whose network has the same shapes
    (the classifier aside). Else ``module:ClassName``, which saves but cannot be rebuilt."""
    architecture = getattr(network, "pretrained_cfg", {}).get("architecture")
    if architecture and type(network).__module__.startswith("timm."):
        return f"timm:{architecture}"
    if type(network).__module__.startswith("torchvision.models"):
        for name in _torchvision_candidates(type(network).__module__):
            if _same_shapes(network, name):
                return f"torchvision:{name}"
    return f"module:{type(network).__name__}"


def _torchvision_candidates(module_name: str) -> list[str]:
    import torchvision

    models = torchvision.models
    return [
        name
        for name in models.list_models(module=models)
        if models.get_model_builder(name).__module__ == module_name
    ]


def _same_shapes(network: nn.Module, name: str) -> bool:
    import torchvision

    try:
        with torch.device("meta"):  # shapes only
            candidate = torchvision.models.get_model(name, weights=None)
    except Exception:  # a builder that cannot run on the meta device is not the match
        return False
    ours = {k: v.shape for k, v in network.state_dict().items()}
    theirs = {k: v.shape for k, v in candidate.state_dict().items()}
    classifier = _last_linear(candidate)
    return {k: v for k, v in ours.items() if not k.startswith(classifier)} == {
        k: v for k, v in theirs.items() if not k.startswith(classifier)
    }


def _last_linear(network: nn.Module) -> str:
    return [p for p, m in network.named_modules() if isinstance(m, nn.Linear)][-1] + "."


def load_network_weights(network: nn.Module, path: str | os.PathLike) -> None:
    """Load a plain network's weights (a ``.safetensors`` file, or a PyTorch state dict read
    with ``torch.load(weights_only=True)``: never unpickled) strictly, before converting."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # weights_only refuses pickled objects other than tensors
            raise DataError(
                f"{path} is not a plain state dict ({err}); save it with "
                "torch.save(model.state_dict(), path) or as safetensors"
            ) from None
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"{path} does not fit {type(network).__name__}: {err}") from None


def _build(config: ModelConfig) -> nn.Module:
    from multidomain.convert.model import convert_with

    if config.width != 1.0:
        raise ConfigError(
            f"model.width={config.width}: a {config.source} network has its own width in its "
            "name (e.g. mobilenet_v3_small, mobilenetv3_small_050); leave width at 1.0"
        )
    return convert_with(build_network(config.source), config)


def _refuse_module(config: ModelConfig) -> nn.Module:
    raise ConfigError(
        f"{config.source} was converted from your own network, which multidomain cannot "
        "rebuild: convert your network again (convert(network, domains, ConvertConfig(...))) and "
        "load the weights with models.packs.load_shared / load_domain; or convert with "
        "ConvertConfig(source='torchvision:NAME' or 'timm:NAME')"
    )


for _prefix, _builder, _check in (
    ("torchvision", _build, _check_torchvision),
    ("timm", _build, _check_timm),
    ("module", _refuse_module, None),
):
    register_source(
        _prefix,
        _builder,
        default_method="pointwise",
        options=SOURCE_OPTIONS,
        method_defaults=METHOD_DEFAULTS,
        check_name=_check,
    )
