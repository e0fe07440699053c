"""Line breaks as written: the Markdown preprocessing, checked by rendering it with markdown-it."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from coolfusion_local.tui.line_breaks import hard_line_breaks

HAIKU = "Autumn rain falls soft\nOn the roof of the old house\nThe kettle answers"


def html(text: str) -> str:
    # The parser Textual's Markdown widget uses, with tables as Textual enables them.
    return MarkdownIt("gfm-like").render(text)


def test_a_poem_keeps_its_lines():
    assert html(HAIKU).count("<br />") == 0  # the problem: one paragraph, lines joined
    assert html(hard_line_breaks(HAIKU)) == (
        "<p>Autumn rain falls soft<br />\nOn the roof of the old house<br />\nThe kettle answers</p>\n"
    )


def test_an_address_and_a_sign_off_keep_their_lines():
    letter = "Dear Ann,\n\nSee you soon.\nBest,\nBob\n\n221B Baker Street\nLondon NW1 6XE"
    assert html(hard_line_breaks(letter)).count("<br />") == 3


def test_code_blocks_are_untouched():
    text = "Run this:\n```python\nx = 1\ny = 2\n```\nand\n~~~\na\n~~~\n\n    indented = 1\n    code = 2\n\nafter"
    changed = hard_line_breaks(text)
    assert "x = 1\ny = 2\n```" in changed
    assert "~~~\na\n~~~" in changed
    assert "    indented = 1\n    code = 2\n" in changed
    assert "x = 1\ny = 2\n</code></pre>" in html(changed)
    assert "indented = 1\ncode = 2\n</code></pre>" in html(changed)
    assert "Run this:" in changed and "and  \n~~~" in changed  # ordinary lines between blocks still break


def test_a_fence_inside_a_fence_of_more_backticks_does_not_close_it():
    text = "````\n```\nnot closed\n```\n````\nline one\nline two"
    changed = hard_line_breaks(text)
    assert changed.startswith("````\n```\nnot closed\n```\n````\n")
    assert changed.endswith("line one  \nline two")


@pytest.mark.parametrize(
    "text",
    [
        "Steps:\n1. Mix\n2. Bake\n3. Eat",
        "- one\n- two\n  more of two\n- three",
        "# Title\nText under it",
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |",
        "Title\n=====\n\nSub\n---\nbody",
        "> quoted\n> lines",
        "a\n\n---\n\nb",
    ],
)
def test_markdown_structure_renders_as_before(text):
    """Lists, headings, tables, rules and quotes: same blocks as without the change."""
    before, after = html(text), html(hard_line_breaks(text))
    assert after.replace("<br />", "").replace("  \n", "\n") == before.replace("  \n", "\n")
    for tag in ("<ol>", "<ul>", "<li>", "<h1>", "<h2>", "<table>", "<tr>", "<hr />", "<blockquote>"):
        assert before.count(tag) == after.count(tag)


def test_windows_line_endings_keep_their_lines_too():
    assert html(hard_line_breaks(HAIKU.replace("\n", "\r\n"))) == html(hard_line_breaks(HAIKU))


def test_lines_already_ending_in_a_hard_break_are_kept_as_they_are():
    assert hard_line_breaks("one  \ntwo\\\nthree") == "one  \ntwo\\\nthree"


def test_one_line_and_blank_lines_are_unchanged():
    assert hard_line_breaks("just one line") == "just one line"
    assert hard_line_breaks("para one\n\npara two\n") == "para one\n\npara two\n"


def test_the_change_is_prefix_stable_so_a_stream_can_go_through_it():
    text = "Roses\nare red\n```\ncode\n```\n\n    x\nviolets\n| a |\nend"
    whole = hard_line_breaks(text, streaming=True)
    for cut in range(len(text) + 1):
        assert whole.startswith(hard_line_breaks(text[:cut], streaming=True)), text[:cut]
    # The same Markdown as the complete text's, give or take spaces that end a paragraph.
    assert html(whole) == html(hard_line_breaks(text))
