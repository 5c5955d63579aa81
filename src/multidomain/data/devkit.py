"""The Visual Decathlon devkit format (PAPER.md section 5): paths, prefixed ids, JSON I/O.

A devkit tree looks like::

    ROOT/annotations/<domain>_{train,val}.json
    ROOT/annotations/<domain>_test.json            (labelled, optional)
    ROOT/annotations/<domain>_test_stripped.json   (no annotations)
    ROOT/data/<domain>/...                         (images; every ``file_name`` starts with data/)

Each JSON file is COCO-like: ``images`` [{id, file_name, width, height}], ``annotations``
[{id, image_id, category_id}], ``categories`` [{id, name}]. Ids carry a domain prefix:
category id = 10,000,000 * (d + 1) + class + 1 and image id = 10,000,000 * (d + 1) + 200,000 + n,
with d the position of the domain in the sorted list of the benchmark's domains and n a running
index (from 1) over the domain's train, then val, then test images, so ids never collide across
splits or domains (aircraft's first test image is 10,206,668 = 10,000,000 + 200,000 + 3,334 +
3,333 + 1). Each image has one annotation whose id equals the image id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidomain.errors import ConfigError, DataError
from multidomain.io import read_json, write_json

ID_STRIDE = 10_000_000
IMAGE_ID_OFFSET = 200_000  # the devkit's image ids start at prefix + 200,001
SPLITS = ("train", "val", "test")


def category_id(domain_index: int, class_index: int) -> int:
    """Prefixed category id of class ``class_index`` of the domain at ``domain_index``."""
    return ID_STRIDE * (domain_index + 1) + class_index + 1


def image_id(domain_index: int, running_index: int) -> int:
    """The devkit's image id of the ``running_index``-th image (from 1: train, then val, then
    test) of the domain at ``domain_index``: prefix + 200,000 + running index."""
    largest = ID_STRIDE - IMAGE_ID_OFFSET - 1  # the id stays below the next domain's prefix
    if not 0 < running_index <= largest:
        raise ValueError(f"running index {running_index} out of range 1..{largest}")
    return ID_STRIDE * (domain_index + 1) + IMAGE_ID_OFFSET + running_index


def domain_index_of_id(prefixed_id: int) -> int:
    """The domain index encoded in a prefixed image or category id (the offset of image ids
    stays below the stride, so one division serves both)."""
    return prefixed_id // ID_STRIDE - 1


def annotation_path(root: str | Path, domain: str, split: str, stripped: bool = False) -> Path:
    """Path of ``<root>/annotations/<domain>_<split>.json`` (``_test_stripped`` if ``stripped``)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
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


def file_name_problem(
    root: str | Path, file_name: Any, resolved_dirs: dict | None = None
) -> str | None:
    """Why ``file_name`` cannot be read as an image of the tree at ``root``, or None when it can.

    The one rule that ``multidomain data check`` and ``DecathlonDataset`` share: a file name is
    a relative path that stays inside the root, neither absolute, nor with ``..`` parts, nor
    (itself or a folder on its way) a symbolic link that points outside the root.

    Args:
        root: the devkit root.
        file_name: the ``file_name`` of an annotation file's image.
        resolved_dirs: a cache of the folders read, shared by the calls for one tree (a million
            images live in a few thousand folders: each folder is read once).

    Returns:
        The problem, worded to follow the quoted file name ("is absolute", ...), or None.
    """
    if not isinstance(file_name, str):
        return f"is not a string (a {type(file_name).__name__})"
    if not file_name:
        return "is empty"
    if "\0" in file_name:
        return "contains a NUL character"
    posix = file_name.replace("\\", "/")
    if posix.startswith("/") or posix[1:2] == ":":  # /x, //server/x, C:\\x, C:x
        return "is absolute: file names are relative to the root"
    if ".." in posix.split("/"):
        return "contains '..' parts"
    cache = {} if resolved_dirs is None else resolved_dirs
    folder, _, name = file_name.rpartition("/")
    inside = _folder(root, "", cache)[0]
    resolved, links = _folder(root, folder, cache)
    if name in links:
        target = os.path.realpath(os.path.join(root, file_name))
    else:
        target = os.path.join(resolved, name)
    if target != inside and not target.startswith(inside.rstrip(os.sep) + os.sep):
        return f"goes through a symbolic link to {target}, outside the root"
    return None


def _folder(root: str | Path, folder: str, cache: dict) -> tuple[str, frozenset[str]]:
    """A folder's resolved path and the names of the symbolic links in it, read once: one
    ``scandir`` per folder instead of one ``lstat`` per image (a million images)."""
    if folder not in cache:
        path = os.path.join(root, folder)
        try:
            with os.scandir(path) as entries:
                links = frozenset(entry.name for entry in entries if entry.is_symlink())
        except OSError:  # missing or unreadable: reported when the image is read
            links = frozenset()
        cache[folder] = (os.path.realpath(path), links)
    return cache[folder]


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
    """Parse one devkit annotation file (labelled or stripped).

    Raises:
        DataError: naming the file and the fix when it is not a devkit annotation file, an
            annotation names an unknown image, an image has two different labels, or a
            labelled file leaves an image without a label.
    """
    path = Path(path)
    try:
        content = read_json(path)
    except ValueError as err:
        raise DataError(str(err)) from err
    images = content.get("images") if isinstance(content, dict) else None
    if not isinstance(images, list):
        raise DataError(f"{path} is not a devkit annotation file: it has no 'images' list")
    image_ids = [_field(img, "id", path, "image") for img in images]
    file_names = [_field(img, "file_name", path, "image") for img in images]
    labels = _labels(content.get("annotations") or [], set(image_ids), path)
    if labels:
        for image in image_ids:
            if image not in labels:
                raise DataError(
                    f"{path}: image {image} has no annotation although the file is labelled: "
                    f"add its label or remove the image ({_check_hint(path)})"
                )
    categories = content.get("categories") or []
    for category in categories:
        _field(category, "id", path, "category")
    return SplitRecords(
        image_ids=image_ids,
        file_names=file_names,
        category_ids=[labels.get(image, -1) for image in image_ids],
        categories=sorted(categories, key=lambda cat: cat["id"]),
        path=path,
    )


def _check_hint(path: Path) -> str:
    return f"`multidomain data check --root {path.parent.parent}` lists every problem"


def _field(item: Any, key: str, path: Path, what: str) -> Any:
    if not isinstance(item, dict) or key not in item:
        raise DataError(f"{path}: an {what} entry lacks its {key!r}: {str(item)[:80]}")
    return item[key]


def _labels(annotations: list, image_ids: set, path: Path) -> dict[Any, Any]:
    """Image id -> category id; refuses unknown images and images with two different labels."""
    labels: dict[Any, Any] = {}
    for ann in annotations:
        image = _field(ann, "image_id", path, "annotation")
        label = _field(ann, "category_id", path, "annotation")
        if image not in image_ids:
            raise DataError(
                f"{path}: annotation {ann.get('id')} names unknown image {image}: fix its "
                f"image_id or remove it ({_check_hint(path)})"
            )
        if labels.get(image, label) != label:
            raise DataError(
                f"{path}: image {image} has two labels ({labels[image]} and {label}): keep one "
                f"annotation per image ({_check_hint(path)})"
            )
        labels[image] = label
    return labels


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
