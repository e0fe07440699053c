"""Line breaks as the model wrote them, in Markdown that still renders as Markdown.

Markdown joins the lines of a paragraph: a haiku written on three lines shows
as one. `hard_line_breaks` ends each line of ordinary text with two spaces
(a CommonMark hard break), and leaves alone what must stay as it is: fenced and
indented code, table rows, headings, blank lines and lines that already end in
a hard break. Two trailing spaces are a no-op wherever the newline is not a
soft break (the end of a paragraph, before a list item or a heading), so a
line need not know what follows it. With `streaming=True` no line does: the
text of an answer so far, changed, is then the start of the whole answer
changed, which lets a streamed answer be written through it piece by piece.
Otherwise lines before a blank line or the end are left without the spaces,
which keeps exported files free of trailing whitespace there.
"""

from __future__ import annotations

import re

HARD_BREAK = "  "
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_TABLE_ROW = re.compile(r"^\s*\|")
_INDENTED = re.compile(r"^( {4}|\t)")


def hard_line_breaks(text: str, *, streaming: bool = False) -> str:
    """`text` with every single line break of ordinary text made a hard break.

    `streaming`: `text` may go on, so make the change prefix-stable.
    """
    if "\n" not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None  # the opening fence's marker while inside a fenced block
    previous_blank = True  # the start of the text counts as after a blank line
    in_indented_code = False
    for number, line in enumerate(lines):
        # The last piece has no newline after it (yet); a complete text needs
        # no break before a blank line or at its end.
        ends_line = number < len(lines) - 1 and (streaming or bool(lines[number + 1].strip()))
        blank = not line.strip()
        if fence is not None:
            closing = _FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            out.append(line)
            previous_blank = False
            continue
        opening = _FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in line.strip()[len(opening.group(1)):]):
            fence = opening.group(1)
            out.append(line)
            previous_blank = False
            continue
        in_indented_code = not blank and bool(_INDENTED.match(line)) and (previous_blank or in_indented_code)
        keep = (
            not ends_line
            or blank
            or in_indented_code
            or line.rstrip("\r").endswith((HARD_BREAK, "\\"))
            or _HEADING.match(line)
            or _TABLE_ROW.match(line)
        )
        if keep:
            out.append(line)
        else:  # before a "\r" of a "\r\n" ending, which Markdown reads as one line break
            body, cr = (line[:-1], "\r") if line.endswith("\r") else (line, "")
            out.append(body + HARD_BREAK + cr)
        previous_blank = blank
    return "\n".join(out)
