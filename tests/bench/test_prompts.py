from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from app.bench.prompts import PromptRow, load_prompts
from app.errors import InputFileError

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTI_64 = REPO_ROOT / "prompts" / "parti-64.tsv"
HEADER = "prompt\tcategory\tchallenge\n"


def _load_sampler() -> ModuleType:
    # prompts/ is a folder of data and scripts, not a package, so import the script by path.
    spec = importlib.util.spec_from_file_location(
        "sample_parti", REPO_ROOT / "prompts" / "sample_parti.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error(path: Path, content: str | bytes) -> InputFileError:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        load_prompts(path)
    return info.value


def _assert_error(err: InputFileError, path: Path, line: int | None, reason: str) -> None:
    where = str(path) if line is None else f"{path}:{line}"
    assert str(err).startswith(f"{where}: "), str(err)
    assert reason in str(err)
    assert err.line == line


# The shipped prompt set


def test_parti64_loads_with_enough_rows() -> None:
    rows = load_prompts(PARTI_64)
    assert len(rows) >= 64
    assert all(row.text and row.category and row.challenge for row in rows)


def test_parti64_covers_every_category() -> None:
    categories = Counter(row.category for row in load_prompts(PARTI_64))
    assert len(categories) == 12
    assert min(categories.values()) >= 4


def test_parti64_spreads_challenges() -> None:
    challenges = {row.challenge for row in load_prompts(PARTI_64)}
    assert len(challenges) >= 8


def test_sampler_reproducible(tmp_path: Path) -> None:
    sampler = _load_sampler()
    first, second = tmp_path / "first.tsv", tmp_path / "second.tsv"
    assert sampler.main([str(sampler.DEFAULT_SOURCE), "--out", str(first)]) == 0
    assert sampler.main([str(sampler.DEFAULT_SOURCE), "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    # The shipped file is what the documented command produces.
    assert first.read_bytes() == PARTI_64.read_bytes()


def test_sampler_other_seed_differs(tmp_path: Path) -> None:
    sampler = _load_sampler()
    out = tmp_path / "other.tsv"
    sampler.main([str(sampler.DEFAULT_SOURCE), "--out", str(out), "--seed", "1"])
    assert out.read_bytes() != PARTI_64.read_bytes()
    assert len(load_prompts(out)) == 64


# Reading valid files


def test_load_prompts_any_column_order_and_case(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(
        "# a comment before the header\n"
        "\n"
        "Challenge\tNOTE\tPrompt\tcategory\n"
        "Basic\tfrom Parti\ta red cube\tArtifacts\n"
        "# a comment between rows\n"
        "Quantity\t\t  three cats  \tAnimals\n",
        encoding="utf-8",
    )
    assert load_prompts(path) == [
        PromptRow("a red cube", "Artifacts", "Basic", "from Parti", line=4),
        PromptRow("three cats", "Animals", "Quantity", "", line=6),
    ]


def test_load_prompts_note_optional(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(HEADER + 'a sign that says "OPEN"\tArtifacts\tWriting & Symbols\n')
    (row,) = load_prompts(str(path))
    assert row == PromptRow('a sign that says "OPEN"', "Artifacts", "Writing & Symbols", line=2)


def test_load_prompts_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_bytes(b"\xef\xbb\xbfprompt\tcategory\tchallenge\r\na cat\tAnimals\tBasic\r\n")
    assert load_prompts(path) == [PromptRow("a cat", "Animals", "Basic", line=2)]


def test_load_prompts_limit_keeps_first(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(HEADER + "".join(f"prompt {i}\tA\tB\n" for i in range(5)))
    assert [row.text for row in load_prompts(path, limit=2)] == ["prompt 0", "prompt 1"]
    assert len(load_prompts(path, limit=99)) == 5


def test_load_prompts_limit_zero(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(HEADER + "a cat\tAnimals\tBasic\n")
    with pytest.raises(ValueError, match="limit"):
        load_prompts(path, limit=0)


def test_load_prompts_prompt_of_max_length(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(HEADER + "x" * 1000 + "\tA\tB\n")
    assert len(load_prompts(path)[0].text) == 1000


# Errors: file, line and reason


def test_load_prompts_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.tsv"
    with pytest.raises(InputFileError) as info:
        load_prompts(path)
    _assert_error(info.value, path, None, "file not found")


def test_load_prompts_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    content = (HEADER + "a cat\tAnimals\tBasic\ncafé au lait\tFood\tBasic\n").encode("latin-1")
    _assert_error(_error(path, content), path, 3, "not UTF-8")


def test_load_prompts_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tsv"
    _assert_error(_error(path, ""), path, None, "empty file")


def test_load_prompts_only_comments(tmp_path: Path) -> None:
    path = tmp_path / "comments.tsv"
    _assert_error(_error(path, "# nothing here\n\n"), path, None, "empty file")


def test_load_prompts_no_header(tmp_path: Path) -> None:
    path = tmp_path / "headless.tsv"
    _assert_error(_error(path, "a cat\tAnimals\tBasic\n"), path, 1, "no header line")


def test_load_prompts_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, "\nprompt\tcategory\na cat\tAnimals\n")
    _assert_error(err, path, 2, "missing required column(s) challenge")


def test_load_prompts_unknown_column(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, "prompt\tcategory\tchallenge\tScore\na cat\tAnimals\tBasic\t3\n")
    _assert_error(err, path, 1, "unknown column(s) 'Score'")


def test_load_prompts_repeated_column(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, "prompt\tcategory\tchallenge\tPrompt\na\tb\tc\td\n")
    _assert_error(err, path, 1, "repeated column(s) prompt")


def test_load_prompts_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, HEADER + "a cat\tAnimals\tBasic\na dog\tAnimals\n")
    _assert_error(err, path, 3, "expected 3 tab-separated fields, found 2")


def test_load_prompts_empty_prompt(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, HEADER + "a cat\tAnimals\tBasic\n  \tAnimals\tBasic\n")
    _assert_error(err, path, 3, "empty prompt")


def test_load_prompts_prompt_too_long(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, HEADER + "x" * 1001 + "\tA\tB\n")
    _assert_error(err, path, 2, "prompt is 1001 characters, the limit is 1000")


def test_load_prompts_duplicate_prompt(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    err = _error(path, HEADER + "a cat\tAnimals\tBasic\na dog\tAnimals\tBasic\na cat\tX\tY\n")
    _assert_error(err, path, 4, "duplicate prompt, first on line 2")


def test_load_prompts_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    _assert_error(_error(path, HEADER + "# rows to come\n"), path, None, "no prompt rows")


# The optional spec column (shapes-world prompts, judged by app/quality/adherence.py)

SPEC = (
    '{"background":"white","groups":[{"colour":"red","count":1,"shape":"circle","size":"any"}],'
    '"relation":null}'
)


def test_load_prompts_spec_column_kept_as_text(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(
        "prompt\tcategory\tchallenge\tSpec\n"
        f"a red circle on a white background\tcolour\tColour\t{SPEC}\n"
        "a cat\tAnimals\tBasic\t\n",
        encoding="utf-8",
    )
    first, second = load_prompts(path)
    assert first == PromptRow(
        "a red circle on a white background", "colour", "Colour", line=2, spec=SPEC
    )
    assert second.spec == ""  # an empty cell: a prompt with nothing to check


def test_load_prompts_without_spec_column_has_empty_spec(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(HEADER + "a cat\tAnimals\tBasic\n")
    assert load_prompts(path)[0].spec == ""


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (SPEC.replace("red", "beige"), "bad spec: group 0: unknown colour 'beige'"),
        (SPEC.replace('"count":1', '"count":5'), "bad spec: group 0: count must be an integer"),
        ("{not json", "bad spec: spec is not JSON"),
    ],
)
def test_load_prompts_bad_spec(tmp_path: Path, spec: str, reason: str) -> None:
    path = tmp_path / "p.tsv"
    content = (
        "prompt\tcategory\tchallenge\tspec\n"
        f"a red circle on a white background\tcolour\tColour\t{SPEC}\n"
        f"another\tcolour\tColour\t{spec}\n"
    )
    _assert_error(_error(path, content), path, 3, reason)
