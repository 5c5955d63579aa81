"""``letters``: printed capitals A-Z rendered with Pillow from matplotlib's bundled TTF fonts.

Dark glyphs on a light background; each sample cycles through the fonts with its own jitter.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from multidomain.data.offline.common import SourceImages, package_dir

SOURCE = "matplotlib mpl-data/fonts/ttf text fonts (DejaVu, STIX, BaKoMa licences), jittered"
# Fonts without Latin capitals (symbol, size-variant and fallback fonts).
_SKIP_PREFIXES = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "LastResort")


def text_fonts() -> list[Path]:
    """The bundled TTF files that draw the letters A and B as two different glyphs."""
    folder = package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf"
    fonts = []
    for path in sorted(folder.glob("*.ttf")):
        if path.name.startswith(_SKIP_PREFIXES):
            continue
        a, b = (_glyph(path, ch, 48, 0.0, (0, 0)) for ch in "AB")
        if a.getbbox() and ImageChops.difference(a, b).getbbox():
            fonts.append(path)
    return fonts


def _glyph(font_path: Path, char: str, size: int, angle: float, shift: tuple[int, int]):
    """White-on-black mask of one glyph, centred (plus ``shift``) and rotated."""
    canvas = Image.new("L", (size, size), 0)
    font = ImageFont.truetype(str(font_path), size=max(8, int(size * 0.6)))
    centre = (size / 2 + shift[0], size / 2 + shift[1])
    ImageDraw.Draw(canvas).text(centre, char, fill=255, font=font, anchor="mm")
    return canvas.rotate(angle, resample=Image.Resampling.BILINEAR)


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` renderings of each capital letter, fonts cycled in a random order."""
    fonts = text_fonts()
    if not fonts:
        raise FileNotFoundError("matplotlib ships no usable TTF font: reinstall matplotlib")
    images, labels = [], []
    for label, char in enumerate(string.ascii_uppercase):
        order = rng.permutation(len(fonts))
        for i in range(per_class):
            shift = tuple(int(v) for v in rng.integers(-size // 12, size // 12 + 1, size=2))
            mask = _glyph(fonts[order[i % len(fonts)]], char, size, rng.uniform(-10, 10), shift)
            images.append(255 - np.asarray(mask))
            labels.append(label)
    names = list(string.ascii_uppercase)
    return SourceImages(np.stack(images), np.array(labels, dtype=np.int64), names, SOURCE)
