"""Seed the demo project, users and prompts, and start candidate generation (idempotent)."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotate.models import Project, Role, Strategy
from annotate.services.generation import candidate_sets_create
from annotate.services.projects import membership_add, project_create
from annotate.services.prompt_import import prompts_import

DEMO_PASSWORD = "concord-demo"  # noqa: S105 - printed demo credentials for a local demo only
DEMO_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "demo_prompts.jsonl"
PRINCIPLES = [
    ("helpful", "Please choose the response that is the most helpful, honest and harmless."),
    ("respects-autonomy", "Please choose the response that best respects the user's right to make their own choices."),
    ("balanced", "Please choose the response that presents the most balanced view on contested questions."),
    ("safe", "Please choose the response that is least likely to cause harm."),
]


class Command(BaseCommand):
    help = "Create the demo project, users manager/annotator1/annotator2, 30 prompts, and queue generation."

    def add_arguments(self, parser):
        parser.add_argument("--no-generate", action="store_true", help="do not create candidate sets")
        parser.add_argument(
            "--queue-only",
            action="store_true",
            help="create the sets but send no task (a worker sends queued sets when it starts)",
        )

    def handle(self, *args, no_generate, queue_only, **options):
        User = get_user_model()
        users = {}
        for name in ("manager", "annotator1", "annotator2"):
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            users[name] = user
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = project_create(
                name="Demo: diverse values",
                slug="demo",
                created_by=users["manager"],
                guidelines=(
                    "Pick the response you would rather receive. Judge helpfulness, honesty and care; "
                    "on value-laden questions there is no single right answer: go with your own view."
                ),
                principles=PRINCIPLES,
                overlap=2,
            )
        for name in ("annotator1", "annotator2"):
            membership_add(project=project, user=users[name], role=Role.ANNOTATOR)
        membership_add(project=project, user=users["manager"], role=Role.ADJUDICATOR)
        report = prompts_import(
            project=project, content=DEMO_FILE.read_bytes(), filename=DEMO_FILE.name, skip_existing=True
        )
        queued = 0
        if not no_generate:
            queued = len(candidate_sets_create(project=project, strategy=Strategy.NC_VALUES, dispatch=not queue_only))
        self.stdout.write(
            f"demo project '{project.slug}': {report.created} new prompts, {queued} candidate sets queued\n"
            f"demo logins (local demo only): manager, annotator1, annotator2 / password {DEMO_PASSWORD}"
        )
