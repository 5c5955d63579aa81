"""The offline probe set: images composed from the sources of :mod:`offline_sources` with
pixel-exact concept masks (every mask is drawn, never estimated), deterministic for a seed.

Each image is a background (a texture over the whole image, a flat colour, or an unlabelled
two-colour gradient, sometimes with a texture rectangle on it) and one to three foreground items
(a shape or a symbol in a flat colour, or an object cut-out); a later item hides what lies under
it, in every category. Every category is annotated in every image (the scene is known
completely), and no concept covers more than about 5% of the pixels, so a unit whose top-0.5%
mask lies on a concept can reach IoU 0.04. Image ``i`` depends only on ``(seed, i)``: any
subset renders the same pixels, in any order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from multidomain.interpret import offline_sources as src
from multidomain.interpret.probe import Concepts, ProbeBatch

CATEGORIES = ("colour", "texture", "shape", "character", "object")
_CONCEPTS = (
    [(n, "colour") for n in src.COLOURS]
    + [(n, "texture") for n in src.TEXTURES]
    + [(n, "shape") for n in src.SHAPES]
    + [(n, "character") for n in src.SYMBOLS]
    + [(n, "object") for n in src.OBJECTS]
)
OFFLINE_CONCEPTS = Concepts(
    tuple(n for n, _ in _CONCEPTS), tuple(c for _, c in _CONCEPTS), CATEGORIES
)
_CODE = {(c, n): i + 1 for i, (n, c) in enumerate(_CONCEPTS)}
_PALETTE = np.array(list(src.COLOURS.values()), dtype=np.float64)


class _Canvas:
    """An image being drawn with one label map per category (0: no concept)."""

    def __init__(self, size: int) -> None:
        self.image = np.zeros((size, size, 3), dtype=np.float64)
        self.labels = np.zeros((len(CATEGORIES), size, size), dtype=np.int16)

    def paint(self, where: np.ndarray, pixels, labels: dict[str, str]) -> None:
        """Put ``pixels`` at ``where``; the labels there become exactly ``labels``."""
        self.image[where] = pixels if np.ndim(pixels) <= 1 else pixels[where]
        self.labels[:, where] = 0
        for category, name in labels.items():
            self.labels[CATEGORIES.index(category), where] = _CODE[(category, name)]


def _colour(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A colour name and its RGB with a small jitter (the jitter keeps the name)."""
    index = int(rng.integers(len(src.COLOURS)))
    rgb = np.clip(_PALETTE[index] + rng.normal(0, 6, 3), 0, 255)
    return list(src.COLOURS)[index], rgb


def _texture_pixels(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if name in src.PACKAGED_TEXTURES:
        return src.packaged_texture(name, size, rng).astype(np.float64)
    pattern = src.procedural_texture(name, size, rng)[..., None]
    a, b = _PALETTE[rng.choice(len(_PALETTE), size=2, replace=False)]
    return a * pattern + b * (1 - pattern)  # two colours: no colour concept


def _background(canvas: _Canvas, rng: np.random.Generator) -> None:
    size = canvas.image.shape[0]
    everywhere = np.ones((size, size), dtype=bool)
    kind = rng.random()
    if kind < 0.3:
        name = src.TEXTURES[int(rng.integers(len(src.TEXTURES)))]
        canvas.paint(everywhere, _texture_pixels(name, size, rng), {"texture": name})
        return
    if kind < 0.6:
        colour, rgb = _colour(rng)
        canvas.paint(everywhere, rgb, {"colour": colour})
    else:
        a, b = _PALETTE[rng.choice(len(_PALETTE), size=2, replace=False)]
        ramp = np.linspace(0, 1, size)[None, :, None]
        canvas.paint(everywhere, np.broadcast_to(a * ramp + b * (1 - ramp), (size,) * 2 + (3,)), {})
    if rng.random() < 0.35:  # a texture region on a plain background
        side = int(rng.integers(size // 3, size // 2 + 1))
        top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        region = np.zeros((size, size), dtype=bool)
        region[top : top + side, left : left + side] = True
        name = src.TEXTURES[int(rng.integers(len(src.TEXTURES)))]
        canvas.paint(region, _texture_pixels(name, size, rng), {"texture": name})


def _place(mask: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(size, size)`` mask holding ``mask`` at a random position."""
    side = mask.shape[0]
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    where = np.zeros((size, size), dtype=bool)
    where[top : top + side, left : left + side] = mask
    return where


def _foreground(canvas: _Canvas, rng: np.random.Generator) -> None:
    size = canvas.image.shape[0]
    side = int(rng.integers(round(size * 0.25), round(size * 0.45) + 1))
    kind = int(rng.integers(3))
    if kind == 2:
        name = src.OBJECTS[int(rng.integers(len(src.OBJECTS)))]
        pixels, mask = src.object_cutout(name, side, rng)
        where = _place(mask, size, rng)
        full = np.zeros((size, size, 3))
        full[where] = pixels[mask]
        canvas.paint(where, full, {"object": name})
        return
    colour, rgb = _colour(rng)
    if kind == 0:
        name = src.SHAPES[int(rng.integers(len(src.SHAPES)))]
        mask, category = src.shape_mask(name, side, rng), "shape"
    else:
        name = list(src.SYMBOLS)[int(rng.integers(len(src.SYMBOLS)))]
        mask, category = src.glyph_mask(name, side, rng), "character"
    canvas.paint(_place(mask, size, rng), rgb, {category: name, "colour": colour})


def render_probe_image(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of the probe set of ``seed``: ``(size, size, 3)`` uint8 and its
    ``(G, size, size)`` int16 label maps, one per category of :data:`CATEGORIES`."""
    rng = np.random.default_rng([seed, index])
    canvas = _Canvas(size)
    _background(canvas, rng)
    for _ in range(int(rng.integers(1, 4))):
        _foreground(canvas, rng)
    return np.clip(np.rint(canvas.image), 0, 255).astype(np.uint8), canvas.labels


class OfflineProbe:
    """The offline probe set: ``count`` images of ``size`` pixels, masks at the image size."""

    concepts = OFFLINE_CONCEPTS

    def __init__(
        self,
        count: int = 2000,
        size: int = 72,
        seed: int = 0,
        cache: bool = True,
        mask_step: int = 2,
    ) -> None:
        if count < 1 or size < 16:
            raise ValueError(
                f"an offline probe needs count >= 1 and size >= 16, got {count}, {size}"
            )
        if mask_step < 1 or size % mask_step:
            raise ValueError(f"mask_step must divide the image size {size}, got {mask_step}")
        self.count, self.size, self.seed = count, size, seed
        # Masks at 1 / mask_step of the image size, as Broden's (112 px for 224 px images): the
        # label of every mask_step-th pixel, so each mask pixel is still exact for the image
        # pixel it samples; it makes the counting pass mask_step ** 2 times cheaper.
        self.step = mask_step
        # Rendering takes about 12 ms an image; dissection reads the set at least twice (and
        # six times with controls), so rendered images are kept: 69 KB an image at 72 px.
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self.description = (
            f"offline probe set: {count} images of {size} px, seed {seed}, "
            f"masks at {size // mask_step} px, {len(self.concepts)} concepts in "
            f"{len(CATEGORIES)} categories"
        )

    def __len__(self) -> int:
        return self.count

    @property
    def mask_size(self) -> tuple[int, int]:
        return (self.size // self.step, self.size // self.step)

    def batch(self, indices: np.ndarray) -> ProbeBatch:
        rendered = [self._render(int(i)) for i in indices]
        offset = self.step // 2  # the pixel nearest the centre of each mask pixel's block
        return ProbeBatch(
            indices=np.asarray(indices, dtype=np.int64),
            images=np.stack([image for image, _ in rendered]),
            labels=np.stack([labels for _, labels in rendered])[
                ..., offset :: self.step, offset :: self.step
            ],
            annotated=np.ones((len(rendered), len(CATEGORIES)), dtype=bool),
        )

    def _render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            return render_probe_image(self.seed, index, self.size)
        if index not in self._cache:
            self._cache[index] = render_probe_image(self.seed, index, self.size)
        return self._cache[index]

    def batches(self, batch_size: int) -> Iterator[ProbeBatch]:
        for start in range(0, self.count, batch_size):
            yield self.batch(np.arange(start, min(start + batch_size, self.count)))
