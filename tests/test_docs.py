"""Docs move with code: what users read names what the code has."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from latlab.cli.main import app
from latlab.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_config_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `(LATLAB_[A-Z_]+)` \|", README, re.MULTILINE))
    expected = {f"LATLAB_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README


def test_readme_lists_every_cli_command() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    assert all(f"latlab {name}" in README for name in commands)


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped,
    spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_docs_links_resolve() -> None:
    for link in re.findall(r"\]\((docs/[^)]+|CHANGELOG\.md)\)", README):
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if anchor:
            assert anchor in heading_anchors((ROOT / path).read_text()), link
