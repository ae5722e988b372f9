"""Judge runs end to end: the gpu task, idempotence, failures and retries, what gets stored."""

from __future__ import annotations

import math

import pytest

from annotate.models import (
    CandidateScore,
    Choice,
    Comparison,
    ComparisonStatus,
    JudgeRun,
    JudgeSpec,
    JudgeTask,
    Judgment,
    ModelKind,
    Principle,
    PrincipleVerdict,
    RankingMethod,
    Resolution,
    ResolutionMethod,
    Route,
    RoutingDecision,
    RunStatus,
    SetRanking,
    Source,
    SpaPair,
)
from annotate.selectors_judging import judge_consistency, principle_preferences
from annotate.services import judging
from annotate.services.routing import routing_settings_update
from annotate.tasks import gpu_judge_run
from rankers import judges
from tests.annotate.judging_helpers import AlwaysA, PrefersLonger, make_sets, tiny_judge

pytestmark = pytest.mark.django_db

TEXTS = [
    ["Sleep, water and a walk.", "Rest.", "Plan the week, then protect one evening for yourself."],
    ["Ask a friend.", "Write the problem down and sleep on it before deciding.", "Nothing."],
]


@pytest.fixture(autouse=True)
def _fresh_judges():
    judges.clear_cache()
    yield
    judges.clear_cache()


@pytest.fixture
def tiny_spec(tiny_model_dir):
    return tiny_judge(tiny_model_dir)


def test_pairwise_run_judges_every_pair_once(project, tiny_spec, django_capture_on_commit_callbacks):
    make_sets(project, TEXTS)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
        again = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    assert again.pk == run.pk and len(callbacks) == 1  # a double start queues one run
    assert run.status == RunStatus.QUEUED and run.total == 6
    result = gpu_judge_run.apply(args=[run.pk]).get()
    assert result["status"] == "done"
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.done == run.total == 6 and run.attempts == 1
    assert run.stats["judged"] == 6 and "routing" in run.stats
    stored = Judgment.objects.filter(source=Source.AI, judge=tiny_spec)
    assert stored.count() == 6
    for judgment in stored:
        probs = judgment.probabilities
        assert set(probs) == {"ab", "ba", "order_choices", "debiased"}
        for order in ("ab", "ba"):
            assert math.isclose(probs[order]["first"] + probs[order]["second"] + probs[order]["na"], 1, rel_tol=1e-6)
        assert judgment.shown_left_id == judgment.comparison.candidate_a_id
        assert judgment.judge_version == tiny_spec.version and judgment.confidence is not None
    # The same message delivered twice does nothing; a new run finds everything stored.
    assert gpu_judge_run.apply(args=[run.pk]).get() == {"status": "skipped"}
    second = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    judging.judge_run_execute(run_id=second.pk)
    second.refresh_from_db()
    assert second.status == RunStatus.DONE and second.done == 6 and stored.count() == 6


def test_a_judge_that_always_answers_a_labels_nothing(project, tiny_spec, monkeypatch):
    monkeypatch.setattr(judges, "pairwise_judge_for", lambda *a, **k: AlwaysA())
    make_sets(project, TEXTS)
    run = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    judging.judge_run_execute(run_id=run.pk)
    assert set(Judgment.objects.filter(judge=tiny_spec).values_list("choice", flat=True)) == {Choice.INCONSISTENT}
    assert not Resolution.objects.exists()
    assert set(Comparison.objects.values_list("status", flat=True)) == {ComparisonStatus.OPEN}
    decisions = RoutingDecision.objects.all()
    assert decisions.count() == 6
    assert all(d.route == Route.HUMAN and d.reasons == ["inconsistent"] for d in decisions)
    assert set(Comparison.objects.values_list("priority", flat=True)) == {20}
    (row,) = judge_consistency(project=project)
    assert row["inconsistent_rate"] == 1 and row["first_position_rate"] == 1 and row["at_chance"]
    run.refresh_from_db()
    assert run.stats["at_chance"] is True and run.stats["routing"]["human"] == 6


def test_consistent_confident_verdicts_become_pseudo_labels_with_an_audit_sample(project, tiny_spec, monkeypatch):
    monkeypatch.setattr(judges, "pairwise_judge_for", lambda *a, **k: PrefersLonger())
    routing_settings_update(project=project, values={"audit_rate": 0.5})
    make_sets(project, TEXTS)
    run = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    judging.judge_run_execute(run_id=run.pk)
    decisions = {d.comparison_id: d for d in RoutingDecision.objects.all()}
    assert {d.route for d in decisions.values()} == {Route.PSEUDO_LABEL, Route.AUDIT}
    for comparison in Comparison.objects.select_related("candidate_a", "candidate_b"):
        longer = Choice.A if len(comparison.candidate_a.text) > len(comparison.candidate_b.text) else Choice.B
        decision = decisions[comparison.pk]
        assert decision.pseudo_choice == longer
        if decision.route == Route.PSEUDO_LABEL:
            assert comparison.status == ComparisonStatus.RESOLVED
            resolution = comparison.resolution
            assert resolution.method == ResolutionMethod.PSEUDO_LABEL and resolution.choice == longer
            assert resolution.provenance["votes"][0]["source"] == f"judge:{tiny_spec.name}@1"
        else:  # audited: people label it too; the pseudo-label waits on the decision
            assert comparison.status == ComparisonStatus.OPEN and comparison.priority == 5
            assert not Resolution.objects.filter(comparison=comparison).exists()


def test_failure_is_recorded_and_a_retry_resumes(project, tiny_spec, tmp_path):
    make_sets(project, TEXTS[:1])
    broken = JudgeSpec.objects.create(name="broken", kind=ModelKind.TRANSFORMERS, model=str(tmp_path / "nothing"))
    run = judging.judge_run_start(project=project, judge=broken, task=JudgeTask.PAIRWISE)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "failed"
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error and run.done == 0
    assert judging.judge_run_execute(run_id=run.pk) == {"status": "skipped"}  # a failed run is not re-run
    broken.model = tiny_spec.model
    broken.params = {"device": "cpu"}
    broken.save()
    judging.judge_run_retry(project=project, run_id=run.pk)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.error == "" and run.attempts == 2 and run.done == 3


def test_an_attempt_killed_mid_run_is_taken_over(project, tiny_spec):
    make_sets(project, TEXTS[:1])
    run = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    claimed, dead_token = judging._claim(run.pk)  # a worker claims it and dies (SIGKILL)
    assert claimed.status == RunStatus.RUNNING
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"  # the redelivered message
    with pytest.raises(judging._Superseded):  # the first worker, had it lived, could not write
        judging._commit_chunk(claimed, dead_token, lambda: 1)
    assert Judgment.objects.filter(judge=tiny_spec).count() == 3


def test_principle_oracle_judges_every_pair_and_principle(project, tiny_spec):
    make_sets(project, TEXTS[:1])
    with pytest.raises(judging.JudgingError, match="no principles"):
        judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PRINCIPLES)
    honest = Principle.objects.create(project=project, name="honest", text="Be honest", position=0)
    brief = Principle.objects.create(project=project, name="brief", text="Be brief", position=1)
    run = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PRINCIPLES)
    assert run.total == 6
    judging.judge_run_execute(run_id=run.pk)
    verdicts = PrincipleVerdict.objects.filter(judge=tiny_spec)
    assert verdicts.count() == 6
    assert set(verdicts.values_list("principle_id", flat=True)) == {honest.pk, brief.pk}
    prefs = principle_preferences(project=project, judge=tiny_spec)
    assert len(prefs) == 3 and all(set(p) == {honest.pk, brief.pk} for p in prefs.values())
    expected = {"a": -1, "b": 1}
    for v in verdicts:
        assert prefs[v.comparison_id][v.principle_id] == expected.get(v.choice)
    assert not Judgment.objects.exists()  # the oracle does not write pairwise judgments


@pytest.fixture
def second_tiny_dir(tiny_model_dir, tmp_path_factory):
    """Another tiny random model with the same tokenizer: a different reference for SPA."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-ref")
    torch.manual_seed(1)
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


def test_likelihood_ranking_and_spa_pairs(project, tiny_spec, second_tiny_dir):
    sets = make_sets(project, TEXTS)
    reference = tiny_judge(second_tiny_dir, name="tiny-ref")
    with pytest.raises(judging.JudgingError, match="reference"):
        judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.SPA)
    white = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.LIKELIHOOD)
    judging.judge_run_execute(run_id=white.pk)
    white.refresh_from_db()
    assert white.status == RunStatus.DONE and white.done == 6 and white.stats["sets_ranked"] == 2
    for cset in sets:
        ranking = SetRanking.objects.get(candidate_set=cset, method=RankingMethod.LIKELIHOOD)
        means = dict(
            CandidateScore.objects.filter(candidate__candidate_set=cset, scorer=tiny_spec).values_list(
                "candidate_id", "mean_logprob"
            )
        )
        assert ranking.ranking == sorted(means, key=lambda c: -means[c])
    spa = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.SPA, reference=reference)
    assert spa.total == 2 * 6 + 6
    judging.judge_run_execute(run_id=spa.pk)
    spa.refresh_from_db()
    assert spa.status == RunStatus.DONE, spa.error
    assert spa.done == spa.total  # policy scores existed already: counted as done work
    assert CandidateScore.objects.filter(scorer=reference).count() == 6
    pairs = list(SpaPair.objects.select_related("comparison"))
    assert len(pairs) == 6 and sum(p.flagged for p in pairs) == 1  # ceil(10 % of 6)
    sums = {(s.scorer_id, s.candidate_id): s.sum_logprob for s in CandidateScore.objects.all()}
    for pair in pairs:
        a, b = pair.comparison.candidate_a_id, pair.comparison.candidate_b_id
        r_a = sums[(tiny_spec.pk, a)] - sums[(reference.pk, a)]
        r_b = sums[(tiny_spec.pk, b)] - sums[(reference.pk, b)]
        assert pair.reward_a == pytest.approx(r_a) and pair.reward_b == pytest.approx(r_b)
        assert pair.margin == pytest.approx(abs(r_a - r_b))
        assert pair.confidence == pytest.approx(1 / (1 + math.exp(-0.1 * abs(r_a - r_b))))
        assert pair.chosen == ("a" if r_a > r_b else "b")
    smallest = min(pairs, key=lambda p: p.margin)
    assert smallest.flagged
    assert RoutingDecision.objects.get(comparison=smallest.comparison).route == Route.HUMAN


@pytest.mark.model
def test_the_default_judge_is_shown_to_be_at_chance(project, client, manager):
    """The real path with the real default model: every verdict inconsistent, nothing labelled, and
    the judging page says so."""
    from django.urls import reverse

    make_sets(project, [["Paris is the capital of France.", "Bananas are yellow.", "I do not know."]])
    run = judging.judge_run_start(project=project, judge=None, task=JudgeTask.PAIRWISE)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"
    assert set(Judgment.objects.values_list("choice", flat=True)) == {Choice.INCONSISTENT}
    assert not Resolution.objects.exists()
    client.force_login(manager)
    page = client.get(reverse("judging", args=[project.slug])).content.decode()
    assert f"{judging.DEFAULT_JUDGE_NAME} is at chance as an A/B judge" in page


def test_retry_refuses_a_changed_judge_and_a_second_active_run(project, tiny_spec):
    failed = JudgeRun.objects.create(
        project=project, judge=tiny_spec, judge_version="1", task=JudgeTask.PAIRWISE, status=RunStatus.FAILED
    )
    active = judging.judge_run_start(project=project, judge=tiny_spec, task=JudgeTask.PAIRWISE)
    with pytest.raises(judging.JudgingError, match="already running"):
        judging.judge_run_retry(project=project, run_id=failed.pk)
    active.status = RunStatus.DONE
    active.save()
    tiny_spec.version = "2"
    tiny_spec.save()
    with pytest.raises(judging.JudgingError, match="new version"):
        judging.judge_run_retry(project=project, run_id=failed.pk)
    failed.refresh_from_db()
    assert failed.status == RunStatus.FAILED


def test_listwise_ranking_also_runs_on_a_local_model(project, tiny_model_dir):
    """Without a server the listwise ranker runs on a local model (greedy); a random tiny model
    writes no ranking, which is stored as an error with its raw answer, never guessed."""
    sets = make_sets(project, TEXTS)
    spec = tiny_judge(tiny_model_dir, name="tiny-ranker", max_tokens=6)
    run = judging.judge_run_start(project=project, judge=spec, task=JudgeTask.LISTWISE)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"
    rankings = SetRanking.objects.filter(judge=spec, method=RankingMethod.LISTWISE)
    assert rankings.count() == len(sets)
    for ranking in rankings:
        assert (ranking.ranking == [] and ranking.error) or sorted(ranking.ranking) == sorted(
            ranking.candidate_set.candidates.values_list("id", flat=True)
        )
        assert ranking.pool_version == 0
