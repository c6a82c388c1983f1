"""The adherence oracle: does an image show what its shapes-world spec asks? Classical image
analysis only, no learned weights, so it can be trusted where it was tested: on rendered
scenes, whose answers are known (tests/quality/test_adherence.py, docs/adherence.md).

How each attribute is decided (`judge`):

1. Pixels. An object pixel has chroma (max - min of R, G, B) of at least `OBJECT_CHROMA`;
   chroma, unlike HSV saturation, stays small in the noise of dark pixels. Its colour is the
   nearest of the six palette hues. A pixel of chroma under `NEUTRAL_CHROMA` is neutral.
2. Background: the neutral pixels vote white, gray or black by their level (max of R, G, B:
   the nearest of the palette's three); the majority wins.
3. Objects: the object mask, opened with a 3x3 square (specks and one-pixel bridges go) and
   with holes filled, split into 8-connected components; those under `MIN_AREA` of the
   short side squared are noise. All colours are labelled together and each component takes
   its pixels' majority hue: a hue that drifts inside one blurry object must not cut it in
   two, and the world never lets two objects touch. A component whose majority hue holds
   under `PURITY` of it is cut by hue and each hue's part labelled again, opened first:
   touching objects of two colours come apart, and uniform noise, one saturated component
   of every hue, leaves no object at all.
4. Shape: the nearest ideal shape in four numbers measured in the component's bounding box:
   fill ratio (square 1, circle pi/4, triangle 1/2), the centroid's height (a half, or two
   thirds for an upright triangle), and the fill of the top and bottom corner boxes (a
   quarter of each side). All four survive blur far better than any one alone.
5. Size: the bounding box's longer side over the image's short side, "small" below the
   geometric mean of the two sizes (0.24), else "large".
6. Groups: every detected object belongs to one of the spec's groups (the world has no other
   objects, so a stray one is a count error). With two groups, the oracle takes the
   assignment that passes the most checks, then matches the most colours, then shapes: the
   most charitable reading, so that a wrong colour fails the colour check and not the count
   and shape checks as well.
7. Checks per group, named from 1 as prompts read ("group 1" is `spec.groups[0]`, which the
   spec's own messages call group 0): colour and shape pass when the group has objects and
   all of them have the stated colour (shape); count when the number is right; size, only
   when the prompt states one, when all have it. A colour left out is not checked.
8. Relation: GenEval's rule (Ghosh et al. 2023, `relative_position`) on bounding-box
   centres: each axis offset shrunk by 0.1 of the two boxes' summed extent, over the full
   offset's length, beyond 0.5 toward the stated side, for every pair of group 1's and
   group 2's objects.

Limits: rotated or inverted triangles, outlines, objects touching or overlapping, and
gradients or textured backgrounds are outside the world and read as whatever they resemble;
a shape under about 8 pixels across is too coarse to tell apart.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from app.training.shapes import (
    ANY,
    BACKGROUNDS,
    COLOURS,
    SIZES,
    SceneSpec,
    spec_from_json,
)

# The `model` of its rows in generation_metrics (metric "adherence"): bump the version when a
# rule below changes, so figures of two rule sets are never averaged together.
ORACLE = "shapes-oracle-v1"
OBJECT_CHROMA = 64  # of 255: half-way up an edge blended with any background is ~95
NEUTRAL_CHROMA = 40
PURITY = 0.6  # the majority hue's share of a component that is one object
MIN_AREA = 0.004  # of the short side squared; the smallest object, a small triangle, is 0.014
SIZE_SPLIT = math.sqrt(SIZES["small"] * SIZES["large"])
POSITION_THRESHOLD = 0.1  # GenEval's
MAX_EXHAUSTIVE = 8  # objects; beyond, each goes to the group it resembles most
_CORNER = 0.25

# (fill ratio, centroid height, top corners' fill, bottom corners' fill) of the ideal shapes.
# A circle fills 0.315 of a corner box a quarter of its bounding box's side.
SHAPE_FEATURES: dict[str, tuple[float, float, float, float]] = {
    "circle": (math.pi / 4, 0.5, 0.315, 0.315),
    "square": (1.0, 0.5, 1.0, 1.0),
    "triangle": (0.5, 2 / 3, 0.0, 0.75),
}


def _hue(rgb: tuple[int, int, int]) -> float:
    r, g, b = (c / 255 for c in rgb)
    top, chroma = max(r, g, b), max(r, g, b) - min(r, g, b)
    if top == r:
        sector = ((g - b) / chroma) % 6
    elif top == g:
        sector = (b - r) / chroma + 2
    else:
        sector = (r - g) / chroma + 4
    return 60.0 * sector


COLOUR_NAMES = tuple(COLOURS)
_COLOUR_HUES = np.array([_hue(rgb) for rgb in COLOURS.values()])
BACKGROUND_NAMES = tuple(BACKGROUNDS)
_BACKGROUND_LEVELS = np.array([sum(rgb) / 3 for rgb in BACKGROUNDS.values()])


@dataclass(frozen=True)
class Check:
    attribute: str
    expected: str
    found: str
    passed: bool


@dataclass(frozen=True)
class Adherence:
    checks: tuple[Check, ...]
    score: float  # share of checks passed
    correct: bool  # every check passed

    def failed(self) -> list[str]:
        return [check.attribute for check in self.checks if not check.passed]


@dataclass(frozen=True)
class Found:
    """One detected object: bounding-box centre and extent in pixels."""

    colour: str
    shape: str
    size: str
    cx: float
    cy: float
    width: float
    height: float


def _nearest_hue_table() -> np.ndarray:
    """PIL's hue byte (0-255 for 0-360°) -> index of the nearest palette hue."""
    degrees = np.arange(256) * 360.0 / 256
    distance = np.abs(degrees[:, None] - _COLOUR_HUES)
    return np.minimum(distance, 360.0 - distance).argmin(axis=1)


def _nearest_level_table() -> np.ndarray:
    """A neutral pixel's level (0-255) -> index of the nearest background."""
    return np.abs(np.arange(256)[:, None] - _BACKGROUND_LEVELS).argmin(axis=1)


_HUE_TABLE = _nearest_hue_table()
_LEVEL_TABLE = _nearest_level_table()


def _pixel_classes(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: chroma (0-255), the index of the nearest palette hue, and the value (max of
    R, G, B). PIL's HSV conversion, in C: numpy's would be most of the oracle's time."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"))
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = saturation.astype(np.uint16) * value // 255  # S = chroma / V
    return chroma, _HUE_TABLE[hue], value


def _background(value: np.ndarray, chroma: np.ndarray) -> str:
    levels = value[chroma < NEUTRAL_CHROMA]
    if levels.size == 0:
        return "none"
    votes = np.bincount(_LEVEL_TABLE[levels], minlength=len(BACKGROUND_NAMES))
    return BACKGROUND_NAMES[int(votes.argmax())]


def _shape_of(mask: np.ndarray) -> str:
    """Nearest ideal shape of one component, `mask` cropped to its bounding box."""
    height, width = mask.shape
    rows = np.nonzero(mask)[0]
    corner_h, corner_w = max(1, round(_CORNER * height)), max(1, round(_CORNER * width))
    top = (mask[:corner_h, :corner_w].mean() + mask[:corner_h, -corner_w:].mean()) / 2
    bottom = (mask[-corner_h:, :corner_w].mean() + mask[-corner_h:, -corner_w:].mean()) / 2
    features = np.array([mask.mean(), (rows.mean() + 0.5) / height, top, bottom])
    distances = {
        shape: float(np.linalg.norm(features - np.array(ideal)))
        for shape, ideal in SHAPE_FEATURES.items()
    }
    return min(distances, key=distances.__getitem__)


Box = tuple[slice, slice]
_EIGHT = np.ones((3, 3), dtype=bool)


def _components(mask: np.ndarray, min_area: float) -> list[tuple[Box, np.ndarray]]:
    """8-connected components of an opened, hole-filled `mask`, each with its bounding box
    and its own mask inside that box; those under `min_area` pixels are dropped."""
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(mask, structure=_EIGHT))
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    pieces = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels[box] == label
        if component.sum() >= min_area:
            pieces.append(((box[0], box[1]), component))
    return pieces


def _found(box: Box, component: np.ndarray, colour: int, unit: int) -> Found:
    rows, cols = box
    height, width = rows.stop - rows.start, cols.stop - cols.start
    return Found(
        colour=COLOUR_NAMES[colour],
        shape=_shape_of(component),
        size="small" if max(height, width) / unit < SIZE_SPLIT else "large",
        cx=(cols.start + cols.stop) / 2,
        cy=(rows.start + rows.stop) / 2,
        width=float(width),
        height=float(height),
    )


def detect(image: Image.Image) -> tuple[str, tuple[Found, ...]]:
    """The background's name ("none" if no pixel is neutral) and the objects, largest first."""
    chroma, hue_index, value = _pixel_classes(image)
    unit = min(chroma.shape)
    min_area = MIN_AREA * unit * unit
    coloured = chroma >= OBJECT_CHROMA
    objects: list[tuple[int, Found]] = []
    for box, component in _components(coloured, min_area):
        # Filled holes have no hue of their own: vote with the component's coloured pixels.
        hues = hue_index[box]
        votes = np.bincount(hues[component & coloured[box]], minlength=len(COLOUR_NAMES))
        if votes.max() >= PURITY * votes.sum():
            objects.append(
                (int(component.sum()), _found(box, component, int(votes.argmax()), unit))
            )
            continue
        # No one hue dominates: objects of several colours touching, or no object at all
        # (noise is saturated everywhere and one big component). Each hue on its own, then.
        for colour in np.nonzero(votes >= min_area)[0]:  # fewer pixels cannot make an object
            for (rows, cols), piece in _components(component & (hues == colour), min_area):
                inner = (
                    slice(box[0].start + rows.start, box[0].start + rows.stop),
                    slice(box[1].start + cols.start, box[1].start + cols.stop),
                )
                objects.append((int(piece.sum()), _found(inner, piece, int(colour), unit)))
    objects.sort(key=lambda pair: -pair[0])
    return _background(value, chroma), tuple(found for _, found in objects)


def relations(a: Found, b: Found) -> set[str]:
    """Where `a` lies relative to `b`, GenEval's rule: a set, empty when too close to tell."""
    offset = np.array([a.cx - b.cx, a.cy - b.cy])
    dims = np.array([a.width + b.width, a.height + b.height])
    length = float(np.linalg.norm(offset))
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * dims, 0) * np.sign(offset)
    if length == 0 or np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / length
    named = {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}
    return {name for name, holds in named.items() if holds}


def _attribute_check(name: str, expected: str, values: list[str]) -> Check:
    found = "+".join(sorted(set(values))) or "none"
    return Check(name, expected, found, found == expected)


def _relation_check(relation: str, first: list[Found], second: list[Found]) -> Check:
    if not first or not second:
        return Check("relation", relation, "missing object", False)
    for a, b in itertools.product(first, second):
        seen = relations(a, b)
        if relation not in seen:
            return Check("relation", relation, "+".join(sorted(seen)) or "unclear", False)
    return Check("relation", relation, relation, True)


def _checks(spec: SceneSpec, background: str, members: list[list[Found]]) -> list[Check]:
    checks = [Check("background", spec.background, background, background == spec.background)]
    for number, (group, objects) in enumerate(zip(spec.groups, members, strict=True), start=1):
        name = f"group {number}"
        if group.colour != ANY:
            checks.append(
                _attribute_check(f"{name} colour", group.colour, [o.colour for o in objects])
            )
        checks.append(_attribute_check(f"{name} shape", group.shape, [o.shape for o in objects]))
        count = len(objects)
        checks.append(Check(f"{name} count", str(group.count), str(count), count == group.count))
        if group.size != ANY:
            checks.append(_attribute_check(f"{name} size", group.size, [o.size for o in objects]))
    if spec.relation is not None:
        checks.append(_relation_check(spec.relation, members[0], members[1]))
    return checks


def _resemblance(spec: SceneSpec, group: int, found: Found) -> tuple[int, int]:
    wanted = spec.groups[group]
    return int(found.colour == wanted.colour), int(found.shape == wanted.shape)


def _assignments(spec: SceneSpec, objects: tuple[Found, ...]) -> list[tuple[int, ...]]:
    groups = len(spec.groups)
    if groups == 1:
        return [(0,) * len(objects)]
    if len(objects) <= MAX_EXHAUSTIVE:
        return list(itertools.product(range(groups), repeat=len(objects)))
    # Far too many objects for a right answer anyway: the cheap reading.
    best = [max(range(groups), key=lambda g: _resemblance(spec, g, o)) for o in objects]
    return [tuple(best)]


def judge(image: Image.Image, spec: SceneSpec) -> Adherence:
    """Check `image` against every attribute `spec` states (the module docstring says how)."""
    background, objects = detect(image)
    best: tuple[tuple[int, int, int], list[Check]] | None = None
    for assignment in _assignments(spec, objects):
        members: list[list[Found]] = [[] for _ in spec.groups]
        for found, group in zip(objects, assignment, strict=True):
            members[group].append(found)
        checks = _checks(spec, background, members)
        resemblance = [_resemblance(spec, g, o) for o, g in zip(objects, assignment, strict=True)]
        key = (
            sum(check.passed for check in checks),
            sum(colour for colour, _ in resemblance),
            sum(shape for _, shape in resemblance),
        )
        if best is None or key > best[0]:
            best = (key, checks)
    assert best is not None  # there is always at least the empty assignment
    checks = best[1]
    passed = sum(check.passed for check in checks)
    return Adherence(tuple(checks), passed / len(checks), passed == len(checks))


def judge_prompt_spec(image: Image.Image, spec_json: str | None) -> Adherence | None:
    """`judge` for a prompt row's spec column; None (not applicable) for a prompt without one,
    such as PartiPrompts': never a score of 0 for a prompt that asked for nothing checkable."""
    if spec_json is None or not spec_json.strip():
        return None
    return judge(image, spec_from_json(spec_json))
