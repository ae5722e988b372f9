from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from annotate.api import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("projects/", views.ProjectList.as_view(), name="api-project-list"),
    path("projects/<slug:slug>/prompts/import/", views.PromptImport.as_view(), name="api-prompt-import"),
]
