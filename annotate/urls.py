from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from annotate.views import annotation, generation, items, members, projects, tokens

urlpatterns = [
    path("", projects.project_list, name="project-list"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/<slug:slug>/", projects.project_detail, name="project-detail"),
    path("projects/<slug:slug>/upload/", projects.prompt_upload, name="prompt-upload"),
    path("projects/<slug:slug>/generation/", projects.generation_progress, name="generation-progress"),
    path("projects/<slug:slug>/generation/start/", projects.generation_start, name="generation-start"),
    path("projects/<slug:slug>/generation/retry/", projects.generation_retry, name="generation-retry"),
    path("projects/<slug:slug>/annotate/", annotation.annotate_next, name="annotate-next"),
    path(
        "projects/<slug:slug>/annotate/<int:assignment_id>/submit/", annotation.annotate_submit, name="annotate-submit"
    ),
    path("projects/<slug:slug>/annotate/<int:assignment_id>/skip/", annotation.annotate_skip, name="annotate-skip"),
    path(
        "projects/<slug:slug>/annotate/<int:assignment_id>/diff/",
        annotation.annotate_correction_diff,
        name="annotate-correction-diff",
    ),
    path(
        "projects/<slug:slug>/annotate/judgments/<int:judgment_id>/confirm/",
        annotation.annotate_confirm,
        name="annotate-confirm",
    ),
    path("projects/<slug:slug>/items/", items.item_types, name="item-types"),
    path("projects/<slug:slug>/members/", members.members, name="project-members"),
    path(
        "projects/<slug:slug>/members/<int:membership_id>/remove/", members.member_remove, name="project-member-remove"
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("annotate.api.urls")),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("account/tokens/", tokens.token_page, name="api-tokens"),
]

urlpatterns += [
    path("projects/<slug:slug>/generation/overview/", generation.generation_overview, name="generation-overview"),
    path("projects/<slug:slug>/generation/new/", generation.generation_new, name="generation-new"),
    path("projects/<slug:slug>/generation/runs/<int:run_id>/", generation.generation_run_detail, name="generation-run"),
    path(
        "projects/<slug:slug>/generation/runs/<int:run_id>/retry/",
        generation.generation_run_retry_view,
        name="generation-run-retry",
    ),
    path("projects/<slug:slug>/candidate-sets/", generation.candidate_set_list, name="candidate-set-list"),
    path(
        "projects/<slug:slug>/candidate-sets/<int:set_id>/",
        generation.candidate_set_detail,
        name="candidate-set-detail",
    ),
    path(
        "projects/<slug:slug>/candidate-sets/<int:set_id>/retry/",
        generation.candidate_set_retry,
        name="candidate-set-retry",
    ),
]

# AI judges (issue 4)
from annotate.views import judging  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/judging/", judging.judging_overview, name="judging"),
    path("projects/<slug:slug>/judging/runs/", judging.judging_runs, name="judging-runs"),
    path("projects/<slug:slug>/judging/start/", judging.judging_start, name="judging-start"),
    path("projects/<slug:slug>/judging/runs/<int:run_id>/retry/", judging.judging_retry, name="judging-retry"),
    path("projects/<slug:slug>/judging/route/", judging.judging_route, name="judging-route"),
    path("projects/<slug:slug>/judging/settings/", judging.judging_settings, name="judging-settings"),
    path("projects/<slug:slug>/judging/judges/new/", judging.judge_create, name="judge-create"),
    path("projects/<slug:slug>/judging/demonstrations/", judging.demonstrations, name="demonstrations"),
    path(
        "projects/<slug:slug>/judging/demonstrations/<int:demo_id>/remove/",
        judging.demonstration_delete,
        name="demonstration-remove",
    ),
]
