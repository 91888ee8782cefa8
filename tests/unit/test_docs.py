"""The README's generated blocks are exactly what `make docs` writes (not merely similar)."""

from __future__ import annotations

import re

import pytest

from dev import docs

BLOCKS = docs.blocks()


@pytest.fixture(scope="module")
def readme() -> str:
    return docs.README.read_text()


def test_the_readme_has_each_generated_block_once_and_no_other(readme):
    begins = re.findall(r"<!-- ([\w-]+):begin -->", readme)
    ends = re.findall(r"<!-- ([\w-]+):end -->", readme)
    assert sorted(begins) == sorted(ends) == sorted(BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_each_block_equals_its_generator(readme, name):
    assert docs.extract(readme, name) == BLOCKS[name], f"README {name} is stale: run `make docs`"


def test_make_docs_would_change_nothing(readme):
    rendered = readme
    for name, body in BLOCKS.items():
        rendered = docs.replace(rendered, name, body)
    assert rendered == readme, "README is stale: run `make docs`"


def test_extract_reads_back_what_replace_writes():
    text = "intro\n<!-- t:begin -->\nold\n<!-- t:end -->\noutro\n"
    new = docs.replace(text, "t", "| a |\n| b |")
    assert new == "intro\n<!-- t:begin -->\n| a |\n| b |\n<!-- t:end -->\noutro\n"
    assert docs.extract(new, "t") == "| a |\n| b |"
    assert docs.extract("<!-- t:begin -->\nx\n\n<!-- t:end -->", "t") == "x\n"  # not "x"
    assert docs.extract(text, "missing") is None
