"""Generation pages for a project's data lead (managers): start runs, watch them, browse and compare sets."""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors
from annotate.charts import diversity_scatter_svg
from annotate.models import GeneratorSpec, Role, RunStatus, Strategy
from annotate.services.generation import (
    GenerationError,
    candidate_sets_retry,
    generation_run_retry,
    generation_run_start,
)

MANAGERS = (Role.MANAGER,)
HTMX_STOP_POLLING = 286  # htmx stops an `every Ns` poll when it gets this status
SETS_PER_PAGE = 25


class GenerationForm(forms.Form):
    SCOPES = [
        ("missing", "All prompts without a set of this strategy and generator"),
        ("all", "All prompts, even those that already have one"),
        ("selected", "Only the prompts listed below"),
    ]

    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.NC_VALUES)
    generator = forms.ModelChoiceField(
        queryset=GeneratorSpec.objects.none(),
        required=False,
        empty_label="The default model (SmolLM2-135M-Instruct)",
        help_text="The model that writes the candidates (the corrector, for corrections).",
    )
    generators = forms.ModelMultipleChoiceField(
        queryset=GeneratorSpec.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Several generators: at least two, one candidate each.",
    )
    scope = forms.ChoiceField(choices=SCOPES, initial="missing", widget=forms.RadioSelect)
    prompt_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Prompt ids",
        help_text="External ids, separated by commas, spaces or new lines.",
    )
    n = forms.IntegerField(
        required=False, min_value=2, max_value=16, label="Candidates per prompt", help_text="Empty: the project's."
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=5, help_text="0 means greedy.")
    max_new_tokens = forms.IntegerField(required=False, min_value=1, max_value=8192, label="Max new tokens")
    seed = forms.IntegerField(required=False, min_value=0)
    oversample = forms.IntegerField(
        required=False,
        min_value=2,
        max_value=64,
        label="K (max-min)",
        help_text="Samples drawn per prompt; default 2N.",
    )
    values = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Value perspectives (value-conditioned NC)",
        help_text="One per line, 'name: instruction'. Empty: the four Inglehart-Welzel poles.",
    )
    source_strategy = forms.ChoiceField(
        required=False,
        choices=[("", "The latest finished set, whatever its strategy")]
        + [(v, label) for v, label in Strategy.choices if v != Strategy.CORRECTION],
        label="Correct the candidates of",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        specs = selectors.generator_specs()
        self.fields["generator"].queryset = specs
        self.fields["generators"].queryset = specs

    def clean(self) -> dict:
        data = super().clean()
        if data.get("strategy") == Strategy.MULTI_MODEL and len(data.get("generators") or []) < 2:
            self.add_error("generators", "Choose at least two generators for several-generator sets.")
        ids = [x for x in re.split(r"[\s,]+", data.get("prompt_ids") or "") if x]
        data["prompt_id_list"] = ids
        if data.get("scope") == "selected" and not ids:
            self.add_error("prompt_ids", "List the prompts to generate for.")
        values = []
        for line in (data.get("values") or "").splitlines():
            if line.strip():
                name, sep, instruction = line.partition(":")
                values.append(
                    {"name": name.strip(), "instruction": instruction.strip()} if sep and instruction.strip() else line
                )
        data["value_list"] = values
        return data

    def params(self) -> dict:
        data = self.cleaned_data
        params: dict = {}
        for key in ("temperature", "max_new_tokens", "seed", "oversample"):
            if data.get(key) is not None:
                params[key] = data[key]
        if data["strategy"] == Strategy.NC_VALUES and data["value_list"]:
            params["values"] = data["value_list"]
        if data["strategy"] == Strategy.CORRECTION and data.get("source_strategy"):
            params["source_strategy"] = data["source_strategy"]
        if data["strategy"] == Strategy.MULTI_MODEL:
            params["generators"] = [g.pk for g in data["generators"]]
        return params


def generation_overview(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    rows = selectors.strategy_comparison(project=project)
    runs = [
        (run, selectors.generation_run_progress(run=run))
        for run in selectors.generation_runs_for_project(project=project)
    ]
    return render(
        request,
        "generation/overview.html",
        {"project": project, "rows": rows, "plot": diversity_scatter_svg(rows), "runs": runs},
    )


def generation_new(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    initial = {}
    if request.method == "GET" and request.GET.getlist("prompt"):
        initial = {"scope": "selected", "prompt_ids": "\n".join(request.GET.getlist("prompt"))}
    form = GenerationForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        prompts = None
        if data["scope"] == "selected":
            prompts, missing = selectors.prompts_by_external_ids(project=project, external_ids=data["prompt_id_list"])
            if missing:
                form.add_error("prompt_ids", f"No prompt with id: {', '.join(missing[:10])}")
        if form.is_valid():
            try:
                run = generation_run_start(
                    project=project,
                    strategy=data["strategy"],
                    generator=data.get("generator"),
                    prompts=prompts,
                    n=data.get("n"),
                    params=form.params(),
                    skip_prompts_with_sets=data["scope"] == "missing",
                    user=request.user,
                )
            except GenerationError as exc:
                form.add_error(None, str(exc))
            else:
                skipped = f" ({run.prompts_skipped} prompts skipped)" if run.prompts_skipped else ""
                messages.success(
                    request, f"Queued {run.prompts_selected - run.prompts_skipped} candidate sets{skipped}."
                )
                return redirect("generation-run", slug=project.slug, run_id=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "generation/new.html", {"project": project, "form": form}, status=status)


def generation_run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    run = selectors.generation_run_get(project=project, run_id=run_id)
    progress = selectors.generation_run_progress(run=run)
    context = {
        "project": project,
        "run": run,
        "progress": progress,
        "failed_sets": selectors.generation_run_failed_sets(run=run),
    }
    if request.htmx:
        response = render(request, "generation/run.html#run-progress", context)
        if progress["complete"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    return render(request, "generation/run.html", context)


@require_POST
def generation_run_retry_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    run = selectors.generation_run_get(project=project, run_id=run_id)
    count = generation_run_retry(run=run)
    messages.success(request, f"Re-queued {count} candidate sets.")
    return redirect("generation-run", slug=project.slug, run_id=run.pk)


class SetFilterForm(forms.Form):
    strategy = forms.ChoiceField(required=False, choices=[("", "Any strategy"), *Strategy.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *RunStatus.choices])
    generator = forms.ModelChoiceField(
        queryset=GeneratorSpec.objects.none(), required=False, empty_label="Any generator"
    )
    run = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["generator"].queryset = selectors.generator_specs()


def candidate_set_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    filters = SetFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    sets = selectors.candidate_sets_for_project(
        project=project,
        strategy=criteria.get("strategy") or "",
        status=criteria.get("status") or "",
        generator_id=criteria["generator"].pk if criteria.get("generator") else None,
        run_id=criteria.get("run"),
    )
    page = Paginator(sets, SETS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "generation/set_list.html",
        {"project": project, "filters": filters, "page": page, "query": query.urlencode()},
    )


def candidate_set_detail(request: HttpRequest, slug: str, set_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    cset = selectors.candidate_set_get(project=project, set_id=set_id)
    return render(request, "generation/set_detail.html", {"project": project, "set": cset})


@require_POST
def candidate_set_retry(request: HttpRequest, slug: str, set_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    cset = selectors.candidate_set_get(project=project, set_id=set_id)
    count = candidate_sets_retry(project=project, set_ids=[cset.pk])
    if count:
        messages.success(request, "The set is queued again.")
    else:
        messages.info(request, "Only failed (or long-abandoned) sets can be retried.")
    return redirect("candidate-set-detail", slug=project.slug, set_id=cset.pk)
