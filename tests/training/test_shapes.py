from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from app.bench.prompts import load_prompts
from app.training import prompt_file
from app.training.shapes import (
    ANY,
    BACKGROUNDS,
    CATEGORIES,
    COLOURS,
    GAP,
    HELD_OUT_FLOOR,
    MARGIN,
    PERPENDICULAR_SLACK,
    ObjectGroup,
    SceneSpec,
    category_of,
    is_held_out,
    layout,
    prompt_of,
    render,
    sample_spec,
    sample_training_spec,
    spec_from_json,
    spec_to_json,
    vocabulary,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_64 = REPO_ROOT / "prompts" / "shapes-64.tsv"


def _specs(count: int, seed: int = 0) -> list[SceneSpec]:
    rng = np.random.default_rng(seed)
    return [sample_spec(rng) for _ in range(count)]


# Words


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (
            SceneSpec("white", (ObjectGroup(1, "circle", "red", "large"),)),
            "a large red circle on a white background",
        ),
        (
            SceneSpec("gray", (ObjectGroup(1, "triangle", ANY, ANY),)),
            "a triangle on a gray background",
        ),
        (
            SceneSpec("black", (ObjectGroup(3, "square", "blue", "small"),)),
            "three small blue squares on a black background",
        ),
        (
            SceneSpec(
                "gray",
                (
                    ObjectGroup(1, "circle", "red", "small"),
                    ObjectGroup(1, "triangle", "blue", "large"),
                ),
                "left of",
            ),
            "a small red circle left of a large blue triangle on a gray background",
        ),
        (
            SceneSpec(
                "white",
                (ObjectGroup(2, "circle", "red"), ObjectGroup(1, "square", "blue")),
                "above",
            ),
            "two red circles above a blue square on a white background",
        ),
        (
            SceneSpec("white", (ObjectGroup(1, "circle", "red"), ObjectGroup(1, "square", "blue"))),
            "a red circle and a blue square on a white background",
        ),
        (
            SceneSpec("black", (ObjectGroup(4, "triangle", "cyan"),)),
            "four cyan triangles on a black background",
        ),
    ],
)
def test_prompt_of_grammar(spec: SceneSpec, prompt: str) -> None:
    assert prompt_of(spec) == prompt


def test_prompt_of_distinct_specs_distinct_prompts() -> None:
    specs = set(_specs(3000))
    assert len({prompt_of(spec) for spec in specs}) == len(specs)


def test_vocabulary_covers_every_prompt() -> None:
    words = set(vocabulary())
    assert {word for spec in _specs(2000) for word in prompt_of(spec).split()} <= words
    assert vocabulary() == sorted(words)


@pytest.mark.parametrize("kind", CATEGORIES)
def test_sample_spec_kind_is_its_category(kind: str) -> None:
    rng = np.random.default_rng(1)
    assert {category_of(sample_spec(rng, kind)) for _ in range(200)} == {kind}


def test_sample_spec_draws_every_kind() -> None:
    counts = Counter(category_of(spec) for spec in _specs(2000))
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) > 150


def test_sample_spec_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'colors'"):
        sample_spec(np.random.default_rng(0), "colors")


# JSON


def test_spec_json_round_trip_and_canonical() -> None:
    for spec in _specs(500):
        text = spec_to_json(spec)
        assert spec_from_json(text) == spec
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_spec_from_json_size_optional() -> None:
    text = '{"background":"white","groups":[{"count":1,"shape":"circle","colour":"red"}]}'
    assert spec_from_json(text) == SceneSpec("white", (ObjectGroup(1, "circle", "red", ANY),))


GROUP = '{"count":1,"shape":"circle","colour":"red","size":"small"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "spec is not JSON"),
        ("[]", "spec must be a JSON object, got list"),
        ('{"groups":[]}', "spec lacks background"),
        ('{"background":"white","groups":[],"mood":"calm"}', "unknown key(s) mood"),
        ('{"background":"pink","groups":[' + GROUP + "]}", "unknown background 'pink'"),
        ('{"background":"white","groups":{}}', "groups must be a list"),
        ('{"background":"white","groups":[]}', "one or two groups, got 0"),
        (
            '{"background":"white","groups":[{"count":1,"shape":"circle","colour":"orange"}]}',
            "group 0: unknown colour 'orange'",
        ),
        (
            '{"background":"white","groups":[{"count":0,"shape":"circle","colour":"red"}]}',
            "group 0: count must be an integer from 1 to 4, got 0",
        ),
        (
            '{"background":"white","groups":[{"count":5,"shape":"circle","colour":"red"}]}',
            "count must be an integer from 1 to 4, got 5",
        ),
        (
            '{"background":"white","groups":[{"count":true,"shape":"circle","colour":"red"}]}',
            "count must be an integer",
        ),
        (
            '{"background":"white","groups":[{"count":1,"shape":"star","colour":"red"}]}',
            "unknown shape 'star'",
        ),
        (
            '{"background":"white","groups":[{"count":1,"shape":"circle","colour":"red","size":"huge"}]}',
            "unknown size 'huge'",
        ),
        ('{"background":"white","groups":[{"count":1}]}', "group 0 lacks colour, shape"),
        (
            '{"background":"white","groups":[' + GROUP + '],"relation":"left of"}',
            "a relation needs two groups",
        ),
        (
            '{"background":"white","groups":[' + GROUP + "," + GROUP + "]}",
            "the two groups are both red circles",
        ),
        (
            '{"background":"white","groups":['
            + GROUP
            + ',{"count":1,"shape":"square","colour":"red"}],'
            '"relation":"behind"}',
            "unknown relation 'behind'",
        ),
        (
            '{"background":"white","groups":[{"count":2,"shape":"circle","colour":"red"},'
            '{"count":1,"shape":"square","colour":"red"}]}',
            "at most 1 object(s) without a relation, got 2",
        ),
        (
            '{"background":"white","groups":[{"count":3,"shape":"circle","colour":"red"},'
            '{"count":1,"shape":"square","colour":"red"}],"relation":"above"}',
            "at most 2 object(s), got 3",
        ),
        (
            '{"background":"white","groups":['
            + GROUP
            + ',{"count":2,"shape":"square","colour":"red"}],'
            '"relation":"above"}',
            "group 1 of a two-group scene has one object, got 2",
        ),
        (
            '{"background":"white","groups":[{"count":2,"shape":"circle","colour":"any"}]}',
            "a colour may be left out only for a single object",
        ),
        (
            '{"background":"white","groups":['
            + GROUP
            + ',{"count":1,"shape":"square","colour":"any"}]}',
            "a colour may be left out only in a one-group scene",
        ),
    ],
)
def test_spec_from_json_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        spec_from_json(text)
    assert message in str(info.value)


# Rendering


@pytest.mark.parametrize("size", [64, 128, (192, 128), (128, 192), 512])
def test_render_size_and_mode(size: int | tuple[int, int]) -> None:
    spec = SceneSpec("gray", (ObjectGroup(4, "triangle", "green", "large"),))
    image = render(spec, size, seed=3)
    assert image.mode == "RGB"
    assert image.size == ((size, size) if isinstance(size, int) else size)


def test_render_deterministic_and_seeded() -> None:
    spec = _specs(1, seed=5)[0]
    assert render(spec, 128, seed=7).tobytes() == render(spec, 128, seed=7).tobytes()
    assert render(spec, 128, seed=7).tobytes() != render(spec, 128, seed=8).tobytes()


def test_render_colours_and_soft_edges() -> None:
    spec = SceneSpec("black", (ObjectGroup(1, "circle", "yellow", "large"),))
    pixels = np.asarray(render(spec, 128))
    colours = Counter(map(tuple, pixels.reshape(-1, 3)))
    assert colours.most_common(1)[0][0] == BACKGROUNDS["black"]
    assert colours[COLOURS["yellow"]] > 0.05 * 128 * 128  # ~0.08 of the image is the disc
    assert len(colours) > 10  # antialiased: blends of the two along the edge


def test_render_bad_size() -> None:
    spec = _specs(1)[0]
    with pytest.raises(ValueError, match="32 to 2048"):
        render(spec, 16)


@pytest.mark.parametrize("size", [64, 128, (192, 128), (128, 192)])
def test_layout_keeps_every_rule(size: int | tuple[int, int]) -> None:
    width, height = (size, size) if isinstance(size, int) else size
    unit = min(width, height)
    for seed, spec in enumerate(_specs(150, seed=2)):
        objects = layout(spec, size, seed)
        assert len(objects) == sum(group.count for group in spec.groups)
        for o in objects:
            assert o.cx - o.width / 2 >= MARGIN * unit - 1e-9
            assert o.cy - o.height / 2 >= MARGIN * unit - 1e-9
            assert o.cx + o.width / 2 <= width - MARGIN * unit + 1e-9
            assert o.cy + o.height / 2 <= height - MARGIN * unit + 1e-9
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                assert a.separated(b, GAP * unit)
        if spec.relation is None:
            continue
        for a in (o for o in objects if o.group == 0):
            for b in (o for o in objects if o.group == 1):
                horizontal = spec.relation in ("left of", "right of")
                ahead = {
                    "left of": b.cx - b.width / 2 - (a.cx + a.width / 2),
                    "right of": a.cx - a.width / 2 - (b.cx + b.width / 2),
                    "above": b.cy - b.height / 2 - (a.cy + a.height / 2),
                    "below": a.cy - a.height / 2 - (b.cy + b.height / 2),
                }[spec.relation]
                assert ahead >= GAP * unit - 1e-9
                axis = abs(a.cx - b.cx) if horizontal else abs(a.cy - b.cy)
                across = abs(a.cy - b.cy) if horizontal else abs(a.cx - b.cx)
                assert across <= PERPENDICULAR_SLACK * axis + 1e-9


def test_layout_crowded_scenes_fit() -> None:
    big = SceneSpec("white", (ObjectGroup(4, "square", "red", "large"),))
    pair = SceneSpec(
        "white",
        (ObjectGroup(2, "square", "red", "large"), ObjectGroup(1, "circle", "red", "large")),
        "above",
    )
    for seed in range(20):
        assert len(layout(big, 64, seed)) == 4
        assert len(layout(pair, (192, 128), seed)) == 3


def test_layout_any_size_is_one_size_per_group() -> None:
    spec = SceneSpec("white", (ObjectGroup(3, "circle", "red", ANY),))
    sizes = [{o.width for o in layout(spec, 128, seed)} for seed in range(20)]
    assert all(len(widths) == 1 for widths in sizes)
    assert len(set().union(*sizes)) == 2  # both sizes get picked


# The held-out split


def test_held_out_about_fifteen_percent() -> None:
    specs = _specs(4000, seed=3)
    two_group = [spec for spec in specs if len(spec.groups) == 2]
    share = sum(map(is_held_out, two_group)) / len(two_group)
    assert 0.12 < share < 0.18
    assert 0.12 < sum(map(is_held_out, specs)) / len(specs) < 0.22


def test_held_out_floor_per_one_group_category() -> None:
    rng = np.random.default_rng(4)
    for kind in ("colour", "shape", "count"):
        held = {spec for spec in (sample_spec(rng, kind) for _ in range(3000)) if is_held_out(spec)}
        assert len(held) >= HELD_OUT_FLOOR


def test_held_out_follows_the_canonical_json() -> None:
    # The rule must not drift: these two are pinned (the first 8 bytes of the sha256).
    held = spec_from_json(
        '{"background":"gray","groups":[{"colour":"any","count":1,"shape":"circle","size":"any"}],'
        '"relation":null}'
    )
    kept = SceneSpec("white", (ObjectGroup(1, "circle", "red", "large"),))
    assert is_held_out(held)
    assert not is_held_out(kept)


def test_sample_training_spec_never_held_out() -> None:
    rng = np.random.default_rng(6)
    specs = [sample_training_spec(rng) for _ in range(2000)]
    assert not any(map(is_held_out, specs))
    assert set(map(category_of, specs)) == set(CATEGORIES)


# The prompt file


def test_prompt_file_is_what_the_command_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out is relative, as in the file's comment
    assert prompt_file.main([]) == 0
    assert (tmp_path / "prompts" / "shapes-64.tsv").read_bytes() == SHAPES_64.read_bytes()


def test_prompt_file_rows_held_out_balanced_and_consistent() -> None:
    rows = load_prompts(SHAPES_64)
    assert len(rows) == 64
    counts = Counter(row.category for row in rows)
    assert counts == {c: 12 if c in ("position", "two objects") else 10 for c in CATEGORIES}
    for row in rows:
        spec = spec_from_json(row.spec)
        assert is_held_out(spec)
        assert prompt_of(spec) == row.text
        assert category_of(spec) == row.category
        assert row.spec == spec_to_json(spec)


def test_prompt_file_other_seed_and_count(tmp_path: Path) -> None:
    out = tmp_path / "other.tsv"
    prompt_file.write_prompt_file(out, count=20, seed=1)
    rows = load_prompts(out)
    assert len(rows) == 20
    assert Counter(row.category for row in rows)["position"] == 4  # 3 each, 2 over
    assert prompt_file.quotas(64)["two objects"] == 12
    with pytest.raises(ValueError, match="at least 6"):
        prompt_file.quotas(5)


def test_shapes_module_imports_nothing_heavy() -> None:
    # The web tier's prompt loader imports the world: no torch, and no scipy either.
    code = "import sys, app.bench.prompts; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not {"torch", "diffusers", "transformers", "scipy"} & loaded
