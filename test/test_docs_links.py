"""The README and docs/ as a newcomer follows them: every relative link (and image) resolves to a
file of the repository, every `#anchor` into a Markdown page names one of its headings (GitHub's
slugs), every docs page is reachable from the README or docs/index.md, every bench script is on the
benchmarks page, and the README stays short.

Pure text: no imports of the package, no network; links to http(s) and mailto are not followed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_BYTES = 12 * 1024

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows) or ")".
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _strip_code(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(path: Path) -> list[str]:
    """Link targets of a Markdown file, outside code blocks and code spans."""
    return _LINK.findall(_strip_code(path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        s = slug(heading)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = path if not file_part else (path.parent / unquote(file_part)).resolve()
        rel = f"{path.relative_to(REPO)}: ({target})"
        if REPO not in dest.parents and dest != REPO:
            problems.append(f"{rel} points outside the repository")
        elif not dest.exists():
            problems.append(f"{rel} -> {dest.relative_to(REPO)} does not exist")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            problems.append(f"{rel}: no heading '#{fragment}' in {dest.relative_to(REPO)}")
    return problems


def test_slug_follows_github():
    assert slug("Latency: success and stalls") == "latency-success-and-stalls"
    assert slug("The shipped checkpoint `models/tiny`") == "the-shipped-checkpoint-modelstiny"
    assert slug("Running `action-images` and the benches yourself") == (
        "running-action-images-and-the-benches-yourself")


def test_link_parser_skips_code():
    text = "see [a](a.md) and ![img](img/x.png \"t\")\n`[not](code.md)`\n```\n[nor](this.md)\n```\n"
    assert _LINK.findall(_strip_code(text)) == ["a.md", "img/x.png"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    assert broken_links(page) == []


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"


def test_every_docs_page_is_linked_from_readme_or_index():
    linked = set()
    for page in (README, DOCS / "index.md"):
        for target in links(page):
            file_part = target.partition("#")[0]
            if file_part and not re.match(r"^[a-z][a-z0-9+.-]*:", file_part, re.IGNORECASE):
                linked.add((page.parent / unquote(file_part)).resolve())
    orphans = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked and p.name != "index.md"]
    assert orphans == [], f"docs pages no one links to from README.md or docs/index.md: {orphans}"


def test_every_bench_script_is_on_the_benchmarks_page():
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((REPO / "bench").glob("bench_*.py")) if f"bench/{p.name}" not in page]
    assert missing == [], f"bench scripts not listed (with their command and figures) in docs/benchmarks.md: {missing}"
