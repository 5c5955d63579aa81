"""``DecathlonDataset``: one domain's split(s) of a devkit tree as a torch Dataset.

The same class reads the real Visual Decathlon and the offline mini-decathlon: both are devkit
trees (PAPER.md section 5). The class index of a label is the position of its category id among
the sorted category ids; unlabelled (stripped) test images get label -1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from multidomain.data.benchmark import Benchmark, load_benchmark
from multidomain.data.devkit import SPLITS, SplitRecords, file_name_problem, read_split, split_file
from multidomain.data.images import CorruptImageError, image_size, load_rgb
from multidomain.data.transforms import RecipeTransform, domain_transform
from multidomain.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def _as_splits(split: str | Sequence[str]) -> tuple[str, ...]:
    splits = (split,) if isinstance(split, str) else tuple(split)
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ConfigError(f"bad split {split!r}: use one or more of {', '.join(SPLITS)}")
    return splits


class DecathlonDataset(Dataset):
    """Images and class indices of one domain of a devkit tree.

    Args:
        root: the devkit root (holds ``annotations/`` and ``data/``).
        domain: the domain's folder name (``svhn``, ``digits``, ...).
        split: ``train``, ``val``, ``test`` or a sequence of them (``("train", "val")``).
        transform: applied to the PIL RGB image; None uses the recipe's transform of the domain
            (training augmentation when ``train``).
        train: whether ``transform=None`` picks the training transform; default: "train" in split.
        skip_bad: skip undecodable images (counted in ``bad_files``) instead of raising.
        cache_images: keep every decoded image in memory (uint8, in the loading process), so
            each file is read and decoded once, not once per epoch. Costs ``3 * H * W`` bytes
            per image: for the small domains and the mini-decathlon, not for ImageNet.
        benchmark: the domains' facts; default: ``benchmark.json`` at ``root``, else the Decathlon.
            When given (or loaded for the transform), its ``num_classes`` of the domain must
            cover the annotation files' categories.

    Attributes:
        image_ids: prefixed image ids, in sample order.
        labels: class indices (-1 when unlabelled).
        categories: ``[{"id", "name"}]`` sorted by id; class ``i`` is ``categories[i]``.
        category_ids: the sorted category ids.
        num_classes: ``len(categories)``.
        bad_files: undecodable files met so far (in this process) with ``skip_bad``.

    Raises:
        DataError: at construction, naming the annotation file, when a ``file_name`` is
            absolute, has ``..`` parts or goes through a symbolic link out of the root, when
            the labels are inconsistent (see ``read_split``), or when ``benchmark`` gives the
            domain fewer classes than the annotation files list.
    """

    def __init__(
        self,
        root: str | Path,
        domain: str,
        split: str | Sequence[str],
        transform: Callable | None = None,
        train: bool | None = None,
        skip_bad: bool = False,
        benchmark: Benchmark | None = None,
        cache_images: bool = False,
    ) -> None:
        self.root = Path(root)
        self.domain = domain
        self.splits = _as_splits(split)
        self.skip_bad = skip_bad
        self.bad_files: list[str] = []
        self.cache: dict[int, torch.Tensor] | None = {} if cache_images else None
        if transform is None:
            benchmark = benchmark or load_benchmark(self.root)
            is_train = ("train" in self.splits) if train is None else train
            transform = domain_transform(benchmark, domain, is_train)
        self.transform = transform
        records = [read_split(split_file(self.root, domain, s)) for s in self.splits]
        self.categories = _common_categories(records, self.root, domain)
        self.category_ids = [cat["id"] for cat in self.categories]
        self.num_classes = len(self.categories)
        index = {cid: i for i, cid in enumerate(self.category_ids)}
        self.image_ids: list[int] = []
        self.file_names: list[str] = []
        self.labels: list[int] = []
        resolved_dirs: dict = {}
        for rec in records:
            _check_file_names(self.root, rec, resolved_dirs)
            self.image_ids += rec.image_ids
            self.file_names += rec.file_names
            self.labels += [_class_index(cid, index, rec) for cid in rec.category_ids]
        if benchmark is not None:
            _check_num_classes(benchmark, domain, self.num_classes, records[0])

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, idx: int) -> tuple[Any, int]:
        for attempt in range(len(self)):
            position = (idx + attempt) % len(self)
            try:
                image = self._image(position)
            except CorruptImageError as err:
                if not self.skip_bad:
                    raise
                self.bad_files.append(self.file_names[position])
                logger.warning("skipping undecodable image: %s", err)
                continue
            return self._transformed(image, position), self.labels[position]
        raise CorruptImageError(f"no decodable image in {self.domain} {'+'.join(self.splits)}")

    def _transformed(self, image, position: int):
        try:
            return self.transform(image)
        except DataError as err:  # e.g. an image smaller than the crop: name the file
            raise DataError(f"{self.root / self.file_names[position]}: {err}") from err

    def keep_first_per_class(self, limit: int) -> None:
        """Keep the first ``limit`` images of each class, in the split's order (a fixed subset:
        the same on every run); the classes stay as they are, however few images remain."""
        if self.cache:
            raise RuntimeError("keep_first_per_class before the first image is loaded")
        seen: dict[int, int] = {}
        kept = []
        for position, label in enumerate(self.labels):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= limit:
                kept.append(position)
        self.image_ids = [self.image_ids[i] for i in kept]
        self.file_names = [self.file_names[i] for i in kept]
        self.labels = [self.labels[i] for i in kept]

    def enable_cache(self) -> None:
        """Keep images decoded from now on (as the ``cache_images`` argument does)."""
        if self.cache is None:
            self.cache = {}

    def decoded_bytes(self) -> int:
        """Memory the cache takes once full, estimated from the first readable image's size
        (read from its header; unreadable files are left to the loading to report)."""
        for name in self.file_names:
            size = image_size(self.root / name)
            if size is not None:
                return 3 * size[0] * size[1] * len(self)
        return 0

    def _image(self, position: int):
        """The decoded image: PIL, or a uint8 ``(3, H, W)`` tensor from the cache."""
        if self.cache is None:
            return load_rgb(self.root / self.file_names[position])
        image = self.cache.get(position)
        if image is None:
            image = TF.pil_to_tensor(load_rgb(self.root / self.file_names[position]))
            self.cache[position] = image
        # the recipe transform takes the tensor as it is; a user's transform gets PIL as always
        return image if isinstance(self.transform, RecipeTransform) else TF.to_pil_image(image)

    def __repr__(self) -> str:
        return (
            f"DecathlonDataset(root={str(self.root)!r}, domain={self.domain!r}, "
            f"split={'+'.join(self.splits)!r}, images={len(self)}, classes={self.num_classes})"
        )


def _class_index(cid: int, index: dict[int, int], rec: SplitRecords) -> int:
    if cid < 0:
        return -1
    if cid not in index:
        raise DataError(
            f"{rec.path}: category id {cid} is not among the file's categories: fix the label "
            f"or add the category (`multidomain data check --root {rec.path.parent.parent}`)"
        )
    return index[cid]


def _check_file_names(root: Path, rec: SplitRecords, resolved_dirs: dict) -> None:
    """Refuse the first image path that ``data check`` would refuse (one rule for both)."""
    for name in rec.file_names:
        problem = file_name_problem(root, name, resolved_dirs)
        if problem is not None:
            raise DataError(
                f"{rec.path}: file_name {name!r} {problem}; images must lie inside {root}: "
                f"fix the file, and run `multidomain data check --root {root}` to list them all"
            )


def _check_num_classes(benchmark: Benchmark, domain: str, count: int, rec: SplitRecords) -> None:
    """A head smaller than the category count would fail mid-epoch (label out of range)."""
    info = benchmark.domains.get(domain)
    if info is not None and info.num_classes < count:
        where = benchmark.path or f"benchmark {benchmark.name!r}"
        raise DataError(
            f"{where} gives {domain!r} num_classes={info.num_classes}, but {rec.path} lists "
            f"{count} categories: set num_classes to at least {count}"
        )


def _common_categories(records: list[SplitRecords], root: Path, domain: str) -> list[dict]:
    """The categories shared by all files read; a stripped file borrows the train file's."""
    with_categories = [rec for rec in records if rec.categories]
    if not with_categories:
        return read_split(split_file(root, domain, "train")).categories
    first = with_categories[0]
    for rec in with_categories[1:]:
        if [c["id"] for c in rec.categories] != [c["id"] for c in first.categories]:
            raise DataError(
                f"{rec.path} and {first.path} list different categories: give every split of "
                "a domain the same categories"
            )
    return first.categories
