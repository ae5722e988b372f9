"""REST API v1 views: parse, call one core function, serialise."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import selectors
from annotate.api import serializers as s
from annotate.models import Role
from annotate.services.prompt_import import PromptImportError, prompts_import


class ProjectList(generics.ListAPIView):
    """Projects the caller is a member of."""

    serializer_class = s.ProjectSerializer
    ordering = "id"

    def get_queryset(self):
        return selectors.projects_for_user(user=self.request.user).order_by("id")


class PromptImport(APIView):
    """Import prompts (all lines or none). Managers only."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": s.PromptImportSerializer},
        responses={201: s.ImportReportSerializer, 400: s.ImportErrorsSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=(Role.MANAGER,))
        body = s.PromptImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        try:
            report = prompts_import(
                project=project,
                content=upload.read(),
                filename=upload.name,
                fmt=body.validated_data.get("format"),
                skip_existing=body.validated_data["skip_existing"],
            )
        except PromptImportError as exc:
            return Response(
                {"detail": "nothing was imported", "errors": [asdict(e) for e in exc.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(asdict(report), status=status.HTTP_201_CREATED)
