"""Where each backbone's source weights come from (issue 10): the shipped pretrained source
weights where the package has them, else a pretraining stage of the compare's own."""

from __future__ import annotations

from pathlib import Path

from multidomain.engine.pretrained import (
    SHIPPED_PREFIX,
    has_shipped,
    shipped_name,
)


def pretrain_folder(out: Path, backbone: str, method: str, seed: int) -> Path:
    """The compare's own pretraining run of ``backbone`` under ``method`` for ``seed``."""
    return out / "pretrain" / f"{backbone}-{method}-s{seed}"


def source_init(
    backbone: str, method: str, seed: int, version: int, out: Path, quick: bool = False
) -> str | Path:
    """The value for ``model.init`` of every row that starts from ``backbone`` pretrained on the
    source domain under ``method`` (``Row.pretraining``), for ``seed`` and data ``version``.

    The pretraining the package ships for ``version``, ``backbone`` and ``method``
    (``shipped:NAME``: the plain one of each backbone, and ``resnet26_std`` with series
    adapters; the same weights for every seed: the seeds then vary the adaptation only), else the
    compare's own pretraining stage in ``DIR/pretrain/...`` (the plan adds that stage exactly
    when this returns :func:`pretrain_folder`). ``quick`` (width 0.125) always pretrains.
    """
    if not quick and has_shipped(version, backbone, method):
        return SHIPPED_PREFIX + shipped_name(version, backbone, method)
    return pretrain_folder(out, backbone, method, seed)
