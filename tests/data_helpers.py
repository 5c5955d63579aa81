"""Tiny devkit trees for the data tests: a few images per split, written in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from multidomain.cli import main
from multidomain.data.devkit import category_id, image_id, split_document
from multidomain.decathlon import DOMAINS

# domain: (classes, (width, height)) — sizes as in the Decathlon (daimler is 72 wide, 144 high).
TINY_DOMAINS = {"svhn": (3, (72, 72)), "dtd": (3, (96, 72)), "daimlerpedcls": (2, (72, 144))}
PER_CLASS = 2  # images per class and split


def write_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    image.save(path, {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF"}[path.suffix])


def make_devkit(root: Path, domains: dict = TINY_DOMAINS) -> Path:
    """Write a labelled devkit tree (train/val/test + test_stripped) with Decathlon ids."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for domain, (classes, size) in domains.items():
        d = DOMAINS.index(domain) if domain in DOMAINS else sorted(domains).index(domain)
        categories = [{"id": category_id(d, c), "name": f"class{c}"} for c in range(classes)]
        running = 0
        for split in ("train", "val", "test"):
            images, labels = [], []
            for c in range(classes):
                for _ in range(PER_CLASS):
                    running += 1
                    ext = ".jpg" if running % 2 else ".png"
                    name = f"data/{domain}/{split}/{running:05d}{ext}"
                    write_image(root / name, size, running)
                    images.append(
                        {
                            "id": image_id(d, running),
                            "file_name": name,
                            "width": size[0],
                            "height": size[1],
                        }
                    )
                    labels.append(category_id(d, c))
            doc = split_document(images, labels, categories, "tiny")
            write_doc(root / "annotations" / f"{domain}_{split}.json", doc)
            if split == "test":
                stripped = split_document(images, None, categories, "tiny")
                write_doc(root / "annotations" / f"{domain}_test_stripped.json", stripped)
    return root


def write_doc(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc))


def read_doc(path: Path) -> dict:
    return json.loads(path.read_text())


def edit_split(tree: Path, split: str, change, domain: str = "svhn") -> dict:
    """Apply ``change(doc)`` to ``<domain>_<split>.json`` of ``tree``; returns the new doc."""
    path = tree / "annotations" / f"{domain}_{split}.json"
    doc = read_doc(path)
    change(doc)
    write_doc(path, doc)
    return doc


def run_cli(argv: list[str], monkeypatch) -> int:
    """Run ``multidomain`` with only this issue's command modules (data, score)."""
    monkeypatch.setattr("multidomain.cli._COMMAND_MODULES", ("data", "score"))
    return main(argv)
