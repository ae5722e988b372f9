"""Splitting one NC-prompt output into N candidates: robust to layouts, loud on failure."""

import pytest

from rankers.generation import NCParseError, StrategyError, parse_nc_output

NUMBERED = """Here are four responses that represent diverse values:

1. Stay close to your parents: family comes first, and the money will not replace the time.
2. Take the offer. A 20% raise compounds, and you can visit often.

3. Ask your parents what they want; the decision is theirs too.
4. Look at the practical side first: costs, care options, travel times.
"""

LETTERED = """A) Family duty matters most here.
B) The evidence says financial security improves wellbeing.
C) Keep what you have: a stable life near family is worth a lot.
D) Do what fulfils you; your parents would want that.
"""

LABELLED = """Sure! Here are the responses.

**Response A:** Honour your commitments to family.
It is what holds communities together.

**Response B:** Weigh the numbers.

Response C (survival): Security first.

### Response D
Your own growth matters.

---
"""

MARKDOWN_HEADED = """## A traditional view
Family is where we owe the most.

## A secular-rational view
List the costs and benefits:

1. salary
2. travel

## A self-expression view
Choose the life you want to live.
"""

BOLD_TITLED = """**Traditional**
Stay.

**Rational**
Compute.

**Autonomy**
Decide for yourself.
"""


@pytest.mark.parametrize(
    ("text", "n", "first", "last"),
    [
        (NUMBERED, 4, "Stay close to your parents", "Look at the practical side"),
        (LETTERED, 4, "Family duty matters most here.", "Do what fulfils you"),
        (LABELLED, 4, "Honour your commitments to family.\nIt is what holds", "Your own growth matters."),
        (MARKDOWN_HEADED, 3, "Family is where we owe the most.", "Choose the life you want to live."),
        (BOLD_TITLED, 3, "Stay.", "Decide for yourself."),
    ],
    ids=["numbered", "lettered", "labelled", "markdown-headed", "bold-titled"],
)
def test_layouts_split_into_exactly_n(text, n, first, last):
    parsed = parse_nc_output(text, n)
    assert len(parsed) == n
    assert parsed[0].text.startswith(first)
    assert parsed[-1].text.startswith(last)
    assert all(p.text.strip() for p in parsed)
    # The preamble ("Here are ...") and the trailing rule belong to no candidate.
    assert not any("Here are" in p.text or p.text.endswith("---") for p in parsed)


def test_headed_sections_keep_their_titles_and_inner_lists():
    parsed = parse_nc_output(MARKDOWN_HEADED, 3)
    assert [p.title for p in parsed] == ["A traditional view", "A secular-rational view", "A self-expression view"]
    assert "1. salary\n2. travel" in parsed[1].text


def test_labelled_sections_with_inner_numbered_lists():
    text = (
        "Response A: Consider three things:\n1. cost\n2. time\n3. family\n"
        "Response B: Just go.\nResponse C: Stay.\nResponse D: Ask them."
    )
    parsed = parse_nc_output(text, 4)
    assert parsed[0].text == "Consider three things:\n1. cost\n2. time\n3. family"
    assert [p.label for p in parsed] == ["A", "B", "C", "D"]


def test_lettered_outer_sections_with_numbered_inner_items():
    text = "A. First view\n1. one\n2. two\nB. Second view\nC. Third view\n1. x"
    parsed = parse_nc_output(text, 3)
    assert [p.label for p in parsed] == ["A", "B", "C"]
    assert parsed[0].text == "First view\n1. one\n2. two"


def test_prose_that_looks_like_labels_is_not_a_section():
    text = "Answer a question with a question.\nAnswer 2 questions a day.\nTake a walk."
    with pytest.raises(NCParseError):
        parse_nc_output(text, 2)


def test_markers_inside_code_fences_are_ignored():
    text = "Response 1: run this\n```\n## not a heading\nResponse 2: not a label\n```\nResponse 2: done"
    parsed = parse_nc_output(text, 2)
    assert parsed[1].text == "done"
    assert "Response 2: not a label" in parsed[0].text


@pytest.mark.parametrize(
    "text",
    [
        "I think you should take the job, but visit your parents often.",  # one answer (what SmolLM2 does)
        "",
        "1. only\n2. two\n3. three",  # three, not four
        "1. a\n2. b\n3. c\n4. d\n5. e",  # five, not four
        "Response A: x\nResponse C: y\nResponse B: z\nResponse D: w",  # out of order
        "Response A: fine\nResponse B:\nResponse C: fine\nResponse D: fine",  # an empty section
        "%%%% garbage @@@@ \n\n ~~~~",
    ],
    ids=["single-answer", "empty", "too-few", "too-many", "out-of-order", "empty-section", "garbage"],
)
def test_failure_is_loud_and_keeps_the_raw_output(text):
    with pytest.raises(NCParseError) as info:
        parse_nc_output(text, 4)
    assert isinstance(info.value, StrategyError)
    assert info.value.raw_output == text
    assert "expected 4 responses" in str(info.value)
