"""The English and Chinese docs keep in step: no section without its Chinese counterpart.

The rule:
- docs/NAME.md and docs/NAME.zh-CN.md both exist, with the same number of `##` sections, in the same order
  (the Chinese page is written for a Chinese reader, so titles differ; the count and order are what is checked).
- README.md is the front page; its Chinese counterpart is the guide docs/README.zh-CN.md, which is longer and
  ordered for its own reader. So each `##` section of README.md names its Chinese section on the next line,
  `<!-- zh-CN: TITLE -->`, and docs/README.zh-CN.md must have a `## TITLE` section.
Headings inside code blocks are not headings.
"""
import re

import pytest

from _support import REPO_ROOT

DOCS = REPO_ROOT / "docs"
ZH_MARKER = re.compile(r"^<!-- zh-CN: (.+?) -->$")
# Pages another branch is giving their Chinese counterpart right now. Each entry must still lack it: once the
# counterpart exists, this test fails until the entry is removed, so the list cannot hide a missing page.
AWAITING_COUNTERPART = {}  # page name -> why its Chinese page is not written yet


def headings(text):
    """[(line number, title)] of the `## ` headings outside ``` code blocks."""
    found, in_code = [], False
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("## "):
            found.append((number, line[3:].strip()))
    return found


def english_pages():
    return sorted(page for page in DOCS.glob("*.md") if not page.name.endswith(".zh-CN.md")
                  and page.name != "README.zh-CN.md")


def counterpart_problem(english_text, chinese_text):
    """None when the two pages have the same number of `##` sections; else a sentence saying what is missing."""
    english, chinese = headings(english_text), headings(chinese_text)
    if len(english) == len(chinese):
        return None
    return (f"{len(english)} ## sections in English, {len(chinese)} in Chinese; English sections: "
            + ", ".join(f"line {number} '{title}'" for number, title in english))


def readme_problems(readme_text, guide_text):
    """[sentence] for each README `##` section without a `<!-- zh-CN: TITLE -->` line, or whose TITLE is not a
    `##` section of the Chinese guide."""
    lines = readme_text.split("\n")
    guide_titles = {title for _, title in headings(guide_text)}
    problems = []
    for number, title in headings(readme_text):
        marker = ZH_MARKER.match(lines[number].strip()) if number < len(lines) else None
        if marker is None:
            problems.append(f"README.md:{number} '## {title}' has no <!-- zh-CN: TITLE --> on the next line")
        elif marker.group(1) not in guide_titles:
            problems.append(f"README.md:{number} '## {title}' points to '## {marker.group(1)}', which "
                            f"docs/README.zh-CN.md does not have")
    return problems


@pytest.mark.parametrize("page", english_pages(), ids=lambda page: page.name)
def test_every_docs_page_has_a_chinese_counterpart_with_the_same_sections(page):
    chinese = page.with_name(page.name[:-len(".md")] + ".zh-CN.md")
    if page.name in AWAITING_COUNTERPART:
        assert not chinese.exists(), f"{chinese.name} exists now: remove {page.name} from AWAITING_COUNTERPART"
        pytest.skip(f"{chinese.name}: {AWAITING_COUNTERPART[page.name]}")
    assert chinese.exists(), f"docs/{page.name} has no Chinese counterpart docs/{chinese.name}"
    problem = counterpart_problem(page.read_text(encoding="utf-8"), chinese.read_text(encoding="utf-8"))
    assert problem is None, f"docs/{page.name} and docs/{chinese.name}: {problem}"


def test_every_chinese_page_has_its_english_page():
    orphans = [page.name for page in DOCS.glob("*.zh-CN.md") if page.name != "README.zh-CN.md"
               and not page.with_name(page.name[:-len(".zh-CN.md")] + ".md").exists()]
    assert not orphans


def test_every_readme_section_has_its_section_in_the_chinese_guide():
    problems = readme_problems((REPO_ROOT / "README.md").read_text(encoding="utf-8"),
                               (DOCS / "README.zh-CN.md").read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_the_rules_catch_a_missing_section():
    english = "# T\n## One\ntext\n```bash\n## not a heading\n```\n## Two\n"
    assert headings(english) == [(2, "One"), (7, "Two")]
    assert counterpart_problem(english, "# T\n## 一\n## 二\n") is None
    assert "2 ## sections in English, 1 in Chinese" in counterpart_problem(english, "# T\n## 一\n")
    readme = "# R\n## Demo\n<!-- zh-CN: 1. 先跑起来 -->\n## Tests\ntext\n## More\n<!-- zh-CN: 9. 没有 -->\n"
    problems = readme_problems(readme, "# 指南\n## 1. 先跑起来\n")
    assert len(problems) == 2
    assert "README.md:4 '## Tests' has no" in problems[0] and "'## 9. 没有'" in problems[1]


def test_the_readme_is_a_front_page():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("\n")
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move the depth into docs/"


# ---- links between the pages ---------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
# Pages other branches are writing now (README and the guides already link to them). Each must still be absent:
# once it exists, its links are checked like any other and this test asks for the entry to be removed.
AWAITING_PAGES = set()  # linked pages that another change is still writing


def anchor(title):
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script kept), spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def link_problems(page, text):
    """[sentence] for each relative link of `page` (a path under the repository) to a file that does not exist,
    or to a `#anchor` that its target page has no heading for."""
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, mailto:
        path, _, fragment = target.partition("#")
        resolved = (REPO_ROOT / page).parent / path if path else REPO_ROOT / page
        name = resolved.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
        if name in AWAITING_PAGES:
            continue
        if not resolved.exists():
            problems.append(f"{page}: link to {target}: no such file")
        elif fragment and resolved.suffix == ".md":
            titles = [line.lstrip("#").strip() for line in resolved.read_text(encoding="utf-8").split("\n")
                      if line.startswith("#")]
            if fragment not in {anchor(title) for title in titles}:
                problems.append(f"{page}: link to {target}: {name} has no heading with that anchor")
    return problems


def test_links_between_the_pages_lead_somewhere():
    pages = ["README.md", "RELIABILITY.md"] + [f"docs/{path.name}" for path in sorted(DOCS.glob("*.md"))]
    problems = [problem for page in pages
                for problem in link_problems(page, (REPO_ROOT / page).read_text(encoding="utf-8"))]
    assert not problems, "\n".join(problems)
    arrived = sorted(page for page in AWAITING_PAGES if (REPO_ROOT / page).exists())
    assert not arrived, f"these pages exist now: remove them from AWAITING_PAGES: {arrived}"


def test_the_link_check_sees_a_broken_link_and_a_missing_anchor():
    assert anchor("8. 其他模型家族：ALBERT、RoBERTa、XLNet") == "8-其他模型家族albertrobertaxlnet"
    assert anchor("bf16 or fp32") == "bf16-or-fp32"
    text = "[a](reference.md#bf16-or-fp32) [b](reference.md#no-such) [c](nowhere.md) [d](https://x.org/y.md)"
    problems = link_problems("docs/families.md", text)
    assert len(problems) == 2 and "no heading" in problems[0] and "no such file" in problems[1]
