"""Validate a devkit tree: what ``multidomain data check`` reports.

Problems (any makes the check fail): missing annotation files, empty splits, duplicate image or
annotation ids, labels outside the categories, annotations of unknown images, images with two
different labels, labelled images without a label, a benchmark ``num_classes`` below the
category count, a ``file_name`` that escapes the root (``devkit.file_name_problem``: the rule
``DecathlonDataset`` applies too), missing or undecodable images (decompression bombs included).
Info only: grey, CMYK, palette, RGBA or 16-bit images (the loader converts them to RGB).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multidomain.data.benchmark import load_benchmark
from multidomain.data.devkit import SPLITS, annotation_path, file_name_problem, read_json
from multidomain.data.images import CorruptImageError, load_rgb_and_mode

_RGB_MODES = {"RGB"}


@dataclass
class CheckReport:
    """Findings of ``check_tree``: ``problems`` fail the check, ``infos`` do not."""

    problems: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def list_domains(root: str | Path) -> list[str]:
    """Domains that have a train annotation file under ``root/annotations``."""
    folder = Path(root) / "annotations"
    return sorted(path.name[: -len("_train.json")] for path in folder.glob("*_train.json"))


def _split_path(root: Path, domain: str, split: str) -> Path | None:
    for stripped in (False, True) if split == "test" else (False,):
        path = annotation_path(root, domain, split, stripped=stripped)
        if path.is_file():
            return path
    return None


def _check_image(root: Path, file_name: str, where: str, report: CheckReport) -> None:
    path = root / file_name
    if not path.is_file():
        report.problems.append(f"{where}: missing image {file_name}")
        return
    try:
        mode = load_rgb_and_mode(path)[1]
    except CorruptImageError as err:
        report.problems.append(f"{where}: unreadable image {file_name} ({err.__cause__})")
        return
    if mode not in _RGB_MODES:
        report.infos.append(f"{where}: {mode} image {file_name} (loads as RGB)")


def _check_ids(items: list[dict], what: str, where: str, seen: set[int], report) -> None:
    """Duplicate ids inside one file, and against the domain's other files (``seen``)."""
    counts = Counter(item.get("id") for item in items)
    for value, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        if n > 1:
            report.problems.append(f"{where}: duplicate {what} id {value} ({n} times)")
        elif value in seen:
            report.problems.append(f"{where}: duplicate {what} id {value} (also in another split)")
    seen.update(counts)


def _check_labels(doc: dict[str, Any], where: str, report: CheckReport) -> None:
    categories = {cat.get("id") for cat in doc.get("categories") or []}
    image_ids = {img.get("id") for img in doc["images"]}
    labelled: dict[Any, Any] = {}
    for ann in doc.get("annotations") or []:
        if ann.get("category_id") not in categories:
            report.problems.append(
                f"{where}: annotation {ann.get('id')} has label {ann.get('category_id')} "
                "outside the categories"
            )
        if ann.get("image_id") not in image_ids:
            report.problems.append(
                f"{where}: annotation {ann.get('id')} names unknown image {ann.get('image_id')}"
            )
        first = labelled.setdefault(ann.get("image_id"), ann.get("category_id"))
        if first != ann.get("category_id"):
            report.problems.append(
                f"{where}: image {ann.get('image_id')} has two labels ({first} and "
                f"{ann.get('category_id')})"
            )
    if doc.get("annotations"):
        for unlabelled in sorted(image_ids - set(labelled), key=str):
            report.problems.append(f"{where}: image {unlabelled} has no annotation")


def _check_split(root: Path, domain: str, split: str, report: CheckReport, seen) -> int:
    where = f"{domain}/{split}"
    path = _split_path(root, domain, split)
    if path is None:
        report.problems.append(f"{where}: missing {annotation_path(root, domain, split)}")
        return 0
    try:
        doc = read_json(path)
    except ValueError as err:
        report.problems.append(f"{where}: {err}")
        return 0
    images = doc.get("images") or [] if isinstance(doc, dict) else []
    if not images:
        report.problems.append(f"{where}: empty split ({path.name} lists no images)")
        return 0
    _check_ids(images, "image", where, seen["image"], report)
    _check_ids(doc.get("annotations") or [], "annotation", where, seen["annotation"], report)
    _check_labels(doc, where, report)
    resolved_dirs: dict = {}
    for image in images:
        name = image.get("file_name", "")
        problem = file_name_problem(root, name, resolved_dirs)
        if problem is not None:
            report.problems.append(
                f"{where}: file_name {name!r} escapes the root {root}: it {problem}"
            )
        else:
            _check_image(root, name, where, report)
    return len(images)


def _check_num_classes(root: Path, domain: str, report: CheckReport) -> None:
    """The benchmark's ``num_classes`` must cover the train file's categories (the head size)."""
    try:
        info = load_benchmark(root).domains.get(domain)
        doc = read_json(annotation_path(root, domain, "train"))
        categories = len(doc.get("categories") or [])
    except (OSError, ValueError, AttributeError):
        return  # reported by the split checks, or no benchmark to compare with
    if info is not None and info.num_classes < categories:
        report.problems.append(
            f"{domain}: the benchmark gives num_classes={info.num_classes} but the annotations "
            f"list {categories} categories"
        )


def check_tree(root: str | Path, domains: list[str] | None = None) -> CheckReport:
    """Check the given domains (default: every domain with a train file) of a devkit tree.

    Raises:
        FileNotFoundError: when ``root`` has no ``annotations`` folder.
    """
    root = Path(root)
    if not (root / "annotations").is_dir():
        raise FileNotFoundError(f"{root} has no annotations/ folder: give a devkit root")
    report = CheckReport()
    domains = domains or list_domains(root)
    if not domains:
        report.problems.append(f"{root}: no <domain>_train.json in annotations/")
    for domain in domains:
        seen: dict[str, set[int]] = {"image": set(), "annotation": set()}
        report.counts[domain] = {
            split: _check_split(root, domain, split, report, seen) for split in SPLITS
        }
        _check_num_classes(root, domain, report)
    return report
