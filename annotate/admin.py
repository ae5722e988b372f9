"""The Django admin a data lead can work in: filters, search, read-only provenance."""

from django.contrib import admin

from annotate import models as m


class PrincipleInline(admin.TabularInline):
    model = m.Principle
    extra = 0


class MembershipInline(admin.TabularInline):
    model = m.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(m.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "overlap", "candidates_per_prompt", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_by", "created_at"]
    inlines = [PrincipleInline, MembershipInline]


@admin.register(m.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__slug"]
    autocomplete_fields = ["user", "project"]


@admin.register(m.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "short_text", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]
    readonly_fields = ["created_at"]
    list_select_related = ["project"]

    @admin.display(description="last user turn")
    def short_text(self, obj):
        return obj.last_user_text[:100]


@admin.register(m.GeneratorSpec, m.JudgeSpec)
class SpecAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "model", "endpoint", "api_key_env", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "model"]


class CandidateInline(admin.TabularInline):
    model = m.Candidate
    extra = 0
    fields = ["position", "text", "generator", "parent", "meta"]
    readonly_fields = fields
    can_delete = False


@admin.register(m.CandidateSet)
class CandidateSetAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "strategy", "generator", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "strategy", "generator", "prompt__project"]
    search_fields = ["prompt__external_id", "error"]
    readonly_fields = [
        "status",
        "error",
        "raw_output",
        "diversity",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_select_related = ["prompt", "generator"]
    raw_id_fields = ["prompt"]
    inlines = [CandidateInline]


@admin.register(m.Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "candidate_set", "position", "generator", "parent"]
    list_filter = ["generator", "candidate_set__strategy"]
    search_fields = ["text", "prompt__external_id"]
    raw_id_fields = ["candidate_set", "prompt", "parent"]
    readonly_fields = ["created_at", "meta"]


class JudgmentInline(admin.TabularInline):
    model = m.Judgment
    extra = 0
    fields = [
        "source",
        "annotator",
        "judge",
        "choice",
        "shown_left",
        "shown_right",
        "strength",
        "confidence",
        "created_at",
    ]
    readonly_fields = fields
    can_delete = False


@admin.register(m.Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "kind", "status", "priority", "human_judgments", "created_at"]
    list_filter = ["project", "kind", "status"]
    search_fields = ["prompt__external_id"]
    raw_id_fields = ["prompt", "candidate_a", "candidate_b", "candidate_set"]
    readonly_fields = ["human_judgments", "open_leases", "created_at"]
    list_select_related = ["project", "prompt"]
    inlines = [JudgmentInline]


@admin.register(m.Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "source", "annotator", "judge", "choice", "strength", "created_at"]
    list_filter = ["source", "choice", "judge", "comparison__project"]
    search_fields = ["annotator__username", "rationale"]
    list_select_related = ["annotator", "judge"]
    # Judgments are evidence: their provenance is never edited by hand.
    readonly_fields = [f.name for f in m.Judgment._meta.fields]


@admin.register(m.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "user", "state", "swapped", "created_at", "expires_at"]
    list_filter = ["state", "comparison__project"]
    search_fields = ["user__username"]
    # The state changes only through the queue services, which keep Comparison.open_leases exact;
    # shortening expires_at is the way to end a lease by hand (the next claim reclaims it).
    readonly_fields = ["comparison", "user", "state", "swapped", "display_order", "created_at", "closed_at"]


@admin.register(m.Resolution)
class ResolutionAdmin(admin.ModelAdmin):
    list_display = ["comparison", "choice", "method", "resolved_by", "created_at"]
    list_filter = ["method", "choice"]
    raw_id_fields = ["comparison"]
    readonly_fields = ["created_at", "provenance"]


@admin.register(m.GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "strategy", "generator", "prompts_selected", "prompts_skipped", "created_at"]
    list_filter = ["strategy", "project"]
    list_select_related = ["project", "generator"]
    raw_id_fields = ["sets"]
    readonly_fields = ["created_at", "created_by"]


@admin.register(m.ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "format", "status", "rows", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "format", "project"]
    readonly_fields = ["file_name", "rows", "size_bytes", "error", "attempts", "started_at", "finished_at"]


# --- AI judging (issue 4): evidence is read-only; runs are started from the judging page ---------


class _ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(m.JudgeRun)
class JudgeRunAdmin(_ReadOnlyAdmin):
    list_display = ["id", "project", "judge", "judge_version", "task", "status", "done", "total", "created_at"]
    list_filter = ["status", "task", "judge", "project"]
    search_fields = ["error"]
    list_select_related = ["project", "judge"]


@admin.register(m.CandidateScore)
class CandidateScoreAdmin(_ReadOnlyAdmin):
    list_display = ["candidate", "scorer", "scorer_version", "sum_logprob", "mean_logprob", "n_tokens"]
    list_filter = ["scorer"]
    list_select_related = ["scorer"]


@admin.register(m.SetRanking)
class SetRankingAdmin(_ReadOnlyAdmin):
    list_display = ["candidate_set", "judge", "judge_version", "method", "ranking", "pool_version", "error"]
    list_filter = ["method", "judge"]
    list_select_related = ["judge"]


@admin.register(m.SetAgreement)
class SetAgreementAdmin(_ReadOnlyAdmin):
    list_display = ["candidate_set", "rule", "kendall_tau", "share", "created_at"]
    list_filter = ["rule"]


@admin.register(m.PrincipleVerdict)
class PrincipleVerdictAdmin(_ReadOnlyAdmin):
    list_display = ["comparison", "principle", "judge", "judge_version", "choice", "confidence"]
    list_filter = ["judge", "choice", "principle"]
    list_select_related = ["principle", "judge"]


@admin.register(m.SpaPair)
class SpaPairAdmin(_ReadOnlyAdmin):
    list_display = ["comparison", "policy", "reference", "chosen", "margin", "confidence", "flagged"]
    list_filter = ["flagged", "chosen", "policy"]
    list_select_related = ["policy", "reference"]


@admin.register(m.RoutingDecision)
class RoutingDecisionAdmin(_ReadOnlyAdmin):
    list_display = ["comparison", "route", "reasons", "pseudo_choice", "priority_boost", "decided_at"]
    list_filter = ["route", "comparison__project"]


class DemonstrationInline(admin.TabularInline):
    model = m.Demonstration
    extra = 0
    fields = ["source", "candidate_set", "ranking", "added_in", "removed_in", "created_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(m.DemonstrationPool)
class DemonstrationPoolAdmin(_ReadOnlyAdmin):
    list_display = ["project", "name", "version", "created_at"]
    inlines = [DemonstrationInline]
