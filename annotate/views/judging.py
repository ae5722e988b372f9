"""The data lead's judging screens: start judges, watch their runs and consistency, routing
settings, and the demonstration pool of the black-box ranker. Managers only."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors, selectors_judging
from annotate.models import Demonstration, DemonstrationSource, JudgeSpec, JudgeTask, ModelKind, Role
from annotate.services.demonstrations import (
    DemonstrationError,
    demonstration_add,
    demonstration_pool_get,
    demonstration_remove,
)
from annotate.services.judging import (
    DEFAULT_JUDGE_NAME,
    JudgingError,
    judge_run_retry,
    judge_run_start,
    judge_spec_create,
)
from annotate.services.routing import (
    REASON_LABELS,
    RoutingSettingsError,
    comparisons_route,
    routing_settings,
    routing_settings_update,
)
from rankers.agreement import RULES
from rankers.judges import RankingParseError, parse_ranking

MANAGERS = (Role.MANAGER,)
HTMX_STOP_POLLING = 286  # htmx stops an `every Ns` poll when it gets this status
DEFAULT_CHOICE = ""  # the built-in default judge, created on first use


def _judge_choices() -> list[tuple[str, str]]:
    specs = list(selectors_judging.judge_specs_all())
    choices = [(str(s.pk), f"{s.name} ({s.get_kind_display()}, v{s.version})") for s in specs]
    if not any(s.name == DEFAULT_JUDGE_NAME for s in specs):
        choices.insert(0, (DEFAULT_CHOICE, "SmolLM2-135M-Instruct (built-in default)"))
    return choices


class JudgeRunForm(forms.Form):
    judge = forms.ChoiceField(required=False)
    task = forms.ChoiceField(choices=JudgeTask.choices)
    reference = forms.ChoiceField(required=False, help_text="SPA only: the fixed reference model (pi_ref).")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["judge"].choices = _judge_choices()
        self.fields["reference"].choices = [("none", "—")] + [
            (str(s.pk), f"{s.name} (v{s.version})") for s in selectors_judging.judge_specs_all()
        ]

    def _spec(self, value: str) -> JudgeSpec | None:
        if value in ("", "none"):
            return None
        spec = JudgeSpec.objects.filter(pk=value).first()
        if spec is None:
            raise forms.ValidationError("No such judge.")
        return spec

    def clean_judge(self) -> JudgeSpec | None:
        return self._spec(self.cleaned_data["judge"])

    def clean_reference(self) -> JudgeSpec | None:
        return self._spec(self.cleaned_data["reference"])


class JudgeSpecForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=ModelKind.choices)
    model = forms.CharField(
        max_length=500, required=False, help_text="Local: the model directory. Server: the model name it serves."
    )
    gguf_file = forms.CharField(
        label="GGUF file", max_length=300, required=False, help_text="GGUF only: the file inside the folder."
    )
    endpoint = forms.CharField(
        max_length=200, required=False, help_text="Server only: its base URL, e.g. http://gpu-box:8000/v1"
    )
    api_key_env = forms.CharField(
        label="API key variable",
        max_length=120,
        required=False,
        help_text="Server only: the environment variable that holds the API key.",
    )
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON, e.g. {"batch_size": 32, "device": "cuda"} or {"top_logprobs": 20, "concurrency": 8}.',
    )

    def clean_params(self) -> dict:
        text = self.cleaned_data["params"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Params must be a JSON object.")
        return value


class RoutingSettingsForm(forms.Form):
    min_confidence = forms.FloatField(min_value=0, max_value=1, help_text="Debiased judge probability needed.")
    audit_rate = forms.FloatField(min_value=0, max_value=1, help_text="Share of pseudo-labels people also label.")
    min_votes = forms.IntegerField(min_value=1, help_text="Confident AI votes a pseudo-label needs.")
    spa_flag_percent = forms.FloatField(
        label="SPA flag percent", min_value=0, max_value=100, help_text="SPA pairs flagged as noisy (bottom K %)."
    )
    spa_beta = forms.FloatField(label="SPA beta", min_value=0.0001, help_text="Confidence = sigmoid(beta x margin).")
    agreement_rule = forms.ChoiceField(choices=[])
    demo_k = forms.IntegerField(
        label="Demonstrations per call", min_value=0, max_value=16, help_text="k, for the listwise ranker."
    )
    demo_min_tau = forms.FloatField(
        label="Demonstration agreement",
        min_value=-1,
        max_value=1,
        help_text="Kendall tau at which a set both rankers agree on enters the pool.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agreement_rule"].choices = [(name, name) for name in sorted(RULES)]


class DemonstrationForm(forms.Form):
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=20000)
    candidates = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=50000,
        help_text="One candidate per block; separate blocks with a line containing only ---",
    )
    ranking = forms.CharField(max_length=200, help_text="Best first, by block number: e.g. [2] > [1] > [3]")

    def clean(self) -> dict:
        data = super().clean()
        blocks = [b.strip() for b in data.get("candidates", "").split("\n---\n")]
        blocks = [b for b in blocks if b]
        if len(blocks) < 2:
            raise forms.ValidationError("Give at least two candidates, separated by a line with ---.")
        try:
            ranking = parse_ranking(data.get("ranking", ""), len(blocks))
        except RankingParseError as exc:
            raise forms.ValidationError(f"Ranking: {exc}") from None
        data["blocks"], data["order"] = blocks, ranking
        return data


def _overview_context(project) -> dict:
    return {
        "project": project,
        "runs": selectors_judging.judge_runs_for_project(project=project),
        "any_active": selectors_judging.judge_runs_active(project=project),
        "consistency": selectors_judging.judge_consistency(project=project),
        "routing": selectors_judging.routing_summary(project=project),
        "reason_labels": REASON_LABELS,
    }


def judging_overview(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    settings = routing_settings(project=project)
    context = {
        **_overview_context(project),
        "run_form": JudgeRunForm(),
        "spec_form": JudgeSpecForm(),
        "settings_form": RoutingSettingsForm(
            initial={k: getattr(settings, k) for k in RoutingSettingsForm.base_fields}
        ),
    }
    return render(request, "judging/overview.html", context)


def judging_runs(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    context = _overview_context(project)
    response = render(request, "judging/overview.html#runs", context)
    if request.htmx and not context["any_active"]:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_POST
def judging_start(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    form = JudgeRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cannot start: {form.errors.as_text()}")
        return redirect("judging", slug=project.slug)
    try:
        run = judge_run_start(
            project=project,
            judge=form.cleaned_data["judge"],
            task=form.cleaned_data["task"],
            reference=form.cleaned_data["reference"],
            user=request.user,
        )
    except JudgingError as exc:
        messages.error(request, f"Cannot start: {exc}")
    else:
        messages.success(request, f"{run.judge.name}: {run.get_task_display()} queued ({run.total} items).")
    return redirect("judging", slug=project.slug)


@require_POST
def judging_retry(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    try:
        run = judge_run_retry(project=project, run_id=run_id)
    except JudgingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} queued again; it resumes where it stopped.")
    return redirect("judging", slug=project.slug)


@require_POST
def judging_route(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    report = comparisons_route(project=project)
    messages.success(
        request,
        f"Routing applied: {report.pseudo_label} pseudo-labelled, {report.audit} audited, {report.human} sent to "
        f"people, {report.unjudged} without AI verdicts, {report.untouched} left to people already on them.",
    )
    return redirect("judging", slug=project.slug)


@require_POST
def judging_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    form = RoutingSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Settings not saved: {form.errors.as_text()}")
        return redirect("judging", slug=project.slug)
    try:
        routing_settings_update(project=project, values=form.cleaned_data)
    except RoutingSettingsError as exc:
        messages.error(request, f"Settings not saved: {exc}")
    else:
        messages.success(request, "Routing settings saved. Apply routing to use them on existing verdicts.")
    return redirect("judging", slug=project.slug)


@require_POST
def judge_create(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    form = JudgeSpecForm(request.POST)
    if form.is_valid():
        try:
            spec = judge_spec_create(**form.cleaned_data)
        except (JudgingError, forms.ValidationError) as exc:
            messages.error(request, f"Judge not added: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
        else:
            messages.success(request, f"Judge {spec.name} added.")
    else:
        messages.error(request, f"Judge not added: {form.errors.as_text()}")
    return redirect("judging", slug=project.slug)


def demonstrations(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    pool = demonstration_pool_get(project=project)
    form = DemonstrationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                demonstration_add(
                    pool=pool,
                    source=DemonstrationSource.STATIC,
                    messages=[{"role": "user", "content": form.cleaned_data["prompt"]}],
                    candidates=form.cleaned_data["blocks"],
                    ranking=form.cleaned_data["order"],
                    user=request.user,
                )
            except DemonstrationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Demonstration added: the pool is now version {pool.version}.")
                return redirect("demonstrations", slug=project.slug)
        status = 400
    context = {
        "project": project,
        "pool": pool,
        "form": form,
        "current": selectors_judging.demonstrations_at(pool=pool),
        "history": selectors_judging.demonstration_history(pool=pool),
    }
    return render(request, "judging/demonstrations.html", context, status=status)


@require_POST
def demonstration_delete(request: HttpRequest, slug: str, demo_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    demo = get_object_or_404(Demonstration, pk=demo_id, pool__project=project)
    removed = demonstration_remove(demonstration=demo)
    messages.success(request, f"Demonstration removed from version {removed.removed_in} on.")
    return redirect("demonstrations", slug=project.slug)
