"""Where each backbone's source weights come from (issue 10): one function, so that shipped
pretrained source weights can replace the pretraining stage with a one-line change."""

from __future__ import annotations

from pathlib import Path


def pretrain_folder(out: Path, backbone: str, method: str, seed: int) -> Path:
    """The compare's own pretraining run of ``backbone`` under ``method`` for ``seed``."""
    return out / "pretrain" / f"{backbone}-{method}-s{seed}"


def source_init(backbone: str, method: str, seed: int, version: int, out: Path) -> Path:
    """The value for ``model.init`` of every row that starts from ``backbone`` pretrained on the
    source domain under ``method`` (``Row.pretraining``), for ``seed`` and data ``version``.

    Today: the compare's own pretraining stage, trained into ``DIR/pretrain/...`` (the plan
    adds that stage exactly when this returns :func:`pretrain_folder`). To use shipped source
    weights instead, return their model folder here; the plan then trains no pretraining.
    """
    del version  # the shipped weights will be per data version
    return pretrain_folder(out, backbone, method, seed)
