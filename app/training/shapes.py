"""The shapes world: scenes whose truth is known, for training tiny text-to-image models and
judging what they draw (app/quality/adherence.py).

A scene is a `SceneSpec`: a neutral background and one or two groups of identical objects,
each group a count, a shape, a colour and a size. Object colours are six saturated hues 60°
apart; backgrounds are white, gray or black with no hue at all, so an object always stands
apart from its background by saturation, whatever the two values are.

Kinds of scene, named by the category they report under (`category_of`):

- "colour": one object of a stated colour ("a red circle on a white background");
- "shape": one object whose colour is not stated ("a large circle on a white background",
  GenEval's "single object"): the shape is what is asked;
- "count": one group of two to four ("three small blue squares on a black background");
- "position": two groups with a relation, group 0 of one or two objects, group 1 of one
  ("two red circles left of a large blue square on a gray background");
- "two objects": two single objects, no relation, sharing their colour or their shape
  ("a red circle and a red square ..."): both must be drawn;
- "attribute binding": two single objects differing in colour and in shape ("a red circle
  and a blue square ..."): each colour must go to its own shape.

Two groups never share both shape and colour. A size word appears only sometimes; where it is
absent the spec says `size="any"` and the renderer picks one, the same for the whole group.
A colour may be left out ("any") only in the "shape" kind, where the renderer picks it.

The held-out split: let u be the first 8 bytes of sha256("shapes-world/" + spec_to_json(spec))
read as a big-endian integer over 2**64. A spec is held out when u < `HELD_OUT_FRACTION`
(0.15), and also, in the one-group categories ("colour", "shape", "count": 162, 27 and 486
specs in all), when u is among the `HELD_OUT_FLOOR` (10) lowest of its category, so that
every category has at least 10 held-out prompts (the 27 colour-free "shape" specs would
otherwise give about 4). Training never sees a held-out spec (`sample_training_spec`); the
benchmark prompts (app/training/prompt_file.py) are all held out. The rule reads only the
canonical JSON, so it holds across machines and Python runs.

Layout rules (`render`): sizes are fractions of the image's short side; objects keep a gap of
`GAP` between their bounding boxes and `MARGIN` from the edges; "A left of B" means every
object of group 0 ends, with the gap, before every object of group 1 begins on x, and lies
within 37° of the axis (the perpendicular offset is at most 0.75 of the axis offset), and
likewise on y for "above" and "below". Only stdlib, numpy and PIL here: the web tier's
prompt loader imports this module.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (220, 30, 30),
    "yellow": (220, 220, 30),
    "green": (30, 200, 30),
    "cyan": (30, 200, 200),
    "blue": (30, 30, 220),
    "magenta": (200, 30, 200),
}
BACKGROUNDS: dict[str, RGB] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 0.18, "large": 0.32}  # bounding-box width / short side
ANY = "any"  # a size or colour the prompt leaves out
RELATIONS = ("left of", "right of", "above", "below")
CATEGORIES = ("colour", "shape", "count", "position", "two objects", "attribute binding")
MAX_OBJECTS = 4
GAP = 0.06  # between objects' bounding boxes, of the short side
MARGIN = 0.04  # from the image's edges, of the short side
PERPENDICULAR_SLACK = 0.75  # a relation's perpendicular offset over its axis offset, at most
HELD_OUT_FRACTION = 0.15
HELD_OUT_FLOOR = 10
SUPERSAMPLE = 4  # drawn at 4x and reduced by area: soft edges, as a model's images have

NUMBER_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
TRIANGLE_HEIGHT = math.sqrt(3) / 2  # of its base: equilateral

# Sampling weights of the kinds: the two-group kinds have far more distinct specs and are the
# hard ones, so they get a little more than their share.
KIND_WEIGHTS: dict[str, float] = {
    "colour": 0.12,
    "shape": 0.14,
    "count": 0.2,
    "position": 0.24,
    "two objects": 0.12,
    "attribute binding": 0.18,
}
STATED_SIZE_CHANCE = 0.5


@dataclass(frozen=True)
class ObjectGroup:
    count: int
    shape: str
    colour: str
    size: str = ANY

    def __post_init__(self) -> None:
        if type(self.count) is not int or not 1 <= self.count <= MAX_OBJECTS:
            raise ValueError(
                f"count must be an integer from 1 to {MAX_OBJECTS}, got {self.count!r}"
            )
        _check_word("shape", self.shape, SHAPES)
        _check_word("colour", self.colour, (*COLOURS, ANY))
        _check_word("size", self.size, (*SIZES, ANY))


@dataclass(frozen=True)
class SceneSpec:
    background: str
    groups: tuple[ObjectGroup, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        _check_word("background", self.background, tuple(BACKGROUNDS))
        if self.relation is not None:
            _check_word("relation", self.relation, RELATIONS)
        if len(self.groups) not in (1, 2):
            raise ValueError(f"a scene has one or two groups, got {len(self.groups)}")
        if len(self.groups) == 1:
            if self.relation is not None:
                raise ValueError("a relation needs two groups")
            if self.groups[0].colour == ANY and self.groups[0].count != 1:
                raise ValueError("a colour may be left out only for a single object")
            return
        first, second = self.groups
        if ANY in (first.colour, second.colour):
            raise ValueError("a colour may be left out only in a one-group scene")
        if (first.shape, first.colour) == (second.shape, second.colour):
            raise ValueError(f"the two groups are both {first.colour} {first.shape}s")
        if second.count != 1:
            raise ValueError(f"group 1 of a two-group scene has one object, got {second.count}")
        most = 2 if self.relation is not None else 1
        if first.count > most:
            raise ValueError(
                f"group 0 of a two-group scene has at most {most} object(s)"
                f"{'' if self.relation else ' without a relation'}, got {first.count}"
            )


def _check_word(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


# Words


def _noun_phrase(group: ObjectGroup) -> str:
    words = [NUMBER_WORDS[group.count]]
    words += [word for word in (group.size, group.colour) if word != ANY]
    words.append(group.shape + ("s" if group.count > 1 else ""))
    return " ".join(words)


def prompt_of(spec: SceneSpec) -> str:
    """The prompt: "<group 0> [<relation> | and <group 1>] on a <background> background"."""
    phrases = [_noun_phrase(group) for group in spec.groups]
    if len(phrases) == 2:
        joint = spec.relation if spec.relation is not None else "and"
        phrases = [f"{phrases[0]} {joint} {phrases[1]}"]
    return f"{phrases[0]} on a {spec.background} background"


def vocabulary() -> list[str]:
    """Every word a prompt can use, sorted: the tokenizers of the tiny models are learned on it."""
    words = {"on", "background", "and", "of"}
    words |= set(NUMBER_WORDS.values()) | set(SIZES) | set(COLOURS) | set(BACKGROUNDS)
    words |= set(SHAPES) | {shape + "s" for shape in SHAPES}
    words |= {word for relation in RELATIONS for word in relation.split()}
    return sorted(words)


def category_of(spec: SceneSpec) -> str:
    """The category a spec reports under (the module docstring says what each one is)."""
    if len(spec.groups) == 1:
        group = spec.groups[0]
        if group.count > 1:
            return "count"
        return "shape" if group.colour == ANY else "colour"
    if spec.relation is not None:
        return "position"
    first, second = spec.groups
    if first.colour != second.colour and first.shape != second.shape:
        return "attribute binding"
    return "two objects"


# JSON


def spec_to_json(spec: SceneSpec) -> str:
    """Canonical JSON: sorted keys, no spaces; the same spec always gives the same text."""
    data = {
        "background": spec.background,
        "groups": [
            {"count": g.count, "shape": g.shape, "colour": g.colour, "size": g.size}
            for g in spec.groups
        ],
        "relation": spec.relation,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def spec_from_json(text: str) -> SceneSpec:
    """Parse and check a spec; every problem is a `ValueError` saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"spec is not JSON: {err.msg} at character {err.pos}") from None
    _check_keys("spec", data, required={"background", "groups"}, optional={"relation"})
    groups = data["groups"]
    if not isinstance(groups, list):
        raise ValueError("spec groups must be a list")
    parsed = []
    for index, group in enumerate(groups):
        _check_keys(
            f"group {index}", group, required={"count", "shape", "colour"}, optional={"size"}
        )
        try:
            parsed.append(ObjectGroup(**group))
        except ValueError as err:
            raise ValueError(f"group {index}: {err}") from None
    return SceneSpec(data["background"], tuple(parsed), data.get("relation"))


def _check_keys(what: str, data: Any, *, required: set[str], optional: set[str]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(data).__name__}")
    missing = sorted(required - data.keys())
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(data.keys() - required - optional)
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {', '.join(unknown)}")


# Sampling and the held-out split


def _unit_hash(spec: SceneSpec) -> float:
    digest = hashlib.sha256(("shapes-world/" + spec_to_json(spec)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(spec: SceneSpec) -> bool:
    """The module docstring's rule."""
    u = _unit_hash(spec)
    if u < HELD_OUT_FRACTION:
        return True
    return len(spec.groups) == 1 and u <= _one_group_thresholds()[category_of(spec)]


@functools.cache
def _one_group_thresholds() -> dict[str, float]:
    """Per one-group category, the `HELD_OUT_FLOOR`-th lowest u: all 675 such specs listed."""
    hashes: dict[str, list[float]] = {}
    for background, shape, size in itertools.product(BACKGROUNDS, SHAPES, (*SIZES, ANY)):
        for colour, count in itertools.product((*COLOURS, ANY), range(1, MAX_OBJECTS + 1)):
            if colour == ANY and count > 1:
                continue
            spec = SceneSpec(background, (ObjectGroup(count, shape, colour, size),))
            hashes.setdefault(category_of(spec), []).append(_unit_hash(spec))
    return {category: sorted(us)[HELD_OUT_FLOOR - 1] for category, us in hashes.items()}


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _maybe_size(rng: np.random.Generator) -> str:
    return _pick(rng, tuple(SIZES)) if rng.random() < STATED_SIZE_CHANCE else ANY


def _draw_kind(rng: np.random.Generator) -> str:
    weights = np.array(list(KIND_WEIGHTS.values()))
    return list(KIND_WEIGHTS)[int(rng.choice(len(weights), p=weights / weights.sum()))]


def sample_spec(rng: np.random.Generator, kind: str | None = None) -> SceneSpec:
    """A random spec of `kind` (a category; None draws one by `KIND_WEIGHTS`), held out or not."""
    kind = kind if kind is not None else _draw_kind(rng)
    _check_word("kind", kind, CATEGORIES)
    background = _pick(rng, tuple(BACKGROUNDS))
    shape, colour = _pick(rng, SHAPES), _pick(rng, tuple(COLOURS))
    if kind in ("colour", "shape", "count"):
        count = int(rng.integers(2, MAX_OBJECTS + 1)) if kind == "count" else 1
        group = ObjectGroup(count, shape, ANY if kind == "shape" else colour, _maybe_size(rng))
        return SceneSpec(background, (group,))

    other_shape = _pick(rng, [s for s in SHAPES if s != shape])
    other_colour = _pick(rng, [c for c in COLOURS if c != colour])
    if kind == "two objects":
        # Share exactly one attribute: the other one is what tells the two objects apart.
        if rng.random() < 0.5:
            other_colour = colour
        else:
            other_shape = shape
    elif kind == "position":
        # Any two distinct kinds of object, shared attributes allowed.
        other_shape, other_colour = _pick(rng, SHAPES), _pick(rng, tuple(COLOURS))
        while (other_shape, other_colour) == (shape, colour):
            other_shape, other_colour = _pick(rng, SHAPES), _pick(rng, tuple(COLOURS))
    first_count = 2 if kind == "position" and rng.random() < 0.3 else 1
    relation = _pick(rng, RELATIONS) if kind == "position" else None
    groups = (
        ObjectGroup(first_count, shape, colour, _maybe_size(rng)),
        ObjectGroup(1, other_shape, other_colour, _maybe_size(rng)),
    )
    return SceneSpec(background, groups, relation)


def sample_training_spec(rng: np.random.Generator, kind: str | None = None) -> SceneSpec:
    """`sample_spec`, drawn again until the spec is not held out. The kind is drawn once, so
    that the kinds keep their weights in training although they lose unequal shares."""
    kind = kind if kind is not None else _draw_kind(rng)
    while True:
        spec = sample_spec(rng, kind)
        if not is_held_out(spec):
            return spec


# Rendering


@dataclass(frozen=True)
class Placed:
    """One object as drawn: bounding-box centre and extent in output pixels."""

    group: int
    shape: str
    colour: str
    cx: float
    cy: float
    width: float
    height: float

    def separated(self, other: Placed, gap: float) -> bool:
        dx = abs(self.cx - other.cx) - (self.width + other.width) / 2
        dy = abs(self.cy - other.cy) - (self.height + other.height) / 2
        return max(dx, dy) >= gap


def _image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    width, height = (size, size) if isinstance(size, int) else size
    if not (32 <= width <= 2048 and 32 <= height <= 2048):
        raise ValueError(f"image size must be 32 to 2048 pixels a side, got {width}x{height}")
    return width, height


def _relation_holds(relation: str, a: Placed, b: Placed, gap: float) -> bool:
    """`a` (group 0) stands `relation` to `b` (group 1), by the module docstring's rule."""
    horizontal = relation in ("left of", "right of")
    sign = -1.0 if relation in ("left of", "above") else 1.0
    axis = sign * ((a.cx - b.cx) if horizontal else (a.cy - b.cy))
    across = abs((a.cy - b.cy) if horizontal else (a.cx - b.cx))
    extent = (a.width + b.width) / 2 if horizontal else (a.height + b.height) / 2
    return axis - extent >= gap and across <= PERPENDICULAR_SLACK * axis


def layout(spec: SceneSpec, size: int | tuple[int, int] = 128, seed: int = 0) -> tuple[Placed, ...]:
    """Where `render` draws each object: random positions that keep every rule."""
    width, height = _image_size(size)
    unit = min(width, height)
    gap, margin = GAP * unit, MARGIN * unit
    entropy = int.from_bytes(hashlib.sha256(spec_to_json(spec).encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, entropy])
    objects: list[tuple[int, str, str, float, float]] = []
    for index, group in enumerate(spec.groups):
        size_word = group.size if group.size != ANY else _pick(rng, tuple(SIZES))
        colour = group.colour if group.colour != ANY else _pick(rng, tuple(COLOURS))
        w = SIZES[size_word] * unit
        h = w * TRIANGLE_HEIGHT if group.shape == "triangle" else w
        objects += [(index, group.shape, colour, w, h)] * group.count

    if spec.relation is not None:
        objects.reverse()  # group 1's one object first: group 0's are placed around it

    # Rejection sampling, one object at a time; a stuck layout starts over. With a relation,
    # group 0's objects are proposed inside the cone the relation allows around group 1's
    # object, which a uniform proposal would hit rarely for two large objects.
    for _ in range(500):
        placed: list[Placed] = []
        for index, shape, colour, w, h in objects:
            for _ in range(50):
                if placed and spec.relation is not None and index == 0:
                    cx, cy = _propose_near(rng, spec.relation, placed[0], w, h, gap)
                else:
                    cx = rng.uniform(margin + w / 2, width - margin - w / 2)
                    cy = rng.uniform(margin + h / 2, height - margin - h / 2)
                candidate = Placed(index, shape, colour, cx, cy, w, h)
                inside = margin + w / 2 <= cx <= width - margin - w / 2 and (
                    margin + h / 2 <= cy <= height - margin - h / 2
                )
                if inside and all(_fits(spec, candidate, other, gap) for other in placed):
                    placed.append(candidate)
                    break
            else:
                break
        if len(placed) == len(objects):
            return tuple(sorted(placed, key=lambda p: p.group))
    raise RuntimeError(f"no layout found for {prompt_of(spec)!r} at {width}x{height}")


def _propose_near(
    rng: np.random.Generator, relation: str, anchor: Placed, w: float, h: float, gap: float
) -> tuple[float, float]:
    """A centre for a group-0 object of extent (w, h) in `relation` to `anchor`'s cone; the
    axis offset reaches as far as the image's long side could need."""
    horizontal = relation in ("left of", "right of")
    sign = -1.0 if relation in ("left of", "above") else 1.0
    extent = (w + anchor.width) / 2 if horizontal else (h + anchor.height) / 2
    axis = rng.uniform(extent + gap, extent + gap + 4 * max(w, h, anchor.width))
    across = rng.uniform(-PERPENDICULAR_SLACK, PERPENDICULAR_SLACK) * axis
    if horizontal:
        return anchor.cx + sign * axis, anchor.cy + across
    return anchor.cx + across, anchor.cy + sign * axis


def _fits(spec: SceneSpec, new: Placed, old: Placed, gap: float) -> bool:
    if not new.separated(old, gap):
        return False
    if spec.relation is None or new.group == old.group:
        return True
    a, b = (new, old) if new.group == 0 else (old, new)
    return _relation_holds(spec.relation, a, b, gap)


def render(spec: SceneSpec, size: int | tuple[int, int] = 128, seed: int = 0) -> Image.Image:
    """The scene as an RGB image of `size` (an int for a square, or (width, height)).

    Deterministic for (spec, size, seed): positions come from a numpy Generator seeded with
    the seed and the spec's JSON."""
    width, height = _image_size(size)
    s = SUPERSAMPLE
    canvas = Image.new("RGB", (width * s, height * s), BACKGROUNDS[spec.background])
    draw = ImageDraw.Draw(canvas)
    for obj in layout(spec, (width, height), seed):
        left, right = (obj.cx - obj.width / 2) * s, (obj.cx + obj.width / 2) * s
        top, bottom = (obj.cy - obj.height / 2) * s, (obj.cy + obj.height / 2) * s
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((left, top, right, bottom), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((left, top, right, bottom), fill=fill)
        else:
            draw.polygon([(obj.cx * s, top), (right, bottom), (left, bottom)], fill=fill)
    return canvas.resize((width, height), Image.Resampling.BOX)
