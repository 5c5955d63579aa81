"""Reading one image as RGB, with an error that names the file when it is unreadable."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


class CorruptImageError(OSError):
    """An image file that exists but cannot be decoded."""


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode an image as RGB (grey, CMYK, palette and RGBA convert to RGB).

    Raises:
        FileNotFoundError: when the file does not exist.
        CorruptImageError: naming the file when it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image {path} not found: check the tree with `multidomain data check`"
        )
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(
            f"cannot decode image {path} ({err}): replace the file, or pass skip_bad=True "
            "to skip bad images (`multidomain data check` lists them all)"
        ) from err
