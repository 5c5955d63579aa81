"""Reading one image as RGB, with an error that names the file when it is unreadable.

Grey, CMYK, palette and RGBA images convert to RGB; 16-bit grey images (PNG mode ``I;16`` or
``I``) are scaled to 8 bits first (``convert("RGB")`` alone clips them to white). An image with
more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb) counts as undecodable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from multidomain.errors import DataError

# Pillow's modes for one channel of more than 8 bits: 16-bit grey PNG / TIFF, 32-bit integers.
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class CorruptImageError(DataError, OSError):
    """An image file that exists but cannot be decoded (or is a decompression bomb)."""


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode an image as RGB (grey, CMYK, palette and RGBA convert to RGB).

    Raises:
        FileNotFoundError: when the file does not exist.
        CorruptImageError: naming the file when it cannot be decoded.
    """
    return load_rgb_and_mode(path)[0]


def load_rgb_and_mode(path: str | Path) -> tuple[Image.Image, str]:
    """``load_rgb`` plus the file's own mode (``L``, ``CMYK``, ``I;16``...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image {path} not found: check the tree with `multidomain data check`"
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: a bomb either way
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return _to_rgb(image), image.mode
    except (*_UNREADABLE, Image.DecompressionBombWarning) as err:
        raise CorruptImageError(
            f"cannot decode image {path} ({err}): replace the file, or pass skip_bad=True "
            "to skip bad images (`multidomain data check` lists them all)"
        ) from err


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode not in _WIDE_GREY_MODES:
        return image.convert("RGB")
    # 0..65535 -> 0..255, rounded: 65535 / 257 = 255 exactly
    wide = np.asarray(image, dtype=np.float64).clip(0, 65535)
    grey = np.round(wide / 257.0).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` read from the header, or None when the file cannot be opened."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except _UNREADABLE:
        return None
