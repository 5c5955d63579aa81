"""Reading a Broden probe set in its published layout (Bau et al. 2017).

``index.csv``: one row per image with ``image, split, ih, iw, sh, sw`` and one column per
category, each a ``;``-separated list of mask PNGs (pixel labels, label = R + 256 * G) or of
label numbers (image-level labels: scene, texture). An empty cell: the category is not annotated
in that image. ``label.csv``: ``number, name, category, ...`` where ``category`` reads
``object(12);part(3)`` (per category, how often the label appears); a label's category is the one
where it appears most (NetDissect's primary category). ``c_<category>.csv`` lists each
category's labels (``code, number, name, ...``); the categories are those with such a file.
Images and masks live under ``images/``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from multidomain.errors import DataError
from multidomain.interpret.probe import Concepts, ProbeBatch

META_COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")
# Broden's categories from low to high level; others follow in file order
LEVEL_ORDER = ("color", "texture", "material", "part", "object", "scene")
_CATEGORY_COUNT = re.compile(r"^([^(]+)\((\d+)\)$")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path} is missing: a Broden folder holds index.csv, label.csv, c_*.csv")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _primary_category(field: str, known: tuple[str, ...], path: Path) -> str | None:
    counts = {}
    for part in filter(None, field.split(";")):
        match = _CATEGORY_COUNT.match(part.strip())
        if not match:
            raise DataError(f"{path}: category {field!r} is not like 'object(12);part(3)'")
        counts[match.group(1)] = int(match.group(2))
    counts = {c: n for c, n in counts.items() if c in known}
    return max(counts, key=lambda c: (counts[c], -known.index(c))) if counts else None


class BrodenProbe:
    """A Broden-format probe set at ``root`` (optionally one split, the first ``limit`` images)."""

    def __init__(self, root: str | Path, split: str | None = None, limit: int | None = None):
        self.root = Path(root)
        found = sorted(p.stem[2:] for p in self.root.glob("c_*.csv"))
        categories = tuple(c for c in LEVEL_ORDER if c in found) + tuple(
            c for c in found if c not in LEVEL_ORDER
        )
        if not categories:
            raise DataError(f"{self.root} has no c_*.csv file: it is not a Broden folder")
        self.rows = [
            r for r in _read_csv(self.root / "index.csv") if split is None or r["split"] == split
        ]
        if limit is not None:
            self.rows = self.rows[:limit]
        if not self.rows:
            raise DataError(f"{self.root}/index.csv lists no image (split {split!r})")
        self._read_labels(categories)
        self.description = (
            f"Broden folder {self.root}: {len(self.rows)} images, {len(self.concepts)} concepts"
        )

    def _read_labels(self, categories: tuple[str, ...]) -> None:
        path = self.root / "label.csv"
        names, cats, numbers = [], [], []
        for row in _read_csv(path):
            category = _primary_category(row.get("category", ""), categories, path)
            if int(row["number"]) == 0 or category is None:
                continue
            numbers.append(int(row["number"]))
            names.append(row["name"])
            cats.append(category)
        self.concepts = Concepts(tuple(names), tuple(cats), categories)
        # Broden label number -> concept index + 1 (0: no concept)
        self.code = np.zeros(max(numbers, default=0) + 1, dtype=np.int16)
        self.code[numbers] = np.arange(1, len(numbers) + 1)
        self.depth = max(sum(len(_items(row.get(c, ""))) for c in categories) for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def mask_size(self) -> tuple[int, int]:
        return int(self.rows[0]["sh"]), int(self.rows[0]["sw"])

    def _image(self, row: dict[str, str], size: tuple[int, int]) -> np.ndarray:
        image = Image.open(self.root / "images" / row["image"]).convert("RGB")
        if image.size != (size[1], size[0]):  # every probe image is fed at one size
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(image)

    def _labels(self, row: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
        shape = self.mask_size
        channels, annotated = [], []
        for category in self.concepts.category_names:
            items = _items(row.get(category, ""))
            annotated.append(bool(items))
            for item in items:
                channels.append(self._channel(item, shape))
        labels = np.zeros((self.depth, *shape), dtype=np.int16)
        labels[: len(channels)] = channels
        return labels, np.array(annotated)

    def _channel(self, item: str, shape: tuple[int, int]) -> np.ndarray:
        if item.isdigit():  # an image-level label: the whole image
            return np.full(shape, self._lookup(np.array(int(item))), dtype=np.int16)
        rgb = np.asarray(Image.open(self.root / "images" / item).convert("RGB")).astype(np.int64)
        if rgb.shape[:2] != shape:
            raise DataError(f"{item} is {rgb.shape[1]}x{rgb.shape[0]}, index.csv says {shape}")
        return self._lookup(rgb[..., 0] + 256 * rgb[..., 1])

    def _lookup(self, numbers: np.ndarray) -> np.ndarray:
        known = numbers < len(self.code)
        return np.where(known, self.code[np.minimum(numbers, len(self.code) - 1)], 0)

    def batch(self, indices: np.ndarray) -> ProbeBatch:
        rows = [self.rows[int(i)] for i in indices]
        size = (int(self.rows[0]["ih"]), int(self.rows[0]["iw"]))
        parts = [self._labels(row) for row in rows]
        return ProbeBatch(
            indices=np.asarray(indices, dtype=np.int64),
            images=np.stack([self._image(row, size) for row in rows]),
            labels=np.stack([labels for labels, _ in parts]),
            annotated=np.stack([annotated for _, annotated in parts]),
        )

    def batches(self, batch_size: int) -> Iterator[ProbeBatch]:
        for start in range(0, len(self), batch_size):
            yield self.batch(np.arange(start, min(start + batch_size, len(self))))


def _items(cell: str) -> list[str]:
    return [item for item in (cell or "").split(";") if item]
