"""Parameter accounting: the "#par" column of the Decathlon tables (PAPER.md sections 2 and 7).

Shared parameters are counted once; each domain's own parameters (head included) once per
domain. ``relative`` is the total without heads over one ``resnet26_std`` without its head (one
ResNet-26 = 1x, the tables' convention), at the same width.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from multidomain.models import ModelConfig, build_model
from multidomain.models.roles import named_parameter_info

REFERENCE_MODEL = "resnet26_std"


@dataclass
class ParamReport:
    model: str  # the model's source
    method: str
    shared: int
    per_domain: dict[str, int]  # heads included
    heads: dict[str, int]
    total: int
    reference: int  # one resnet26_std without its head
    relative: float

    def to_dict(self) -> dict:
        """The report as JSON-ready values; ``share`` repeats ``method`` under its earlier
        name, for scripts written against earlier versions."""
        return {**asdict(self), "share": self.method}


def count_parameters(model: nn.Module) -> ParamReport:
    """Count shared, per-domain and head parameters of a multi-domain model."""
    shared = 0
    per_domain = dict.fromkeys(model.domains, 0)
    heads = dict.fromkeys(model.domains, 0)
    for _, param, info in named_parameter_info(model):
        if info.domain is None:
            shared += param.numel()
            continue
        per_domain[info.domain] += param.numel()
        if info.role == "head":
            heads[info.domain] += param.numel()
    total = shared + sum(per_domain.values())
    reference = reference_parameters(model.config.width)
    return ParamReport(
        model=model.config.source,
        method=model.config.method,
        shared=shared,
        per_domain=per_domain,
        heads=heads,
        total=total,
        reference=reference,
        relative=(total - sum(heads.values())) / reference,
    )


def reference_parameters(width: float = 1.0) -> int:
    """Parameters of one ``resnet26_std`` without its head (5,814,688 at width 1)."""
    config = ModelConfig(source=REFERENCE_MODEL, domains={"reference": 1}, width=width)
    return _shape_count(_config_key(config), with_heads=False)


def independent_parameters(model: nn.Module) -> int:
    """Parameters of one independent network per domain (same architecture and heads): the
    cost of not sharing anything, against which the paper's savings are measured."""
    config = dataclasses.replace(model.config, method="none", method_options={})
    return _shape_count(_config_key(config), with_heads=True)


def _config_key(config: ModelConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


@functools.cache
def _shape_count(config_key: str, with_heads: bool) -> int:
    """Parameters of the model ``config_key`` (a :class:`ModelConfig` as JSON) describes, read
    off a copy built on the meta device: shapes only, nothing allocated, nothing initialised.
    Remembered per configuration: a compare evaluates many runs of one architecture."""
    with torch.device("meta"), _SkipInit():
        model = build_model(ModelConfig.from_dict(json.loads(config_key)))
    return sum(
        p.numel() for _, p, info in named_parameter_info(model) if with_heads or info.role != "head"
    )


class _SkipInit(TorchFunctionMode):
    """Skips ``torch.nn.init``'s fills (and the tensor methods they call). On the meta device
    they write no values, yet run torch's slow Python reference kernels (``torch._refs``):
    most of the time a parameter count took."""

    SKIPPED = frozenset(
        [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
        + ["normal_", "uniform_", "fill_", "zero_", "exponential_", "random_", "bernoulli_"]
    )

    def __torch_function__(self, func, types, args=(), kwargs=None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def format_report(report: ParamReport) -> str:
    """A plain-text table of a :class:`ParamReport`."""
    rows = [("shared", report.shared, None)]
    rows += [(d, n, report.heads[d]) for d, n in report.per_domain.items()]
    name_width = max(12, *(len(name) for name, _, _ in rows))
    lines = [
        f"{report.model} (method {report.method}), {len(report.per_domain)} domains",
        f"{'part':<{name_width}} {'parameters':>12} {'own w/o head':>13} {'head':>10}",
    ]
    for name, count, head in rows:
        own = "" if head is None else f"{count - head:,}"
        head_text = "" if head is None else f"{head:,}"
        lines.append(f"{name:<{name_width}} {count:>12,} {own:>13} {head_text:>10}")
    heads = sum(report.heads.values())
    lines += [
        f"{'total':<{name_width}} {report.total:>12,}",
        f"{'w/o heads':<{name_width}} {report.total - heads:>12,}",
        f"relative to one {REFERENCE_MODEL} without head ({report.reference:,}): "
        f"{report.relative:.2f}x",
    ]
    return "\n".join(lines)
