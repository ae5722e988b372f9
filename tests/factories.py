"""factory_boy factories for Concord's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotate import models as m


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    overlap = 1


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = m.Role.ANNOTATOR


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Prompt

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"p{n}")
    messages = factory.LazyAttribute(lambda o: [{"role": "user", "content": f"Question {o.external_id}?"}])


class GeneratorSpecFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.GeneratorSpec
        django_get_or_create = ("name",)

    name = "smollm2-135m-instruct"
    kind = m.ModelKind.GGUF
    params = factory.LazyFunction(lambda: {"temperature": 0.8, "max_new_tokens": 16})


class CandidateSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.CandidateSet

    prompt = factory.SubFactory(PromptFactory)
    strategy = m.Strategy.IID
    n = 2
    status = m.RunStatus.DONE


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Candidate

    candidate_set = factory.SubFactory(CandidateSetFactory)
    prompt = factory.SelfAttribute("candidate_set.prompt")
    position = factory.Sequence(lambda n: n)
    text = factory.Sequence(lambda n: f"Answer number {n}.")


def make_pair(project: m.Project | None = None, **comparison_kwargs) -> m.Comparison:
    """A done candidate set of two candidates for a new prompt, and their comparison."""
    project = project or ProjectFactory()
    prompt = PromptFactory(project=project)
    cset = CandidateSetFactory(prompt=prompt)
    a = CandidateFactory(candidate_set=cset, position=0, text="Answer A")
    b = CandidateFactory(candidate_set=cset, position=1, text="Answer B")
    return m.Comparison.objects.create(
        project=project, prompt=prompt, candidate_a=a, candidate_b=b, **comparison_kwargs
    )
