"""The labeling pages on top of the queue: best-of-N items work in the browser flow too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Assignment, Choice, Judgment
from annotate.services.best_of_n import comparison_create_best_of_n
from tests.factories import CandidateFactory, CandidateSetFactory, PromptFactory

pytestmark = pytest.mark.django_db


def test_best_of_n_item_in_the_web_flow(client, project, annotator):
    cset = CandidateSetFactory(prompt=PromptFactory(project=project), n=3)
    for i in range(3):
        CandidateFactory(candidate_set=cset, position=i, text=f"Option number {i}")
    comparison_create_best_of_n(candidate_set=cset)
    client.force_login(annotator)
    page = client.get(reverse("annotate-next", args=[project.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Which response is best?" in html and html.count('name="best"') == 3
    lease = Assignment.objects.get(user=annotator, state="active")
    shown = [
        f"Option number {[c.pk for c in cset.candidates.order_by('position')].index(pk)}" for pk in lease.display_order
    ]
    assert [html.index(text) for text in shown] == sorted(html.index(text) for text in shown)  # shown order
    url = reverse("annotate-submit", args=[project.slug, lease.pk])
    missing = client.post(url, {"submission_key": "w1"})
    assert missing.status_code == 400 and Judgment.objects.count() == 0
    done = client.post(url, {"best": "3", "worst": "1", "submission_key": "w1"})
    assert done.status_code == 302
    pick = Judgment.objects.get(derived_from__isnull=True)
    assert pick.choice == Choice.PICK and pick.best_candidate_id == lease.display_order[2]
    assert pick.derived.count() == 3
