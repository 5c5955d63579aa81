"""The rows of the paper's comparison table (issue 10, PAPER.md section 7): named presets over
the registered methods, each saying its backbone, its method, where its weights start and what a
target trains. ``multidomain params --method ROW`` counts a row; ``multidomain compare`` trains
and evaluates them.

Where a row starts (``init``):

- ``random``: every target trains from random init; the source domain's network is the
  backbone trained from scratch on the source, i.e. its plain pretraining (as on the
  Decathlon, where the scratch and fine-tuning rows share the ImageNet network: PAPER.md
  section 7, "one network per domain trained from random init");
- ``pretrained``: the backbone pretrained on the source domain, plain (``pretrain_method``);
- ``pretrained-with-method``: the source network pretrained with the row's method in place
  (series adapters, Rebuffi's protocol);
- ``row:NAME``: the trained model of another row (soft sharing starts from ``pointwise``), an
  extra stage whose epochs the table counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidomain.engine.pretrained import PRETRAIN_METHOD
from multidomain.errors import ConfigError
from multidomain.registry import Registry


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        name: the row's name (``--methods`` of compare, ``--method`` of params).
        source: the backbone (a registered model).
        method: the registered method.
        init: where its weights start (see the module docstring).
        recipe: the shipped mini-decathlon recipe it trains with.
        overrides: ``--set`` values over the recipe.
        trains: what a target trains, as the table says it.
        rq: the research question the row answers, if any.
    """

    name: str
    source: str
    method: str
    init: str
    recipe: str
    overrides: tuple[str, ...]
    trains: str
    rq: str = ""

    @property
    def pretraining(self) -> tuple[str, str] | None:
        """``(source, method)`` of the pretraining this row starts from (None: none)."""
        if self.init in ("pretrained", "random"):  # random: the source's own network
            return (self.source, PRETRAIN_METHOD[self.source])
        if self.init == "pretrained-with-method":
            return (self.source, self.method)
        return None

    @property
    def after(self) -> str | None:
        """The row whose trained model this one starts from."""
        return self.init.removeprefix("row:") if self.init.startswith("row:") else None


STD = ("model.source=resnet26_std",)

_ROWS: Registry[Row] = Registry("row")


def register_row(row: Row) -> Row:
    return _ROWS.add(row.name, row)


def get_row(name: str) -> Row:
    return _ROWS.get(name)


def list_rows() -> list[str]:
    return _ROWS.names()


def is_row(name: str) -> bool:
    return name in _ROWS


def select_rows(spec: str) -> list[Row]:
    """``paper`` (the ten rows of the table), ``all`` (every registered row) or
    ``m1,m2,...``; rows a selected row starts from are added before it."""
    names = PAPER_ROWS if spec == "paper" else list_rows() if spec == "all" else spec.split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ConfigError(f"--methods {spec!r} names no row: give paper, all or {list_rows()}")
    picked: list[str] = []
    for name in names:
        row = get_row(name)
        if row.after and row.after not in picked:
            picked.append(row.after)
        if name not in picked:
            picked.append(name)
    return [get_row(n) for n in picked]


for _row in (
    Row("scratch", "resnet26_std", "none", "random", "mini/finetune",
        (*STD, "model.new_domains=random"), "everything it owns"),
    Row("finetune", "resnet26_std", "none", "pretrained", "mini/finetune", STD,
        "everything it owns"),
    Row("feature", "resnet26_std", "all", "pretrained", "mini/adapt",
        (*STD, "model.method=all", "optim.train=[head]"), "head"),
    Row("bn", "resnet26_std", "all", "pretrained", "mini/adapt",
        (*STD, "model.method=all", "optim.train=[norm, head]"), "norm, head"),
    Row("series", "resnet26_std", "series", "pretrained-with-method", "mini/series", (),
        "adapters, norm, head"),
    Row("parallel", "resnet26_std", "parallel", "pretrained", "mini/parallel", (),
        "adapters, norm, head"),
    Row("pointwise", "resnet26_dw", "pointwise", "pretrained", "mini/adapt", (),
        "depthwise, norm, own last pointwise, head", "the paper"),
    Row("depthwise", "resnet26_dw", "depthwise", "pretrained", "mini/adapt",
        ("model.method=depthwise",), "pointwise, norm, head", "RQ2"),
    Row("soft", "resnet26_dw", "soft", "row:pointwise", "mini/soft", (),
        "gates, norm, own last pointwise, head", "RQ3"),
    Row("finetune-dw", "resnet26_dw", "none", "pretrained", "mini/finetune",
        ("model.source=resnet26_dw",),
        "everything it owns"),
):  # fmt: skip
    register_row(_row)

PAPER_ROWS = list_rows()
