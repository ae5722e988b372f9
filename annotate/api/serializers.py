from rest_framework import serializers

from annotate import selectors
from annotate.models import Choice, ExportFormat, ExportJob, Judgment, Project, Strength
from annotate.services.queue import SHOWN_CHOICES


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "guidelines", "overlap", "candidates_per_prompt", "created_at"]


class ProjectDetailSerializer(ProjectSerializer):
    roles = serializers.ListField(child=serializers.CharField(), help_text="The caller's roles in this project.")
    lease_minutes = serializers.IntegerField()
    require_rationale = serializers.BooleanField()

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "lease_minutes", "require_rationale", "roles"]


class PromptImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL or CSV file")
    format = serializers.ChoiceField(choices=["jsonl", "csv"], required=False)
    skip_existing = serializers.BooleanField(default=False)


class ImportReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    skipped = serializers.IntegerField()
    total = serializers.IntegerField()


class LineErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class ImportErrorsSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = LineErrorSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


# --- the queue ---------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ShownResponseSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1-based, in the order shown; for a pair 1 is left, 2 right.")
    text = serializers.CharField(help_text="Model output: untrusted, render it as text or sanitised markdown.")


class PrincipleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    text = serializers.CharField()


class ItemSerializer(serializers.Serializer):
    """A leased item as its person sees it: no candidate ids, generators or anyone's verdicts."""

    lease = serializers.IntegerField(help_text="Lease id: use it to submit, skip or release.")
    comparison = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["pair", "best_of_n"])
    expires_at = serializers.DateTimeField()
    prompt = MessageSerializer(many=True, help_text="The conversation, ending with a user turn.")
    responses = ShownResponseSerializer(many=True)
    guidelines = serializers.CharField(allow_blank=True)
    principles = PrincipleSerializer(many=True)
    require_rationale = serializers.BooleanField()


class SubmitSerializer(serializers.Serializer):
    """A verdict as shown. Pairs: `choice`. Best-of-N: `best` (and optionally `worst`)."""

    choice = serializers.ChoiceField(choices=SHOWN_CHOICES, required=False, help_text="Pairs only.")
    best = serializers.IntegerField(min_value=1, max_value=64, required=False, help_text="Best-of-N: position.")
    worst = serializers.IntegerField(min_value=1, max_value=64, required=False, help_text="Best-of-N: position.")
    strength = serializers.ChoiceField(choices=Strength.choices, required=False, allow_blank=True, default="")
    rationale = serializers.CharField(
        required=False, allow_blank=True, max_length=5000, default="", trim_whitespace=False
    )
    principle_choices = serializers.DictField(
        child=serializers.ChoiceField(choices=SHOWN_CHOICES),
        required=False,
        help_text="Principle id -> left / right / tie / both_bad.",
    )
    time_spent_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000, required=False, allow_null=True)
    submission_key = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="Any string unique per verdict: resending the same key stores nothing new and returns the first.",
    )

    def validate_principle_choices(self, value: dict) -> dict:
        bad = [k for k in value if not str(k).isdigit()]
        if bad:
            raise serializers.ValidationError(f"keys must be principle ids, got {bad[:5]}")
        return value

    def validate(self, attrs: dict) -> dict:
        if "choice" in attrs and ("best" in attrs or "worst" in attrs):
            raise serializers.ValidationError({"choice": ["give either choice (pairs) or best/worst (best-of-N)"]})
        if "worst" in attrs and "best" not in attrs:
            raise serializers.ValidationError({"best": ["required when worst is given"]})
        if "choice" not in attrs and "best" not in attrs:
            raise serializers.ValidationError({"choice": ["required: choice for a pair, best for a best-of-N item"]})
        return attrs


class LeaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    comparison = serializers.IntegerField(source="comparison_id")
    state = serializers.CharField()
    expires_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class OwnJudgmentSerializer(serializers.Serializer):
    """A person's own judgment, in the terms they were shown (see selectors.judgment_own_view)."""

    id = serializers.IntegerField()
    comparison = serializers.IntegerField()
    choice = serializers.ChoiceField(choices=Choice.choices, help_text="In the item's own terms (a = candidate A).")
    shown_choice = serializers.CharField(allow_null=True, help_text="left / right / tie / both_bad as shown; pairs.")
    best = serializers.IntegerField(allow_null=True, help_text="Best-of-N: position of the best response as shown.")
    worst = serializers.IntegerField(allow_null=True, help_text="Best-of-N: position of the worst response as shown.")
    strength = serializers.CharField(allow_blank=True)
    rationale = serializers.CharField(allow_blank=True)
    time_spent_ms = serializers.IntegerField(allow_null=True)
    submission_key = serializers.CharField(allow_blank=True)
    derived_from = serializers.IntegerField(allow_null=True, help_text="The best-of-N pick it comes from.")
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Judgment) -> dict:
        view = selectors.judgment_own_view(judgment=instance)
        view["created_at"] = serializers.DateTimeField().to_representation(view["created_at"])
        return view


class FullJudgmentSerializer(serializers.ModelSerializer):
    """Every field of a judgment (managers, and adjudicators on items in adjudication)."""

    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    judge = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Judgment
        fields = [
            "id",
            "source",
            "annotator",
            "judge",
            "judge_version",
            "choice",
            "best_candidate",
            "worst_candidate",
            "shown_left",
            "shown_right",
            "display_order",
            "strength",
            "principle_choices",
            "probabilities",
            "confidence",
            "rationale",
            "time_spent_ms",
            "derived_from",
            "created_at",
        ]


class CandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField()
    text = serializers.CharField()
    generator = serializers.CharField(allow_null=True)


class ComparisonDetailSerializer(serializers.Serializer):
    """With `access` "blind": the item as the caller was shown it and only their own judgments.
    With "full": also the candidates with provenance, counters and every judgment."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    access = serializers.ChoiceField(choices=["blind", "full"])
    prompt = MessageSerializer(many=True)
    responses = ShownResponseSerializer(many=True)
    my_judgments = OwnJudgmentSerializer(many=True)
    status = serializers.CharField(required=False)
    priority = serializers.IntegerField(required=False)
    human_judgments = serializers.IntegerField(required=False)
    open_leases = serializers.IntegerField(required=False)
    prompt_external_id = serializers.CharField(required=False)
    candidates = CandidateSerializer(many=True, required=False)
    judgments = FullJudgmentSerializer(many=True, required=False)


class ExportJobSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "format",
            "params",
            "status",
            "requested_by",
            "rows",
            "size_bytes",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, obj: ExportJob) -> str | None:
        from django.urls import reverse

        if obj.status != "done":
            return None
        return reverse("api-export-download", args=[obj.project.slug, obj.pk])


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.values, default=ExportFormat.DPO)
    min_agreement = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=0.0, help_text="Share of people who must agree, 0 to 1."
    )
