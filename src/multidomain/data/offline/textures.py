"""``textures``: patches cut from texture tiles.

Always: scikit-image's brick, grass and gravel (512x512 grey, CC0). When Debian's ``gimp-data``
is installed, also every seamless ``.pat`` tile under ``/usr/share/gimp/2.0/patterns`` (one class
per tile). Each patch has a random size, position and quarter-turn, resized to the target size.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from multidomain.data.offline.common import SourceImages, resize_square

GIMP_PATTERNS = Path("/usr/share/gimp/2.0/patterns")
SOURCE = "scikit-image data.brick/grass/gravel (CC0); GIMP .pat tiles when installed (GPL)"
_PATCH = (64, 160)  # patch side range in source pixels


def read_pat(path: str | Path) -> np.ndarray:
    """Pixels of a GIMP ``.pat`` file: (H, W) grey or (H, W, 3) RGB uint8, alpha dropped.

    The header is five big-endian uint32 (header size, version, width, height, bytes per
    pixel), the magic ``GPAT`` and a name; the raw pixels follow the header.

    Raises:
        ValueError: naming the file when it is not a GIMP pattern.
    """
    raw = Path(path).read_bytes()
    header_size, _version, width, height, depth = struct.unpack(">5I", raw[:20])
    if raw[20:24] != b"GPAT" or depth not in (1, 2, 3, 4):
        raise ValueError(f"{path} is not a GIMP pattern (.pat) file")
    pixels = np.frombuffer(raw, np.uint8, width * height * depth, header_size)
    pixels = pixels.reshape(height, width, depth)
    return pixels[..., 0] if depth <= 2 else pixels[..., :3]


def gimp_tiles(folder: Path = GIMP_PATTERNS) -> dict[str, np.ndarray]:
    """``{"Folder/name": pixels}`` of every readable ``.pat`` tile; empty when not installed."""
    tiles = {}
    for path in sorted(folder.rglob("*.pat")) if folder.is_dir() else []:
        try:
            tiles[path.relative_to(folder).with_suffix("").as_posix()] = read_pat(path)
        except (ValueError, struct.error):
            continue
    return tiles


def cut_patch(tile: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square patch of a (seamless) tile, resized to ``size``."""
    side = int(rng.integers(_PATCH[0], _PATCH[1] + 1))
    reps = (-(-2 * side // tile.shape[0]), -(-2 * side // tile.shape[1]))
    big = np.tile(tile, reps + (1,) * (tile.ndim - 2))  # seamless tiles repeat cleanly
    top = int(rng.integers(0, big.shape[0] - side + 1))
    left = int(rng.integers(0, big.shape[1] - side + 1))
    patch = np.rot90(big[top : top + side, left : left + side], k=int(rng.integers(4)))
    return resize_square(np.ascontiguousarray(patch), size)


def load(
    rng: np.random.Generator, per_class: int, size: int, gimp: Path | None = GIMP_PATTERNS
) -> SourceImages:
    """``per_class`` patches of every texture tile (GIMP's from ``gimp`` when given)."""
    from skimage import data

    tiles = {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel()}
    tiles.update(gimp_tiles(gimp) if gimp is not None else {})
    patches, labels = [], []
    for label, tile in enumerate(tiles.values()):
        for _ in range(per_class):
            patch = cut_patch(tile, size, rng)
            patches.append(patch if patch.ndim == 3 else np.repeat(patch[..., None], 3, axis=2))
            labels.append(label)
    return SourceImages(np.stack(patches), np.array(labels, dtype=np.int64), list(tiles), SOURCE)
