"""``symbols``: pictograms drawn from the Hershey vector fonts (version 2).

One class per distinct glyph of the ``symbolic`` and ``markers`` fonts and of the punctuation
positions of the ``music`` and ``meteorology`` fonts (their letter and digit positions draw
Latin letters and digits): signs, notes, clefs, weather and map markers. Each drawing gets its
own affine jitter and stroke width, as the characters do. Line-drawn pictograms: a kind apart
from the letters, the digits and the colour emoji of the source. The astrology font is left out
(its zodiac signs are emoji of the source).
"""

from __future__ import annotations

import string

from multidomain.data.offline.characters import glyph_loader

_EVERY = string.printable[:94]  # every character a Hershey font maps
load = glyph_loader(
    (
        ("symbolic", _EVERY),
        ("markers", _EVERY),
        ("music", string.punctuation),
        ("meteorology", string.punctuation),
    ),
    "Hershey-Fonts 2.1 vector fonts symbolic, markers, music and meteorology signs, jittered",
    "MIT (Hershey-Fonts)",
)
