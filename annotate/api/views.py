"""REST API v1 views: parse, call one core function, serialise.

Permissions: every endpoint needs an authenticated user (token or session). Project endpoints use
`selectors.project_get_for_user`, so a project the caller has no (suitable) role in answers 404,
exactly like one that does not exist. Bad input answers 400 with per-field details; a lease that
is no longer open answers 409.
"""

from __future__ import annotations

from dataclasses import asdict

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import selectors
from annotate.api import serializers as s
from annotate.models import Role
from annotate.services import exports
from annotate.services.prompt_import import PromptImportError, prompts_import
from annotate.services.queue import (
    InvalidVerdict,
    LeaseClosed,
    LeaseNotFound,
    QueueError,
    Submission,
    assignment_claim,
    assignment_release,
    assignment_skip,
    judgment_submit,
)

MANAGERS = (Role.MANAGER,)
LABELLERS = selectors.LABELLER_ROLES


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


class OldestFirst(NewestFirst):
    ordering = "id"


def _queue_error(exc: QueueError) -> Response:
    if isinstance(exc, LeaseNotFound):
        raise NotFound(str(exc))
    if isinstance(exc, InvalidVerdict) and exc.field:
        return Response({exc.field: [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    code = status.HTTP_409_CONFLICT if isinstance(exc, LeaseClosed) else status.HTTP_400_BAD_REQUEST
    return Response({"detail": str(exc), "code": type(exc).__name__}, status=code)


class ProjectList(generics.ListAPIView):
    """Projects the caller is a member of (staff: all)."""

    serializer_class = s.ProjectSerializer
    pagination_class = OldestFirst

    def get_queryset(self):
        return selectors.projects_for_user(user=self.request.user)


class ProjectDetail(APIView):
    """One project and the caller's roles in it. Any member."""

    @extend_schema(responses={200: s.ProjectDetailSerializer, 404: s.ErrorSerializer})
    def get(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug)
        project.roles = sorted(project.my_roles)
        return Response(s.ProjectDetailSerializer(project).data)


class PromptImport(APIView):
    """Import prompts (all lines or none). Managers only."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": s.PromptImportSerializer},
        responses={201: s.ImportReportSerializer, 400: s.ImportErrorsSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
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


class QueueClaim(APIView):
    """Lease the next item to the caller (or return the lease they already hold).

    204 when nothing is left for them. Annotators, adjudicators and managers.
    """

    @extend_schema(request=None, responses={200: s.ItemSerializer, 204: OpenApiResponse(description="Nothing left.")})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
        lease = assignment_claim(project=project, user=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # The selector's dict already has ItemSerializer's shape (asserted in the API tests); it is
        # returned as is because claim is the hottest endpoint.
        return Response(selectors.item_view(lease=lease, project=project))


class QueueSubmit(APIView):
    """Submit a verdict on a leased item. Idempotent by `submission_key` (and per lease):
    201 when stored, 200 with the first result when it was already stored."""

    @extend_schema(
        request=s.SubmitSerializer,
        responses={
            201: s.OwnJudgmentSerializer,
            200: s.OwnJudgmentSerializer,
            400: OpenApiResponse(description="Field errors: {field: [messages]}."),
            404: s.ErrorSerializer,
            409: s.ErrorSerializer,
        },
    )
    def post(self, request: Request, slug: str, lease_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
        body = s.SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            judgment = judgment_submit(
                assignment_id=lease_id,
                user=request.user,
                project=project,
                submission=Submission(
                    shown_choice=data.get("choice", ""),
                    best=data.get("best"),
                    worst=data.get("worst"),
                    strength=data["strength"],
                    rationale=data["rationale"],
                    principle_choices=data.get("principle_choices"),
                    time_spent_ms=data.get("time_spent_ms"),
                    submission_key=data["submission_key"],
                ),
            )
        except QueueError as exc:
            return _queue_error(exc)
        code = status.HTTP_200_OK if judgment.replayed else status.HTTP_201_CREATED
        return Response(selectors.judgment_own_view(judgment=judgment), status=code)


class _LeaseAction(APIView):
    action_fn = None

    @extend_schema(request=None, responses={200: s.LeaseSerializer, 404: s.ErrorSerializer})
    def post(self, request: Request, slug: str, lease_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
        try:
            lease = type(self).action_fn(assignment_id=lease_id, user=request.user, project=project)
        except QueueError as exc:
            return _queue_error(exc)
        return Response(s.LeaseSerializer(lease).data)


class QueueSkip(_LeaseAction):
    """Give the item back and never get it again. No-op on a lease already closed."""

    action_fn = staticmethod(assignment_skip)


class QueueRelease(_LeaseAction):
    """Give the item back to the pool (it may come back to you later). No-op on a closed lease."""

    action_fn = staticmethod(assignment_release)


class MyJudgments(generics.ListAPIView):
    """The caller's own judgments in the project, newest first (never anyone else's)."""

    serializer_class = s.OwnJudgmentSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        project = selectors.project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return selectors.judgments_of_user(user=self.request.user, project=project).select_related("comparison")


class ComparisonDetail(APIView):
    """A comparison as the caller may see it: blind for annotators (their own items, their own
    judgments, no AI verdicts), full for managers and for adjudicators on items in adjudication."""

    @extend_schema(responses={200: s.ComparisonDetailSerializer, 404: s.ErrorSerializer})
    def get(self, request: Request, slug: str, comparison_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
        view = selectors.comparison_view(user=request.user, project=project, comparison_id=comparison_id)
        return Response(s.ComparisonDetailSerializer(view).data)


class ExportJobs(generics.ListAPIView):
    """Export jobs of the project (GET), or ask for a new one (POST, answered 202). Managers."""

    serializer_class = s.ExportJobSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        project = selectors.project_get_for_user(user=self.request.user, slug=self.kwargs["slug"], roles=MANAGERS)
        return selectors.export_jobs_of(project=project)

    @extend_schema(request=s.ExportRequestSerializer, responses={202: s.ExportJobSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
        body = s.ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = exports.export_job_create(
            project=project,
            user=request.user,
            fmt=body.validated_data["format"],
            min_agreement=body.validated_data["min_agreement"],
        )
        return Response(s.ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportJobDetail(APIView):
    """One export job (poll its status). Managers."""

    @extend_schema(responses={200: s.ExportJobSerializer, 404: s.ErrorSerializer})
    def get(self, request: Request, slug: str, job_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
        return Response(s.ExportJobSerializer(selectors.export_job_get(project=project, job_id=job_id)).data)


class _AnyAccept(BaseContentNegotiation):
    """A file download answers whatever the client accepts (errors are rendered as JSON)."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportJobDownload(APIView):
    """The finished export file (JSONL). 409 while the job is not done. Managers."""

    content_negotiation_class = _AnyAccept

    @extend_schema(
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(response=OpenApiTypes.BINARY, description="JSONL file"),
            404: s.ErrorSerializer,
            409: s.ErrorSerializer,
        }
    )
    def get(self, request: Request, slug: str, job_id: int):
        project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
        job = selectors.export_job_get(project=project, job_id=job_id)
        path = exports.export_path(job=job)
        if path is None:
            return Response({"detail": f"This export is {job.status}.", "code": "not_ready"}, status=409)
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=path.name, content_type="application/x-ndjson"
        )
