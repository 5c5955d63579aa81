"""Data: the Visual Decathlon devkit format, its loaders, and the offline mini-decathlon.

Public API (imported lazily, so that ``multidomain data``/``score`` start without torch):

- ``DecathlonDataset(root, domain, split, transform=None, ...)``   (``data.dataset``)
- ``build_transform``, ``domain_transform``                        (``data.transforms``)
- ``protocol_splits``, ``build_datasets``, ``build_loader``        (``data.loader``)
- ``load_benchmark``, ``set_baseline_accuracies``                  (``data.benchmark``)
- ``submission_entries``, ``write_submission``                     (``data.submission``)
- ``check_tree``                                                   (``data.check``)
- ``prepare_offline``                                              (``data.offline.builder``)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DecathlonDataset": "dataset",
    "build_transform": "transforms",
    "domain_transform": "transforms",
    "protocol_splits": "loader",
    "build_datasets": "loader",
    "build_loader": "loader",
    "load_benchmark": "benchmark",
    "set_baseline_accuracies": "benchmark",
    "submission_entries": "submission",
    "write_submission": "submission",
    "check_tree": "check",
    "prepare_offline": "offline.builder",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
