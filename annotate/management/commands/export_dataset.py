from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.exports.corrections import corrections_write
from annotate.exports.dpo import dpo_write
from annotate.models import Project


class Command(BaseCommand):
    help = "Export a project's labelled comparisons as a training dataset."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument(
            "--format",
            choices=["dpo", "corrections"],
            default="dpo",
            help="dpo: prompt/chosen/rejected message lists (TRL); corrections: Aligner question/answer/correction",
        )
        parser.add_argument("--output", type=Path, required=True, help="file to write (JSONL)")
        parser.add_argument("--min-agreement", type=float, default=0.0, help="share of people agreeing, 0-1")

    def handle(self, *args, project, format, output, min_agreement, **options):
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug '{project}'") from None
        output.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary file and rename, so a failed export never leaves half a file.
        tmp = output.with_name(output.name + ".partial")
        with tmp.open("w", encoding="utf-8") as out:
            if format == "corrections":
                count = corrections_write(project=target, out=out)
            else:
                count = dpo_write(project=target, out=out, min_agreement=min_agreement)
        tmp.replace(output)
        self.stdout.write(self.style.SUCCESS(f"wrote {count} {format} rows to {output}"))
