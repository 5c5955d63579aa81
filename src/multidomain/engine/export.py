"""One domain of a multi-domain model as a plain network, exported to ONNX or ``torch.export``.

:class:`SingleDomainNet` keeps only the chosen domain's layers (the others are removed) and
calls the trunk with that domain fixed, so the traced graph holds no domain selection at all;
batch norm runs in eval mode (running statistics). The batch size is dynamic. Every export is
checked before it is kept: the ONNX file with ONNX Runtime, the ``.pt2`` program by running it,
both against the multi-domain model (``ATOL``). A JSON file next to the export records the
domain's class names and preprocessing.

ONNX export uses torch's exporter (``dynamo=True``), which needs ``onnx`` and ``onnxscript``;
the check needs ``onnxruntime``: the ``export`` extra (``pip install multidomain[export]``).
TorchScript is not offered: it is deprecated in this torch.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multidomain.engine.predict import SET_CARD
from multidomain.errors import ConfigError
from multidomain.io import atomic_path, write_json
from multidomain.layers import Route, routing
from multidomain.models import MultiDomainNet
from multidomain.models.methods import get_method

FORMATS = ("onnx", "export")
OPSET = 18  # ONNX opset: ONNX Runtime 1.16+ runs it, as do most deployment runtimes
ATOL = 1e-4
MAX_BATCH = 4096


class SingleDomainNet(nn.Module):
    """``forward(x) -> logits`` of one domain of ``model`` (a copy: ``model`` is untouched)."""

    def __init__(self, model: MultiDomainNet, domain: str) -> None:
        super().__init__()
        if domain not in model.domains:
            raise ConfigError(
                f"the model has no domain {domain!r}; its domains: {list(model.domains)}"
            )
        net = copy.deepcopy(model).cpu().eval()
        if not get_method(net.config.method).mixes_domains:  # else every domain is needed
            for other in list(net.domains):
                if other != domain:
                    net.remove_domain(other)
        self.net, self.domain = net, domain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = Route.for_domain(self.domain, 0)  # one domain: the batch size plays no part
        with routing(route):
            return self.net.forward_head(self.net.forward_features(x, route), route)


def input_size(model: MultiDomainNet, domain: str, size: tuple[int, int] | None) -> tuple[int, int]:
    """``(height, width)`` of the exported input: ``size``, else the domain's test crop."""
    if size is not None:
        return size
    preprocess = model.card(domain).preprocess
    if preprocess is None or preprocess.crop == "none":
        raise ConfigError(
            f"the input size of domain {domain!r} is not known from its preprocessing "
            f"({'none saved' if preprocess is None else 'images used as stored'}): give "
            "--size HEIGHT WIDTH"
            + ("" if preprocess is not None else f", or {SET_CARD.format(domain=domain)}")
        )
    return preprocess.image_size, preprocess.image_size


def export_domain(
    model: MultiDomainNet,
    domain: str,
    fmt: str,
    out: str | os.PathLike,
    size: tuple[int, int] | None = None,
    opset: int = OPSET,
) -> dict[str, Any]:
    """Export ``domain`` of ``model`` to ``out`` (``fmt``: ``onnx`` or ``export``), check it
    against the multi-domain model, and write ``out`` + ``.json`` (class names,
    preprocessing, input shape). Returns that description.

    Raises:
        ConfigError: an unknown format or domain, an unknown input size, or missing packages.
        RuntimeError: when the exported network does not match the model (a bug).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    net = SingleDomainNet(model, domain).eval()
    height, width = input_size(model, domain, size)
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    out = Path(out)
    with torch.no_grad():
        net(example)  # one eager pass first: layers cache what they read off buffers
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            _export_onnx(net, example, tmp, opset)
        else:
            _export_program(net, example, tmp)
        _check(model, domain, fmt, tmp, example)
    card = model.card(domain)
    info = {
        "format": fmt,
        "domain": domain,
        "num_classes": model.domains[domain],
        "classes": list(card.classes),
        "preprocess": card.preprocess.to_dict() if card.preprocess else None,
        "input": {"name": "images", "shape": ["batch", 3, height, width], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", model.domains[domain]]},
        **({"opset": opset} if fmt == "onnx" else {}),
    }
    write_json(out.with_name(out.name + ".json"), info)
    return info


def _dynamic_batch() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it; fail with the fix)
    except ImportError as err:
        raise ConfigError(_missing("onnx and onnxscript", err)) from err
    program = torch.onnx.export(
        net,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=_dynamic_batch(),
        verbose=False,
    )
    program.save(str(path))


def _export_program(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    program = torch.export.export(net, (example,), dynamic_shapes=_dynamic_batch())
    buffer = io.BytesIO()  # torch.export.save wants a name ending in .pt2: not a temporary's
    with warnings.catch_warnings():  # weights that share no storage: nothing to group
        warnings.filterwarnings("ignore", message="No complete tensor found")
        torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())


def load_program(path: str | os.PathLike) -> nn.Module:
    """The module of a ``.pt2`` file this module wrote (weights stored as raw bytes)."""
    return torch.export.load(io.BytesIO(Path(path).read_bytes())).module()


def _missing(what: str, err: ImportError) -> str:
    return f"exporting needs {what} ({err}): pip install 'multidomain[export]'"


@torch.no_grad()
def _check(model: MultiDomainNet, domain: str, fmt: str, path: Path, example: torch.Tensor):
    """The export's outputs on batches of 1 and 3 against the multi-domain model's."""
    run = run_onnx(path) if fmt == "onnx" else load_program(path)
    model = model.eval()
    for batch in (1, 3):
        x = torch.randn(batch, *example.shape[1:], generator=torch.Generator().manual_seed(batch))
        expected = model(x.to(next(model.parameters()).device), domain).float().cpu()
        got = torch.as_tensor(run(x))
        tolerance = ATOL * max(1.0, float(expected.abs().max()))  # rounding grows with logits
        if got.shape != expected.shape or not torch.allclose(got, expected, atol=tolerance, rtol=0):
            raise RuntimeError(
                f"the {fmt} export of {domain!r} does not match the model at batch {batch} "
                f"(max difference {(got - expected).abs().max():.3g}): please report this bug"
            )


def run_onnx(path: str | os.PathLike, threads: int | None = None):
    """A function ``x -> logits`` running the ONNX file on ONNX Runtime's CPU provider
    (``threads``: its intra-op threads; None: its default)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ConfigError(_missing("onnxruntime", err)) from err
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor):
        return session.run(None, {"images": x.numpy()})[0]

    return run
