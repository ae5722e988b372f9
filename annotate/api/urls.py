from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from annotate.api import views

P = "projects/<slug:slug>/"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("projects/", views.ProjectList.as_view(), name="api-project-list"),
    path(P, views.ProjectDetail.as_view(), name="api-project-detail"),
    path(P + "prompts/import/", views.PromptImport.as_view(), name="api-prompt-import"),
    path(P + "queue/claim/", views.QueueClaim.as_view(), name="api-queue-claim"),
    path(P + "queue/<int:lease_id>/submit/", views.QueueSubmit.as_view(), name="api-queue-submit"),
    path(P + "queue/<int:lease_id>/skip/", views.QueueSkip.as_view(), name="api-queue-skip"),
    path(P + "queue/<int:lease_id>/release/", views.QueueRelease.as_view(), name="api-queue-release"),
    path(P + "judgments/mine/", views.MyJudgments.as_view(), name="api-my-judgments"),
    path(P + "comparisons/<int:comparison_id>/", views.ComparisonDetail.as_view(), name="api-comparison-detail"),
    path(P + "exports/", views.ExportJobs.as_view(), name="api-export-list"),
    path(P + "exports/<int:job_id>/", views.ExportJobDetail.as_view(), name="api-export-detail"),
    path(P + "exports/<int:job_id>/download/", views.ExportJobDownload.as_view(), name="api-export-download"),
]
