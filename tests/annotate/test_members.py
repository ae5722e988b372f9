import pytest
from django.urls import reverse

from annotate.models import Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_manager_adds_and_removes_members(client, project, manager):
    newcomer = UserFactory(username="newcomer")
    client.force_login(manager)
    url = reverse("project-members", args=[project.slug])
    assert client.post(url, {"username": "newcomer", "role": "adjudicator"}).status_code == 302
    membership = Membership.objects.get(user=newcomer, project=project)
    assert membership.role == "adjudicator"
    bad = client.post(url, {"username": "ghost", "role": "annotator"})
    assert bad.status_code == 400 and b"No user named" in bad.content
    client.post(reverse("project-member-remove", args=[project.slug, membership.pk]))
    assert not Membership.objects.filter(user=newcomer).exists()


def test_last_manager_cannot_be_removed(client, project, manager):
    client.force_login(manager)
    only = Membership.objects.get(user=manager, project=project)
    response = client.post(reverse("project-member-remove", args=[project.slug, only.pk]), follow=True)
    assert b"at least one manager" in response.content
    assert Membership.objects.filter(pk=only.pk).exists()


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_only_managers_see_the_members_page(client, project, annotator, outsider, who):
    client.force_login(annotator if who == "annotator" else outsider)
    assert client.get(reverse("project-members", args=[project.slug])).status_code == 404
    target = Membership.objects.get(user=annotator)
    client.post(reverse("project-member-remove", args=[project.slug, target.pk]))
    assert Membership.objects.filter(pk=target.pk).exists()
