"""Splitting one NC-prompt output ("N responses representing diverse values") into N candidates.

Models format the N responses in many ways: "Response A: ...", "**Option 2.**", "### Response 1",
"## A traditional view", a numbered or lettered list. The parser tries, in order, the layouts whose
markers are least likely to appear inside a response, and accepts a layout only when it finds exactly
labels 1..N (or A..N) in order, or exactly N headings. Anything else raises NCParseError, which keeps
the raw output: a set is never built from fewer (or more) candidates than asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rankers.generation.errors import StrategyError

_LABEL_WORDS = r"(?:response|answer|option|perspective|candidate|version|reply|alternative|viewpoint)s?"
_EMPH = r"[*_]{0,3}"
# "Response B:", "**Option 2.**", "### Answer 3", "Response A (traditional): text". Letters must be
# capitals and a separator (or the end of the line) must follow, so that prose such as "Answer a
# question" or "Answer 2 questions" is not taken for a label.
_LABELLED = re.compile(
    rf"^\s{{0,3}}(?P<hashes>#{{1,6}}\s*)?{_EMPH}\s*(?i:{_LABEL_WORDS})\s*(?i:#|no\.?|number)?\s*"
    rf"(?P<label>\d{{1,2}}|[A-Z])\s*(?:\((?P<paren>[^)]*)\))?\s*{_EMPH}\s*"
    rf"(?:[:.)\-\u2013\u2014]\s*{_EMPH}\s*(?P<rest>.*)|$)"
)
_LIST_ITEM = re.compile(rf"^{_EMPH}\(?(?P<label>\d{{1,2}}|[A-Za-z])[.):]{_EMPH}\s+(?P<rest>\S.*)$")
_HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_BOLD_LINE = re.compile(r"^\s{0,3}(?:\*\*|__)(?P<title>(?:(?!\*\*|__).)+)(?:\*\*|__)\s*:?\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


class NCParseError(StrategyError):
    """The output could not be split into exactly the requested number of responses."""


@dataclass
class ParsedResponse:
    label: str
    title: str
    text: str


@dataclass
class _Header:
    line: int
    label: str
    title: str = ""
    inline: str = ""


def _ordinal(label: str) -> int:
    if label.isdigit():
        return int(label)
    return ord(label.upper()) - ord("A") + 1


def _labels_ok(headers: list[_Header], n: int) -> bool:
    return [_ordinal(h.label) for h in headers] == list(range(1, n + 1))


def _same_kind(headers: list[_Header], n: int) -> list[_Header] | None:
    """Exactly 1..N, using all headers, or only the lettered ones, or only the numbered ones.

    Lettered outer sections with numbered lists inside them (or the reverse) are common.
    """
    for subset in (
        headers,
        [h for h in headers if not h.label.isdigit()],
        [h for h in headers if h.label.isdigit()],
    ):
        if subset and _labels_ok(subset, n):
            return subset
    return None


def _clean(text: str) -> str:
    lines = text.strip("\n").splitlines()
    while lines and (not lines[-1].strip() or _RULE.match(lines[-1])):
        lines.pop()
    while lines and (not lines[0].strip() or _RULE.match(lines[0])):
        lines.pop(0)
    return "\n".join(lines).strip()


def _sections(lines: list[str], headers: list[_Header]) -> list[ParsedResponse] | None:
    out = []
    for i, header in enumerate(headers):
        end = headers[i + 1].line if i + 1 < len(headers) else len(lines)
        body = "\n".join(lines[header.line + 1 : end])
        text = _clean(f"{header.inline}\n{body}" if header.inline else body)
        if not text:
            return None
        out.append(ParsedResponse(label=header.label, title=header.title.strip(" *_:"), text=text))
    return out


def _unpaired_bold(text: str) -> str:
    # "**Response A: the start** of the answer" leaves one unpaired marker behind the label.
    text = text.strip()
    for mark in ("**", "__"):
        if text.count(mark) % 2 == 1:
            text = text.replace(mark, "", 1) if text.startswith(mark) or not text.endswith(mark) else text[: -len(mark)]
    return text.strip()


def _scan(lines: list[str]) -> dict[str, list[_Header]]:
    found: dict[str, list[_Header]] = {"labelled": [], "list": [], "bold": []}
    headings: dict[int, list[_Header]] = {}
    in_fence = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.strip():
            continue
        labelled = _LABELLED.match(line)
        if labelled:
            rest = (labelled["rest"] or "").strip()
            # A heading or an all-bold line names the response; other text after the label is its start.
            is_title = bool(labelled["hashes"]) or bool(_BOLD_LINE.match(line))
            title = " ".join(x for x in (labelled["paren"] or "", rest if is_title else "") if x)
            found["labelled"].append(
                _Header(number, labelled["label"], title=title, inline="" if is_title else _unpaired_bold(rest))
            )
        heading = _HEADING.match(line)
        if heading:
            same_level = headings.setdefault(len(heading["hashes"]), [])
            same_level.append(_Header(number, str(len(same_level) + 1), heading["title"]))
            continue
        bold = _BOLD_LINE.match(line)
        if bold:
            found["bold"].append(_Header(number, str(len(found["bold"]) + 1), bold["title"]))
            continue
        item = _LIST_ITEM.match(line)
        if item:
            found["list"].append(_Header(number, item["label"], inline=item["rest"]))
    for level in sorted(headings):
        found[f"heading{level}"] = headings[level]
    return found


def parse_nc_output(text: str, n: int) -> list[ParsedResponse]:
    """Split `text` into exactly `n` responses, or raise NCParseError (with the raw text)."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found = _scan(lines)
    tried = []
    # Explicit labels first ("Response B:"), then headings of one level, bold title lines, list items.
    order = ["labelled", *sorted(k for k in found if k.startswith("heading")), "bold", "list"]
    for kind in order:
        headers = found.get(kind, [])
        # Labels must run 1..N; unlabelled headings and bold lines must simply number N.
        exact = headers if len(headers) == n else None
        chosen = _same_kind(headers, n) if kind in ("labelled", "list") else exact
        if chosen:
            sections = _sections(lines, chosen)
            if sections is not None:
                return sections
            tried.append(f"{kind}: an empty section")
        elif headers:
            tried.append(f"{len(headers)} {kind} markers ({', '.join(h.label for h in headers[:8])})")
    detail = "; ".join(tried) if tried else "no numbered, lettered or headed sections"
    raise NCParseError(f"expected {n} responses, could not split the output: {detail}", raw_output=text or "")
