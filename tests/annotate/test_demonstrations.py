"""The versioned demonstration pool."""

import pytest

from annotate.models import DemonstrationSource
from annotate.selectors_judging import demonstrations_at
from annotate.services.demonstrations import (
    DemonstrationError,
    demonstration_add,
    demonstration_add_from_set,
    demonstration_pool_get,
    demonstration_remove,
    demonstrations_draw,
)
from tests.annotate.judging_helpers import make_sets

pytestmark = pytest.mark.django_db
Q = [{"role": "user", "content": "Best fruit?"}]


def add(pool, n):
    return demonstration_add(
        pool=pool, source=DemonstrationSource.STATIC, messages=Q, candidates=[f"A{n}", f"B{n}"], ranking=[1, 0]
    )


def test_every_change_is_a_version_and_old_versions_stay_listable(project):
    pool = demonstration_pool_get(project=project)
    assert pool.version == 0 and demonstrations_at(pool=pool) == []
    first, second = add(pool, 1), add(pool, 2)
    assert (first.added_in, second.added_in, pool.version) == (1, 2, 2)
    demonstration_remove(demonstration=first)
    pool.refresh_from_db()
    assert pool.version == 3
    assert demonstrations_at(pool=pool, version=1) == [first]
    assert demonstrations_at(pool=pool, version=2) == [first, second]
    assert demonstrations_at(pool=pool) == [second]
    demonstration_remove(demonstration=first)  # removing twice changes nothing
    pool.refresh_from_db()
    assert pool.version == 3


def test_a_set_enters_the_pool_once(project):
    (cset,) = make_sets(project, [["x", "y", "z"]])
    pool = demonstration_pool_get(project=project)
    ids = list(cset.candidates.order_by("position").values_list("id", flat=True))
    demo = demonstration_add_from_set(
        pool=pool, candidate_set=cset, ranking_ids=[ids[2], ids[0], ids[1]], source=DemonstrationSource.AGREEMENT
    )
    assert demo.ranking == [2, 0, 1] and demo.candidates == ["x", "y", "z"] and demo.messages == cset.prompt.messages
    again = demonstration_add_from_set(pool=pool, candidate_set=cset, ranking_ids=ids, source=DemonstrationSource.HUMAN)
    assert again.pk == demo.pk and pool.version == 1


@pytest.mark.parametrize(
    ("candidates", "ranking"),
    [(["only one"], [0]), (["a", "b"], [0, 0]), (["a", "b"], [0, 1, 2]), (["a", " "], [0, 1])],
)
def test_invalid_demonstrations_are_refused(project, candidates, ranking):
    pool = demonstration_pool_get(project=project)
    with pytest.raises(DemonstrationError):
        demonstration_add(pool=pool, source="static", messages=Q, candidates=candidates, ranking=ranking)
    pool.refresh_from_db()
    assert pool.version == 0


def test_draw_is_stable_and_skips_the_same_prompt(project):
    sets = make_sets(project, [["a", "b"], ["c", "d"], ["e", "f"]])
    pool = demonstration_pool_get(project=project)
    demos = [
        demonstration_add_from_set(
            pool=pool,
            candidate_set=s,
            ranking_ids=list(s.candidates.values_list("id", flat=True)),
            source=DemonstrationSource.AGREEMENT,
        )
        for s in sets
    ]
    drawn = demonstrations_draw(demonstrations=demos, k=5, exclude_prompt_id=sets[0].prompt_id, seed="s")
    assert sorted(d.pk for d in drawn) == sorted(d.pk for d in demos[1:])
    one = demonstrations_draw(demonstrations=demos, k=1, exclude_prompt_id=None, seed="s")
    assert one == demonstrations_draw(demonstrations=demos, k=1, exclude_prompt_id=None, seed="s")
    assert demonstrations_draw(demonstrations=demos, k=0, exclude_prompt_id=None, seed="s") == []
