"""The README's install steps, as code: the fenced blocks a marker names, in order.

A block is marked by an HTML comment on the line before its fence (invisible when the README
is rendered): ``<!-- install-env -->`` (the variables a reader sets to their own values),
``<!-- install-step -->`` (commands run as written) or ``<!-- install-step: NAME -->`` (a step a
test may replace with its environment's own, e.g. ``image``: build and push). Blocks may sit
in a list item: their indentation is removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"^<!--\s*install-(env|step)(?::\s*([a-z-]+))?\s*-->$")
EXPORT = re.compile(r"^export\s+([A-Z_][A-Z0-9_]*)=", re.M)


@dataclass(frozen=True)
class Block:
    kind: str  # "env" or "step"
    name: str  # "" unless the marker names the step
    code: str


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of any level (a "#"
    line inside a fenced block is a shell comment, not a heading)."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for i in range(start, len(lines)):
        if lines[i].strip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", lines[i]):
            return "\n".join(lines[start:i])
    return "\n".join(lines[start:])


def marked_blocks(text: str) -> list[Block]:
    """Every marked fenced block of ``text``, in order."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = MARKER.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence = lines[i + 1]
        if not fence.strip().startswith("```"):
            raise ValueError(f"{lines[i].strip()} is not followed by a fenced block")
        indent = len(fence) - len(fence.lstrip(" "))
        body = []
        i += 2
        while lines[i].strip() != "```":
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line)
            i += 1
        blocks.append(Block(match.group(1), match.group(2) or "", "\n".join(body) + "\n"))
        i += 1
    return blocks


def exported_names(code: str) -> set[str]:
    return set(EXPORT.findall(code))
