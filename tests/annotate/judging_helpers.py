"""Shared set-up of the judging tests: projects with candidate sets, fake judges."""

from __future__ import annotations

from annotate.models import CandidateSet, JudgeSpec, ModelKind
from annotate.services.comparisons import comparisons_create_for_set
from rankers.judges import LabelProbs, PairwiseJudge
from tests.factories import CandidateFactory, CandidateSetFactory, PromptFactory


def make_sets(project, texts: list[list[str]]) -> list[CandidateSet]:
    """One done candidate set (and all its pair comparisons) per list of candidate texts."""
    sets = []
    for n, candidates in enumerate(texts):
        prompt = PromptFactory(project=project, messages=[{"role": "user", "content": f"Question {n}: what helps?"}])
        cset = CandidateSetFactory(prompt=prompt, n=len(candidates))
        for position, text in enumerate(candidates):
            CandidateFactory(candidate_set=cset, position=position, text=text)
        comparisons_create_for_set(candidate_set=cset)
        sets.append(cset)
    return sets


def tiny_judge(path, name: str = "tiny-judge", **params) -> JudgeSpec:
    return JudgeSpec.objects.create(
        name=name, kind=ModelKind.TRANSFORMERS, model=str(path), params={"device": "cpu", **params}
    )


class AlwaysA(PairwiseJudge):
    """Answers "A" whatever it is shown, like the default 135M model does."""

    def order_probs(self, conversations):
        return [LabelProbs(first=0.9, second=0.06, na=0.04) for _ in conversations]


class PrefersLonger(PairwiseJudge):
    """A consistent judge: the longer response wins in either position, with confidence 0.9."""

    def order_probs(self, conversations):
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            first = text.split("[Response A]\n", 1)[1].split("\n\n[Response B]\n", 1)[0]
            second = text.split("[Response B]\n", 1)[1].split("\n\n", 1)[0]
            if len(first) > len(second):
                out.append(LabelProbs(first=0.9, second=0.05, na=0.05))
            else:
                out.append(LabelProbs(first=0.05, second=0.9, na=0.05))
        return out
