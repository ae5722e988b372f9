"""The judges' prompts. Every text here can be replaced per judge (JudgeSpec.params); bump the
judge's version when you do, so that old and new verdicts are never mixed.

Layout: the instructions and the question come first (system turn), then the conversation, then
the two responses, then only a short cue (and, for the per-principle oracle, the principle's
question). The two orders of a pair, all pairs of one candidate set and all principles of one pair
then share long token prefixes, which the local judge computes once (see local.py); what differs
between sequences sits at their ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from rankers.types import Message

PAIRWISE_SYSTEM = (
    "You are an impartial judge of AI assistant responses. You are shown a conversation and two "
    "responses to its last turn, Response A and Response B."
)
PAIRWISE_QUESTION = "Which response is better: the more helpful, honest and harmless one?"
PRINCIPLE_QUESTION = "Which response adheres to the principle '{principle}' the most?"
ANSWER_INSTRUCTION = (
    "Answer with exactly one token: A if Response A is better, B if Response B is better, "
    "or NA if neither response is relevant to the question."
)
ANSWER_CUE = "Verdict (A, B or NA):"
GENERATIVE_INSTRUCTION = (
    "First explain your reasoning in one or two sentences. Then give your verdict on the last line "
    "exactly as [[A]] if Response A is better, [[B]] if Response B is better, or [[NA]] if neither "
    "is relevant."
)
GENERATIVE_CUE = "Explanation and verdict:"

LISTWISE_SYSTEM = "You are an expert evaluator who ranks AI assistant responses from best to worst."
LISTWISE_INSTRUCTION = (
    "Rank the {n} responses below to the conversation from best to worst: the most helpful, honest "
    "and harmless first. Answer with the ranking only, using the response identifiers, in the form "
    "{example}."
)


def transcript(messages: list[Message]) -> str:
    """A conversation as plain text, one turn per paragraph (system turns are context too)."""
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


@dataclass(frozen=True)
class PairwisePrompt:
    """Builds the judge conversation for one (pair, order).

    Without a principle the question is part of the system turn; with one, the principle's question
    follows the responses (so that all principles of a pair share everything before it).
    """

    system: str = PAIRWISE_SYSTEM
    question: str = PAIRWISE_QUESTION
    principle_question: str = PRINCIPLE_QUESTION
    answer_instruction: str = ANSWER_INSTRUCTION
    cue: str = ANSWER_CUE

    @classmethod
    def from_params(cls, params: dict | None, *, generative: bool = False) -> PairwisePrompt:
        params = params or {}
        return cls(
            system=params.get("system_prompt", PAIRWISE_SYSTEM),
            question=params.get("question", PAIRWISE_QUESTION),
            principle_question=params.get("principle_question", PRINCIPLE_QUESTION),
            answer_instruction=params.get(
                "answer_instruction", GENERATIVE_INSTRUCTION if generative else ANSWER_INSTRUCTION
            ),
            cue=params.get("answer_cue", GENERATIVE_CUE if generative else ANSWER_CUE),
        )

    def messages(
        self, conversation: list[Message], first: str, second: str, principle: str | None = None
    ) -> list[Message]:
        if principle:
            system = f"{self.system} {self.answer_instruction}"
            ending = f"{self.principle_question.format(principle=principle)} {self.cue}"
        else:
            system = f"{self.system} {self.question} {self.answer_instruction}"
            ending = self.cue
        user = (
            f"[Conversation]\n{transcript(conversation)}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n{ending}"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def listwise_user_message(
    messages: list[Message], candidates: list[str], instruction: str = LISTWISE_INSTRUCTION
) -> str:
    n = len(candidates)
    example = " > ".join(f"[{i}]" for i in range(1, min(n, 3) + 1)) + (" > ..." if n > 3 else "")
    blocks = "\n\n".join(f"[{i}]\n{text}" for i, text in enumerate(candidates, start=1))
    return f"{instruction.format(n=n, example=example)}\n\n[Conversation]\n{transcript(messages)}\n\n{blocks}"


def ranking_answer(ranking: list[int]) -> str:
    """A 0-based ranking written the way the ranker is asked to answer ("[2] > [1] > [3]")."""
    return " > ".join(f"[{i + 1}]" for i in ranking)
