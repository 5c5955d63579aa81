"""The pixels the offline probe set draws with, and the concepts they stand for.

None of it is a class or an image of the mini-decathlon (``data/offline``: MNIST digits, animal
silhouettes, LFW faces, Fashion-MNIST, scikit-learn digits, Hershey glyphs of five alphabets,
matplotlib-font capitals, brick/grass/gravel and GIMP textures) nor an emoji:

- colours: the 11 colour names of Broden, drawn as flat regions;
- textures: procedural stripes (4 orientations), checkerboard, dots, speckle, and scikit-image's
  moon surface, Hubble deep field and immunohistochemistry slide;
- shapes: eight geometric shapes drawn as exact binary masks;
- objects: coins cut out of scikit-image's ``coins`` photograph, matplotlib's gift-box picture
  (its alpha channel is the mask);
- characters: eight symbols (& @ ? # % $ * +) of Hershey's ``futural`` font (no letter, no digit).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from multidomain.data.offline.common import package_dir

COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 15),
    "blue": (30, 60, 220),
    "brown": (130, 80, 30),
    "grey": (128, 128, 128),
    "green": (40, 170, 50),
    "orange": (250, 140, 20),
    "pink": (250, 160, 200),
    "purple": (130, 40, 170),
    "red": (215, 25, 30),
    "white": (245, 245, 245),
    "yellow": (245, 225, 30),
}
PROCEDURAL_TEXTURES = (
    "stripes-0",
    "stripes-45",
    "stripes-90",
    "stripes-135",
    "checkerboard",
    "dots",
    "speckle",
)
PACKAGED_TEXTURES = {"moon-surface": "moon.png", "star-field": "hubble_deep_field.jpg"}
PACKAGED_TEXTURES["tissue"] = "ihc.png"
TEXTURES = PROCEDURAL_TEXTURES + tuple(PACKAGED_TEXTURES)
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "crescent")
OBJECTS = ("coin", "gift-box")
SYMBOLS = {"ampersand": "&", "at": "@", "question": "?", "hash": "#"}
SYMBOLS.update({"percent": "%", "dollar": "$", "asterisk": "*", "plus": "+"})


def procedural_texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size)`` float pattern in [0, 1] of a procedural texture."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    period = rng.uniform(5.0, 9.0) * size / 72
    phase = rng.uniform(0, period)
    if name.startswith("stripes-"):
        angle = math.radians(float(name.split("-")[1]))
        t = x * math.cos(angle) + y * math.sin(angle)
        return ((t + phase) % period < period / 2).astype(np.float64)
    if name == "checkerboard":
        return (((x + phase) // (period / 2) + (y + phase) // (period / 2)) % 2).astype(float)
    if name == "dots":
        cx, cy = (x + phase) % period - period / 2, (y + phase) % period - period / 2
        return (cx**2 + cy**2 < (period / 3.2) ** 2).astype(np.float64)
    if name == "speckle":
        return (rng.random((size, size)) < 0.5).astype(np.float64)
    raise ValueError(f"unknown procedural texture {name!r}: choose from {PROCEDURAL_TEXTURES}")


@functools.cache
def _skimage_picture(file: str) -> np.ndarray:
    rgb = Image.open(package_dir("skimage") / "data" / file).convert("RGB")
    return np.asarray(rgb)


def packaged_texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size, 3)`` uint8 random crop (a quarter to a half of the side) of a picture."""
    picture = _skimage_picture(PACKAGED_TEXTURES[name])
    side = int(rng.integers(min(picture.shape[:2]) // 4, min(picture.shape[:2]) // 2))
    top = int(rng.integers(0, picture.shape[0] - side + 1))
    left = int(rng.integers(0, picture.shape[1] - side + 1))
    crop = Image.fromarray(picture[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def _polygon(n: int, radius: float, rotation: float, centre: float) -> list[tuple[float, float]]:
    return [
        (
            centre + radius * math.cos(rotation + 2 * math.pi * i / n),
            centre + radius * math.sin(rotation + 2 * math.pi * i / n),
        )
        for i in range(n)
    ]


def shape_mask(name: str, side: int, rng: np.random.Generator) -> np.ndarray:
    """``(side, side)`` bool mask of a shape (binary drawing: exact by construction)."""
    canvas = Image.new("1", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    c, r, turn = (side - 1) / 2, (side - 1) / 2, rng.uniform(0, 2 * math.pi)
    box = (0, 0, side - 1, side - 1)
    if name == "circle":
        draw.ellipse(box, fill=1)
    elif name == "ring":
        draw.ellipse(box, fill=1)
        draw.ellipse((side * 0.3, side * 0.3, side * 0.7, side * 0.7), fill=0)
    elif name == "crescent":
        draw.ellipse(box, fill=1)
        draw.ellipse((side * 0.3, -side * 0.1, side * 1.2, side * 0.8), fill=0)
    elif name in ("square", "triangle", "hexagon"):
        corners = {"square": 4, "triangle": 3, "hexagon": 6}[name]
        draw.polygon(_polygon(corners, r, turn, c), fill=1)
    elif name == "star":
        outer, inner = _polygon(5, r, turn, c), _polygon(5, r * 0.42, turn + math.pi / 5, c)
        draw.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=1)
    elif name == "cross":
        third = side / 3
        draw.rectangle((third, 0, 2 * third, side - 1), fill=1)
        draw.rectangle((0, third, side - 1, 2 * third), fill=1)
    else:
        raise ValueError(f"unknown shape {name!r}: choose from {SHAPES}")
    return np.asarray(canvas, dtype=bool)


@functools.cache
def _coins() -> list[tuple[np.ndarray, np.ndarray]]:
    """``(grey crop, mask)`` of each coin of scikit-image's coins photograph."""
    from scipy import ndimage

    grey = np.asarray(Image.open(package_dir("skimage") / "data" / "coins.png").convert("L"))
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(grey > 110, iterations=2))
    labels, _count = ndimage.label(mask)
    coins = []
    for rows, cols in ndimage.find_objects(labels):
        piece = labels[rows, cols] > 0
        if min(piece.shape) >= 30:
            coins.append((grey[rows, cols], piece))
    return coins


@functools.cache
def _gift_box() -> tuple[np.ndarray, np.ndarray]:
    path = package_dir("matplotlib") / "mpl-data" / "sample_data" / "Minduka_Present_Blue_Pack.png"
    rgba = np.asarray(Image.open(Path(path)).convert("RGBA"))
    return rgba[..., :3], rgba[..., 3] > 127


def object_cutout(name: str, side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``((side, side, 3) uint8 pixels, (side, side) bool mask)`` of an object cut-out; the
    mask is resized with nearest neighbours and the pixels pasted exactly where it is set."""
    if name == "coin":
        coins = _coins()
        grey, mask = coins[int(rng.integers(len(coins)))]
        pixels = np.repeat(grey[..., None], 3, axis=2)
    elif name == "gift-box":
        pixels, mask = _gift_box()
    else:
        raise ValueError(f"unknown object {name!r}: choose from {OBJECTS}")
    resized = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    small = Image.fromarray(mask).resize((side, side), Image.Resampling.NEAREST)
    return np.asarray(resized), np.asarray(small, dtype=bool)


@functools.cache
def _symbol_segments(symbol: str) -> tuple:
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font("futural")
    return tuple(font.lines_for_text(symbol))


def glyph_mask(name: str, side: int, rng: np.random.Generator) -> np.ndarray:
    """``(side, side)`` bool mask of a symbol's strokes (binary drawing)."""
    segments = _symbol_segments(SYMBOLS[name])
    points = np.array([p for segment in segments for p in segment], dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = 0.85 * (side - 1) / max(float((high - low).max()), 1.0)
    centred = (points - (low + high) / 2) * scale + (side - 1) / 2  # Hershey's y points down
    canvas = Image.new("1", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(side * rng.uniform(0.06, 0.1)))
    for i in range(0, len(centred), 2):
        draw.line(tuple(centred[i].tolist() + centred[i + 1].tolist()), fill=1, width=width)
    return np.asarray(canvas, dtype=bool)
