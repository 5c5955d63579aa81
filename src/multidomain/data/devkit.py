"""The Visual Decathlon devkit format (PAPER.md section 5): paths, prefixed ids, JSON I/O.

A devkit tree looks like::

    ROOT/annotations/<domain>_{train,val}.json
    ROOT/annotations/<domain>_test.json            (labelled, optional)
    ROOT/annotations/<domain>_test_stripped.json   (no annotations)
    ROOT/data/<domain>/...                         (images; every ``file_name`` starts with data/)

Each JSON file is COCO-like: ``images`` [{id, file_name, width, height}], ``annotations``
[{id, image_id, category_id}], ``categories`` [{id, name}]. Ids carry a domain prefix:
category id = 10,000,000 * (d + 1) + class + 1 and image id = 10,000,000 * (d + 1) + n, with
d the position of the domain in the sorted list of the benchmark's domains and n a running index
(from 1) over the domain's train, val and test images, so ids never collide across splits or
domains. Each image has one annotation whose id equals the image id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidomain.io import read_json, write_json

ID_STRIDE = 10_000_000
SPLITS = ("train", "val", "test")


def category_id(domain_index: int, class_index: int) -> int:
    """Prefixed category id of class ``class_index`` of the domain at ``domain_index``."""
    return ID_STRIDE * (domain_index + 1) + class_index + 1


def image_id(domain_index: int, running_index: int) -> int:
    """Prefixed image id of the ``running_index``-th image (from 1) of a domain."""
    if not 0 < running_index < ID_STRIDE:
        raise ValueError(f"running index {running_index} out of range 1..{ID_STRIDE - 1}")
    return ID_STRIDE * (domain_index + 1) + running_index


def domain_index_of_id(prefixed_id: int) -> int:
    """The domain index encoded in a prefixed image or category id."""
    return prefixed_id // ID_STRIDE - 1


def annotation_path(root: str | Path, domain: str, split: str, stripped: bool = False) -> Path:
    """Path of ``<root>/annotations/<domain>_<split>.json`` (``_test_stripped`` if ``stripped``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    suffix = "test_stripped" if stripped else split
    return Path(root) / "annotations" / f"{domain}_{suffix}.json"


def split_file(root: str | Path, domain: str, split: str) -> Path:
    """The annotation file that holds ``split``: the labelled test file when present.

    Raises:
        FileNotFoundError: naming the file(s) looked for.
    """
    path = annotation_path(root, domain, split)
    if path.is_file():
        return path
    if split == "test":
        stripped = annotation_path(root, domain, split, stripped=True)
        if stripped.is_file():
            return stripped
        raise FileNotFoundError(
            f"no test annotations for {domain!r}: neither {path} nor {stripped}"
        )
    raise FileNotFoundError(
        f"annotation file {path} not found: is {root} a devkit root (it must hold annotations/)?"
    )


@dataclass(frozen=True)
class SplitRecords:
    """The parsed content of one annotation file.

    Attributes:
        image_ids: prefixed image ids, in file order.
        file_names: each image's path relative to the root (``data/...``).
        category_ids: each image's category id, or -1 where the file has no labels.
        categories: ``[{"id", "name"}]`` sorted by id.
        path: the file read.
    """

    image_ids: list[int]
    file_names: list[str]
    category_ids: list[int]
    categories: list[dict[str, Any]]
    path: Path

    @property
    def labelled(self) -> bool:
        return any(cid >= 0 for cid in self.category_ids)


def read_split(path: str | Path) -> SplitRecords:
    """Parse one devkit annotation file (labelled or stripped)."""
    content = read_json(path)
    if not isinstance(content, dict) or "images" not in content:
        raise ValueError(f"{path} is not a devkit annotation file: it has no 'images' list")
    labels = {ann["image_id"]: ann["category_id"] for ann in content.get("annotations") or []}
    images = content["images"]
    return SplitRecords(
        image_ids=[img["id"] for img in images],
        file_names=[img["file_name"] for img in images],
        category_ids=[labels.get(img["id"], -1) for img in images],
        categories=sorted(content.get("categories") or [], key=lambda cat: cat["id"]),
        path=Path(path),
    )


def write_json_atomic(path: str | Path, content: Any, indent: int | None = None) -> None:
    """Write JSON deterministically (sorted keys), atomically."""
    write_json(path, content, indent=indent, sort_keys=True)


def split_document(
    images: list[dict[str, Any]],
    labels: list[int] | None,
    categories: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    """Assemble a COCO-like devkit document; ``labels`` (category ids) None for a stripped file."""
    document: dict[str, Any] = {
        "info": {"description": description},
        "licenses": [],
        "images": images,
        "categories": categories,
        "annotations": [],
    }
    if labels is not None:
        document["annotations"] = [
            {"id": img["id"], "image_id": img["id"], "category_id": cid}
            for img, cid in zip(images, labels, strict=True)
        ]
    return document
