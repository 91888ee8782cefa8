"""The generated blocks in docs/ are exactly what `make docs` writes (not merely similar)."""

from __future__ import annotations

import re

import pytest

from dev import docs

BLOCKS = docs.blocks()
CASES = [(path, name) for path, named in BLOCKS.items() for name in named]


@pytest.mark.parametrize("path", sorted(BLOCKS), ids=lambda p: p.name)
def test_each_file_has_each_generated_block_once_and_no_other(path):
    text = path.read_text()
    begins = re.findall(r"<!-- ([\w-]+):begin -->", text)
    ends = re.findall(r"<!-- ([\w-]+):end -->", text)
    assert sorted(begins) == sorted(ends) == sorted(BLOCKS[path])


@pytest.mark.parametrize(("path", "name"), CASES, ids=lambda c: getattr(c, "name", c))
def test_each_block_equals_its_generator(path, name):
    got = docs.extract(path.read_text(), name)
    assert got == BLOCKS[path][name], f"{path.name}: {name} is stale: run `make docs`"


def test_make_docs_would_change_nothing():
    for path, named in BLOCKS.items():
        text = path.read_text()
        rendered = text
        for name, body in named.items():
            rendered = docs.replace(rendered, name, body)
        assert rendered == text, f"{path.name} is stale: run `make docs`"


def test_no_generated_block_is_left_in_the_readme():
    """The README is for a newcomer's first hour; reference tables live in docs/."""
    assert "begin -->" not in (docs.ROOT / "README.md").read_text()


def test_extract_reads_back_what_replace_writes():
    text = "intro\n<!-- t:begin -->\nold\n<!-- t:end -->\noutro\n"
    new = docs.replace(text, "t", "| a |\n| b |")
    assert new == "intro\n<!-- t:begin -->\n| a |\n| b |\n<!-- t:end -->\noutro\n"
    assert docs.extract(new, "t") == "| a |\n| b |"
    assert docs.extract("<!-- t:begin -->\nx\n\n<!-- t:end -->", "t") == "x\n"  # not "x"
    assert docs.extract("<!-- t:begin -->\n<!-- t:end -->", "t") == ""
    assert docs.extract(text, "missing") is None


def _routes_table() -> str:
    readme = (docs.ROOT / "README.md").read_text()
    start = readme.index("### Routes, and the code behind each")
    return readme[start : readme.index("\n## ", start)]


def test_the_readme_routes_table_names_every_function():
    from tests.unit.test_registration import EXPECTED

    table = _routes_table()
    for name in EXPECTED:
        if name.startswith("config_") or name == "openapi":
            assert "`functions/config_api.py`" in table
        elif name.startswith("portal_"):  # one function per page path, like the config API
            assert "`functions/portal.py`" in table
        else:
            assert f"` `{name}` |" in table, f"function {name} has no row in the README"


def test_every_file_and_symbol_the_routes_table_names_exists():
    """One hop from a route to the code: each `path` `Symbol` pair must be real."""
    pairs = re.findall(r"`((?:functions|lib)/[\w/]+\.py)` `([\w.]+)`", _routes_table())
    assert len(pairs) >= 10
    for path, symbol in pairs:
        source = (docs.ROOT / path).read_text()
        for part in symbol.split("."):
            assert re.search(rf"(def|class) {part}\b", source), f"{path} has no {symbol}"
