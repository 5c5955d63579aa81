"""The challenge submission file (PAPER.md section 5): a JSON list of prefixed id pairs.

``[{"image_id": <prefixed image id>, "category_id": <prefixed category id>}, ...]`` over the test
images of all domains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from multidomain.errors import DataError
from multidomain.io import read_json, write_json


def submission_entries(dataset, predicted_class_indices: Sequence[int]) -> list[dict[str, int]]:
    """Pair each image of ``dataset`` with the category id of its predicted class index.

    Args:
        dataset: a ``DecathlonDataset`` (needs ``image_ids`` and ``category_ids``), not shuffled.
        predicted_class_indices: one class index per image, in dataset order (a tensor works).

    Raises:
        ValueError: when the counts differ or an index is outside ``0..num_classes-1``.
    """
    predictions = [int(p) for p in predicted_class_indices]
    if len(predictions) != len(dataset.image_ids):
        raise ValueError(
            f"{len(predictions)} predictions for {len(dataset.image_ids)} images of "
            f"{dataset.domain!r}: predict every image, in dataset order (no shuffling)"
        )
    num_classes = len(dataset.category_ids)
    bad = [p for p in predictions if not 0 <= p < num_classes]
    if bad:
        raise ValueError(f"class index {bad[0]} out of range 0..{num_classes - 1}")
    return [
        {"image_id": int(image_id), "category_id": int(dataset.category_ids[p])}
        for image_id, p in zip(dataset.image_ids, predictions, strict=True)
    ]


def write_submission(path: str | Path, entries: Iterable[dict[str, int]]) -> Path:
    """Write the submission JSON atomically (temp file, fsync, rename); returns the path.

    Raises:
        ValueError: when an image id appears twice.
    """
    entries = list(entries)
    ids = [entry["image_id"] for entry in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("an image_id appears twice in the submission: predict each image once")
    path = Path(path)
    write_json(path, entries, indent=None)
    return path


def read_submission(path: str | Path) -> dict[int, int]:
    """``{image_id: category_id}`` of a submission file.

    Both ids must be JSON integers (not ``1.0``, ``"1"`` or ``true``), and each image appears
    once.

    Raises:
        DataError: naming the first malformed or repeated entry (by position and value).
    """
    content = read_json(path, "submission file")  # DataError when it is not JSON
    if not isinstance(content, list):
        raise DataError(
            f"{path}: a submission is a JSON list of {{image_id, category_id}} entries, "
            f"not a JSON {type(content).__name__}"
        )
    predictions: dict[int, int] = {}
    first_entry: dict[int, int] = {}
    for index, entry in enumerate(content):
        image, category = _entry_ids(entry, index, path)
        if image in predictions:
            raise DataError(
                f"{path}: entry {index} repeats image_id {image} of entry "
                f"{first_entry[image]}: predict each image once"
            )
        predictions[image] = category
        first_entry[image] = index
    return predictions


def _entry_ids(entry: object, index: int, path) -> tuple[int, int]:
    """The ``(image_id, category_id)`` of one submission entry, both JSON integers."""
    if not isinstance(entry, dict) or not {"image_id", "category_id"} <= entry.keys():
        raise DataError(
            f"{path}: entry {index} is {json.dumps(entry)[:80]}: expected image_id and category_id"
        )
    for key in ("image_id", "category_id"):
        value = entry[key]
        if type(value) is not int:  # bool is an int subclass: excluded too
            raise DataError(
                f"{path}: entry {index} has {key} {json.dumps(value)[:40]}: ids are JSON "
                "integers such as 30000001 (no quotes, no decimal point)"
            )
    return entry["image_id"], entry["category_id"]
