from rest_framework import serializers

from annotate.models import Project


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "guidelines", "overlap", "candidates_per_prompt", "created_at"]


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
