"""What a domain's user needs besides its weights: class names and preprocessing.

A :class:`DomainCard` travels with the domain's pack (its safetensors metadata), so a pack
imported into another copy of the model predicts with its own classes and its own crop and
normalisation (PAPER.md section 4: per-domain mean/std, crop policy, 72 px test crop).

Also the fingerprint of the shared weights a pack was trained with (:func:`shared_fingerprint`):
a domain's own weights only make sense on top of those.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

CROP_POLICIES = ("random_crop", "center_crop", "none")


@dataclass(frozen=True)
class Preprocess:
    """The evaluation-time transform of a domain: crop policy, RGB mean/std in [0, 1], the
    test crop (``image_size``) and the training crop (``crop_size``) of its benchmark."""

    crop: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    crop_size: int

    def __post_init__(self) -> None:
        if self.crop not in CROP_POLICIES:
            raise ValueError(f"unknown crop policy {self.crop!r}: choose one of {CROP_POLICIES}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0: {self.mean}, {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class DomainCard:
    """Class names (index ``i`` is class ``i`` of the head) and preprocessing of a domain;
    either may be unknown for packs written before cards existed."""

    classes: tuple[str, ...] = ()
    preprocess: Preprocess | None = None

    def to_fields(self) -> dict[str, Any]:
        """The pack metadata fields (only what is known)."""
        fields: dict[str, Any] = {}
        if self.classes:
            fields["classes"] = list(self.classes)
        if self.preprocess is not None:
            fields["preprocess"] = self.preprocess.to_dict()
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> DomainCard:
        """The card stored in a pack's metadata (an empty one for older packs).

        Raises:
            ValueError: for a malformed ``classes`` or ``preprocess`` field.
        """
        classes = fields.get("classes") or ()
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a list of names, got {classes!r}")
        preprocess = fields.get("preprocess")
        if preprocess is not None:
            if not isinstance(preprocess, Mapping):
                raise ValueError(f"preprocess must be a mapping, got {preprocess!r}")
            preprocess = Preprocess(**preprocess)
        return cls(tuple(classes), preprocess)

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (its number when the names are unknown)."""
        return self.classes[index] if index < len(self.classes) else str(index)


def shared_fingerprint(shared: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the shared tensors (device and
    memory format play no part)."""
    digest = hashlib.sha256()
    for key in sorted(shared):
        tensor = shared[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
