"""Judge runs against an OpenAI-compatible server on 127.0.0.1: logprob verdicts and listwise
rankings with a versioned demonstration pool, agreement with the white-box ranker."""

from __future__ import annotations

import pytest

from annotate.models import (
    Choice,
    ComparisonStatus,
    DemonstrationSource,
    JudgeSpec,
    JudgeTask,
    Judgment,
    ModelKind,
    RankingMethod,
    Resolution,
    ResolutionMethod,
    Route,
    RoutingDecision,
    RunStatus,
    SetAgreement,
    SetRanking,
)
from annotate.selectors_judging import demonstrations_at
from annotate.services import judging
from annotate.services.demonstrations import demonstration_pool_get
from annotate.services.routing import routing_settings_update
from rankers import judges
from tests.annotate.judging_helpers import make_sets
from tests.openai_server import running_server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_judges():
    judges.clear_cache()
    yield
    judges.clear_cache()


@pytest.fixture
def server():
    with running_server() as fake:
        yield fake


def remote_spec(server, name="remote", model="judge-model", **params) -> JudgeSpec:
    return JudgeSpec.objects.create(
        name=name, kind=ModelKind.OPENAI, model=model, endpoint=server.url, params={"backoff_s": 0.01, **params}
    )


def test_logprob_judge_run_pseudo_labels_consistent_verdicts(project, server):
    routing_settings_update(project=project, values={"audit_rate": 0})
    make_sets(project, [["Paris.", "Lyon, I think.", "Marseille."]])
    spec = remote_spec(server)
    run = judging.judge_run_start(project=project, judge=spec, task=JudgeTask.PAIRWISE)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"
    judgments = {j.comparison_id: j for j in Judgment.objects.select_related("comparison__candidate_a")}
    assert len(judgments) == 3 and len(server.requests) == 6
    for judgment in judgments.values():
        comparison = judgment.comparison
        if comparison.candidate_a.text == "Paris.":
            assert judgment.choice == Choice.A
            assert comparison.resolution.method == ResolutionMethod.PSEUDO_LABEL
            assert comparison.resolution.choice == Choice.A
        else:  # neither mentions Paris: the server answers NA in both orders -> people
            assert judgment.choice == Choice.NA
            assert RoutingDecision.objects.get(comparison=comparison).reasons == ["no_verdict"]


def _white_box(project, sets, rankings) -> JudgeSpec:
    """Hand-made white-box rankings (candidate positions, best first) by a local judge spec."""
    white = JudgeSpec.objects.create(name="white", kind=ModelKind.TRANSFORMERS, model="/not/used")
    for cset, order in zip(sets, rankings, strict=True):
        ids = list(cset.candidates.order_by("position").values_list("id", flat=True))
        SetRanking.objects.create(
            candidate_set=cset,
            judge=white,
            judge_version=white.version,
            method=RankingMethod.LIKELIHOOD,
            ranking=[ids[i] for i in order],
        )
    return white


def test_listwise_run_records_pool_versions_and_agreement_grows_the_pool(project, server):
    # The fake ranker puts candidates mentioning Paris first, then longer before shorter.
    sets = make_sets(
        project,
        [
            ["Lyon.", "Paris is the capital.", "It is Lyon or Nice."],  # ranker: [1, 2, 0]
            ["Nice.", "Paris.", "Somewhere in France."],  # ranker: [1, 2, 0]
            ["Lille.", "Paris!", "Brest."],  # ranker: [1, 0, 2]
        ],
    )
    _white_box(project, sets, [[1, 2, 0], [2, 1, 0], [1, 0, 2]])
    pool = demonstration_pool_get(project=project)
    from annotate.services.demonstrations import demonstration_add

    demonstration_add(
        pool=pool,
        source=DemonstrationSource.STATIC,
        messages=[{"role": "user", "content": "Best fruit?"}],
        candidates=["Apple.", "Mango, sweet and ripe."],
        ranking=[1, 0],
    )
    assert pool.version == 1
    spec = remote_spec(server, name="black-box", chunk=1)  # one set per call: later calls see new demos
    run = judging.judge_run_start(project=project, judge=spec, task=JudgeTask.LISTWISE)
    assert judging.judge_run_execute(run_id=run.pk)["status"] == "done"
    black = {r.candidate_set_id: r for r in SetRanking.objects.filter(method=RankingMethod.LISTWISE)}
    assert len(black) == 3 and all(r.error == "" for r in black.values())
    # Set 1 agrees fully (tau 1) and enters the pool as version 2; set 2 then sees it.
    assert black[sets[0].pk].pool_version == 1
    assert black[sets[1].pk].pool_version == 2
    assert black[sets[2].pk].pool_version == 2
    pool.refresh_from_db()
    assert pool.version == 3  # set 3 agreed too
    assert [d.source for d in demonstrations_at(pool=pool)] == ["static", "agreement", "agreement"]
    assert [d.candidate_set_id for d in demonstrations_at(pool=pool, version=2)] == [None, sets[0].pk]
    second_call = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in second_call] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert black[sets[1].pk].demonstrations and len(black[sets[1].pk].demonstrations) == 2
    tau = {a.candidate_set_id: a.kendall_tau for a in SetAgreement.objects.all()}
    assert tau[sets[0].pk] == pytest.approx(1) and tau[sets[1].pk] == pytest.approx(1 / 3)
    # Routing: pairs both rankers order the same way are pseudo-labels, the rest go to people.
    decisions = RoutingDecision.objects.filter(comparison__prompt=sets[1].prompt)
    routes = sorted((d.route, tuple(d.reasons)) for d in decisions)
    assert routes.count((Route.HUMAN, ("ai_disagreement",))) == 1
    assert run.__class__.objects.get(pk=run.pk).stats["sets_compared"] == 3


def test_unparseable_rankings_are_stored_and_server_failures_fail_the_run(project, server):
    sets = make_sets(project, [["Lyon.", "Paris."], ["Nice.", "Brest."]])
    server.ranking = lambda user: "They are all fine." if "Nice." in user else "[2] > [1]"
    spec = remote_spec(server, name="rank-a")
    run = judging.judge_run_start(project=project, judge=spec, task=JudgeTask.LISTWISE)
    judging.judge_run_execute(run_id=run.pk)
    bad = SetRanking.objects.get(candidate_set=sets[1])
    assert bad.ranking == [] and "found 0 of 2" in bad.error and bad.raw_output == "They are all fine."
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.stats["unparseable"] == 1
    refusing = remote_spec(server, name="rank-b", model="refuses")
    failing = judging.judge_run_start(project=project, judge=refusing, task=JudgeTask.LISTWISE)
    judging.judge_run_execute(run_id=failing.pk)
    failing.refresh_from_db()
    assert failing.status == RunStatus.FAILED and "400" in failing.error
    assert not SetRanking.objects.filter(judge=refusing).exists()  # nothing half-stored as a verdict


def test_sets_people_resolved_into_an_order_enter_the_pool(project, server, manager):
    (cset,) = make_sets(project, [["One.", "Two two.", "Three three three."]])
    ids = list(cset.candidates.order_by("position").values_list("id", flat=True))
    # People say: 2 > 1 > 0 (by position).
    for comparison in cset.candidates.first().prompt.comparisons.all():
        a, b = comparison.candidate_a_id, comparison.candidate_b_id
        winner = max(a, b, key=ids.index)
        Resolution.objects.create(
            comparison=comparison,
            choice=Choice.A if winner == a else Choice.B,
            method=ResolutionMethod.ADJUDICATION,
            resolved_by=manager,
        )
        comparison.status = ComparisonStatus.RESOLVED
        comparison.save()
    spec = remote_spec(server, name="rank-c")
    judging.judge_run_execute(run_id=judging.judge_run_start(project=project, judge=spec, task=JudgeTask.LISTWISE).pk)
    pool = demonstration_pool_get(project=project)
    (demo,) = demonstrations_at(pool=pool)
    assert demo.source == DemonstrationSource.HUMAN and demo.ranking == [2, 1, 0]
    # The set's own ranking call never uses its own demonstration.
    ranking = SetRanking.objects.get(judge=spec)
    assert ranking.demonstrations == [] and ranking.pool_version == 1
