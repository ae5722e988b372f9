"""Routing decisions: who labels what, with which reasons, and the audit sample."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import (
    Assignment,
    Choice,
    Comparison,
    ComparisonStatus,
    JudgeSpec,
    Judgment,
    ModelKind,
    RankingMethod,
    Resolution,
    ResolutionMethod,
    Route,
    RoutingDecision,
    SetAgreement,
    SetRanking,
    Source,
    SpaPair,
)
from annotate.selectors_judging import routing_summary
from annotate.services.routing import (
    RoutingSettings,
    RoutingSettingsError,
    Vote,
    audit_draw,
    comparisons_route,
    route_decide,
    routing_settings,
    routing_settings_update,
)
from tests.factories import UserFactory, make_pair

pytestmark = pytest.mark.django_db
NO_AUDIT = 0.99  # an audit draw above any audit rate used here

S = RoutingSettings()


def judge(choice, confidence=0.9, name="j1"):
    return Vote(source=name, kind="judge", choice=choice, confidence=confidence)


@pytest.mark.parametrize(
    ("votes", "route", "reasons", "choice"),
    [
        ([judge("a")], Route.PSEUDO_LABEL, [], "a"),
        ([judge("a"), judge("a", name="j2")], Route.PSEUDO_LABEL, [], "a"),
        ([judge("a"), judge("b", name="j2")], Route.HUMAN, ["ai_disagreement"], ""),
        ([judge("inconsistent")], Route.HUMAN, ["inconsistent"], ""),
        ([judge("na")], Route.HUMAN, ["no_verdict"], ""),
        ([judge("a", confidence=0.6)], Route.HUMAN, ["low_confidence"], ""),
        ([Vote("spa", "spa", "b", 0.51, flagged=True)], Route.HUMAN, ["spa_flagged"], ""),
        ([Vote("spa", "spa", "b", 0.51)], Route.PSEUDO_LABEL, [], "b"),
        ([Vote("r1", "ranker", "a", confirmed=False)], Route.HUMAN, ["unconfirmed"], ""),
        ([Vote("r1", "ranker", "a"), Vote("r2", "ranker", "a")], Route.PSEUDO_LABEL, [], "a"),
        ([judge("a"), Vote("r1", "ranker", "b", confirmed=False)], Route.HUMAN, ["ai_disagreement"], ""),
        (
            [judge("inconsistent"), judge("a", 0.5, name="j2"), Vote("s", "spa", "b", flagged=True)],
            Route.HUMAN,
            ["inconsistent", "spa_flagged", "ai_disagreement", "low_confidence"],
            "",
        ),
    ],
)
def test_route_decide(votes, route, reasons, choice):
    decision = route_decide(votes=votes, settings=S, audit_draw=NO_AUDIT)
    assert (decision.route, decision.reasons, decision.choice) == (route, reasons, choice)
    assert decision.priority_boost == sum(S.priority.get(r, 0) for r in reasons)


def test_no_evidence_no_decision_and_min_votes():
    assert route_decide(votes=[], settings=S, audit_draw=0.5) is None
    two = RoutingSettings(min_votes=2)
    assert route_decide(votes=[judge("a")], settings=two, audit_draw=NO_AUDIT).reasons == ["unconfirmed"]
    audited = route_decide(votes=[judge("b")], settings=S, audit_draw=0.01)
    assert (audited.route, audited.choice, audited.priority_boost) == (Route.AUDIT, "b", 5)


def test_audit_draw_is_stable_and_close_to_the_rate():
    draws = [audit_draw(seed="7", comparison_id=i) for i in range(4000)]
    assert draws == [audit_draw(seed="7", comparison_id=i) for i in range(4000)]
    assert 0.04 < sum(d < 0.05 for d in draws) / 4000 < 0.06
    assert draws != [audit_draw(seed="8", comparison_id=i) for i in range(4000)]


def test_settings_defaults_updates_and_validation(project):
    assert routing_settings(project=project) == RoutingSettings()
    updated = routing_settings_update(project=project, values={"min_confidence": "0.8", "agreement_rule": "lcs"})
    assert updated.min_confidence == 0.8 and updated.agreement_rule == "lcs" and updated.audit_rate == 0.05
    project.refresh_from_db()
    assert project.options["routing"]["agreement_rule"] == "lcs"
    for bad in ({"audit_rate": 2}, {"agreement_rule": "vibes"}, {"min_votes": 0}, {"surprise": 1}):
        with pytest.raises(RoutingSettingsError):
            routing_settings_update(project=project, values=bad)
    project.refresh_from_db()
    assert routing_settings(project=project).agreement_rule == "lcs"  # refused updates store nothing


def _spec(name):
    return JudgeSpec.objects.create(name=name, kind=ModelKind.TRANSFORMERS, model="/x")


def _ai(comparison, spec, choice, confidence=0.9):
    return Judgment.objects.create(
        comparison=comparison,
        source=Source.AI,
        judge=spec,
        judge_version=spec.version,
        choice=choice,
        confidence=confidence,
        probabilities={"order_choices": ["a", "a"]},
    )


def test_routing_applies_idempotently_and_reopens_on_new_disagreement(project):
    routing_settings_update(project=project, values={"audit_rate": 0})
    one, two = _spec("one"), _spec("two")
    c = make_pair(project, priority=3)
    _ai(c, one, Choice.B)
    report = comparisons_route(project=project)
    assert report.pseudo_label == 1
    c.refresh_from_db()
    assert c.status == ComparisonStatus.RESOLVED and c.resolution.choice == Choice.B and c.priority == 3
    comparisons_route(project=project)  # nothing changes the second time
    assert Resolution.objects.count() == 1 and RoutingDecision.objects.count() == 1
    # A second judge disagrees: the pseudo-label is withdrawn and people get the item first.
    _ai(c, two, Choice.A)
    report = comparisons_route(project=project)
    assert report.human == 1 and report.reasons == {"ai_disagreement": 1}
    c.refresh_from_db()
    assert c.status == ComparisonStatus.OPEN and not Resolution.objects.exists() and c.priority == 33
    comparisons_route(project=project)
    c.refresh_from_db()
    assert c.priority == 33  # the boost is applied once, not once per routing
    # A new judge version makes the old verdicts stale: no current evidence, boost removed.
    for spec in (one, two):
        spec.version = "2"
        spec.save()
    assert comparisons_route(project=project).unjudged == 1
    c.refresh_from_db()
    assert c.priority == 3 and not RoutingDecision.objects.exists()


def test_items_people_work_on_are_never_touched(project, annotator):
    spec = _spec("one")
    judged, leased, resolved = make_pair(project), make_pair(project), make_pair(project)
    for c in (judged, leased, resolved):
        _ai(c, spec, Choice.A)
    Judgment.objects.create(comparison=judged, source=Source.HUMAN, annotator=annotator, choice=Choice.B)
    Comparison.objects.filter(pk=judged.pk).update(human_judgments=1)
    Assignment.objects.create(
        comparison=leased, user=annotator, swapped=False, expires_at=timezone.now() + timedelta(minutes=5)
    )
    Resolution.objects.create(comparison=resolved, choice=Choice.B, method=ResolutionMethod.ADJUDICATION)
    Comparison.objects.filter(pk=resolved.pk).update(status=ComparisonStatus.RESOLVED)
    report = comparisons_route(project=project)
    assert report.untouched == 3 and report.pseudo_label == 0
    assert not RoutingDecision.objects.exists()
    assert Resolution.objects.get().method == ResolutionMethod.ADJUDICATION


def test_spa_flags_and_ranker_agreement_as_evidence(project):
    policy, reference, white, black = _spec("pi"), _spec("ref"), _spec("white"), _spec("black")
    flagged, clean, agreed = make_pair(project), make_pair(project), make_pair(project)
    for c, is_flagged in ((flagged, True), (clean, False)):
        SpaPair.objects.create(
            comparison=c,
            policy=policy,
            policy_version="1",
            reference=reference,
            reference_version="1",
            reward_a=1.0,
            reward_b=0.5,
            chosen="a",
            margin=0.5,
            confidence=0.51,
            flagged=is_flagged,
        )
    cset = agreed.candidate_a.candidate_set
    order = [agreed.candidate_b_id, agreed.candidate_a_id]
    first = SetRanking.objects.create(
        candidate_set=cset, judge=black, judge_version="1", method=RankingMethod.LISTWISE, ranking=order
    )
    second = SetRanking.objects.create(
        candidate_set=cset, judge=white, judge_version="1", method=RankingMethod.LIKELIHOOD, ranking=order
    )
    routing_settings_update(project=project, values={"audit_rate": 0})
    before = comparisons_route(project=project)
    # The unflagged SPA pair is a label; the rankers are not yet confirmed by an agreement.
    assert (before.pseudo_label, before.reasons) == (1, {"spa_flagged": 1, "unconfirmed": 1})
    SetAgreement.objects.create(
        candidate_set=cset, first=first, second=second, rule="pairwise", kendall_tau=1, share=1, agreed_pairs=[order]
    )
    report = comparisons_route(project=project)
    assert report.pseudo_label == 2 and report.human == 1 and report.reasons == {"spa_flagged": 1}
    agreed.refresh_from_db()
    assert agreed.resolution.choice == Choice.B
    assert {v["kind"] for v in agreed.resolution.provenance["votes"]} == {"ranker"}
    assert RoutingDecision.objects.get(comparison=flagged).priority_boost == 15


def test_audited_pseudo_labels_measure_judge_accuracy(project, annotator):
    routing_settings_update(project=project, values={"audit_rate": 1.0})
    spec = _spec("one")
    right, wrong = make_pair(project), make_pair(project)
    _ai(right, spec, Choice.A)
    _ai(wrong, spec, Choice.A)
    assert comparisons_route(project=project).audit == 2
    assert not Resolution.objects.exists()
    for c, human in ((right, Choice.A), (wrong, Choice.B)):
        assert Comparison.objects.get(pk=c.pk).status == ComparisonStatus.OPEN
        Judgment.objects.create(comparison=c, source=Source.HUMAN, annotator=annotator, choice=human)
    other = UserFactory()
    Judgment.objects.create(comparison=wrong, source=Source.HUMAN, annotator=other, choice=Choice.B)
    summary = routing_summary(project=project)
    assert summary["audit"] == 2 and summary["audit_checked"] == 2 and summary["audit_accuracy"] == 0.5
