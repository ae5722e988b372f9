from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from annotate.services.prompt_import import PromptImportError, prompts_import


class Command(BaseCommand):
    help = "Import prompts from a JSONL or CSV file into a project (all lines or none)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name")
        parser.add_argument("--skip-existing", action="store_true", help="skip ids the project already has")

    def handle(self, *args, project, file, format, skip_existing, **options):
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug '{project}'") from None
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            report = prompts_import(
                project=target, content=file.read_bytes(), filename=str(file), fmt=format, skip_existing=skip_existing
            )
        except PromptImportError as exc:
            for error in exc.errors:
                self.stderr.write(f"{file}: {error}")
            raise CommandError(f"{file}: {len(exc.errors)} bad line(s); nothing was imported") from None
        self.stdout.write(
            self.style.SUCCESS(f"imported {report.created} prompts into {target.slug} ({report.skipped} skipped)")
        )
