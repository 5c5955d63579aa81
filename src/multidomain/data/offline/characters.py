"""``characters``: multi-alphabet handwriting-like glyphs (Omniglot-like) from Hershey-Fonts.

Each class is one (alphabet font, glyph) pair; each sample is drawn with its own random affine
jitter and stroke width, white strokes on black as in the Decathlon's omniglot.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from multidomain.data.offline.common import SourceImages
from multidomain.data.offline.render import fit_segments, random_affine

ALPHABETS = ("cyrillic", "gothicger", "greek", "japanese", "scripts")
GLYPHS = "ABCDEFGHIJKLMNOPQRST"
SOURCE = "Hershey-Fonts 2.1 vector fonts " + ",".join(ALPHABETS) + " (MIT), jittered"
_SUPERSAMPLE = 2


def _draw(segments, size: int, rng: np.random.Generator) -> np.ndarray:
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    matrix = random_affine(rng, max_degrees=12.0, scale=(0.8, 1.1))
    shift = rng.uniform(-0.06, 0.06, size=2) * big
    width = int(rng.integers(2, 5)) * _SUPERSAMPLE * size // 72 or 1
    for line in fit_segments(segments, big, matrix, shift):
        draw.line(line, fill=255, width=width)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX))


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` jittered drawings of each (alphabet, glyph) class."""
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    images, labels, names = [], [], []
    for alphabet in ALPHABETS:
        font.load_default_font(alphabet)
        for glyph in GLYPHS:
            segments = list(font.lines_for_text(glyph))
            if not segments:
                continue
            for _ in range(per_class):
                images.append(_draw(segments, size, rng))
                labels.append(len(names))
            names.append(f"{alphabet}/{glyph}")
    return SourceImages(np.stack(images), np.array(labels, dtype=np.int64), names, SOURCE)


def distinct_glyphs(fonts: tuple[tuple[str, str], ...]) -> list[tuple[str, list]]:
    """``(font/char, segments)`` of every glyph of each ``(font, chars)`` pair, keeping the
    first of glyphs drawn alike (a font may draw two characters, or two fonts one, the same)."""
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    seen, glyphs = set(), []
    for name, chars in fonts:
        font.load_default_font(name)
        for char in chars:
            segments = list(font.lines_for_text(char))
            key = tuple(segments)
            if segments and key not in seen:
                seen.add(key)
                glyphs.append((f"{name}/{char}", segments))
    return glyphs


def glyph_loader(fonts: tuple[tuple[str, str], ...], source: str, licence: str):
    """A domain loader: one class per distinct glyph, ``per_class`` jittered drawings each."""

    def load_glyphs(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
        glyphs = distinct_glyphs(fonts)
        images = [_draw(segs, size, rng) for _, segs in glyphs for _ in range(per_class)]
        labels = np.repeat(np.arange(len(glyphs), dtype=np.int64), per_class)
        names = [name for name, _ in glyphs]
        return SourceImages(np.stack(images), labels, names, source, licence)

    return load_glyphs


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Version 2: three non-Latin alphabets (Omniglot-like: many classes, few drawings each).
ALPHABET_FONTS = tuple((name, LETTERS) for name in ("greek", "cyrillic", "japanese"))
load_alphabets = glyph_loader(
    ALPHABET_FONTS,
    "Hershey-Fonts 2.1 vector fonts greek,cyrillic,japanese, letter positions, jittered",
    "MIT (Hershey-Fonts)",
)
