import argparse
import importlib
import json
import pkgutil

from django.core.management.base import BaseCommand, CommandError

import annotate.benchmarks


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(annotate.benchmarks.__path__) if not m.name.startswith("_"))


class Command(BaseCommand):
    help = "Run a benchmark and print its figures as JSON (last line). Names: " + ", ".join(available())

    def add_arguments(self, parser):
        parser.add_argument("name", choices=available())
        parser.add_argument("options", nargs="*", help="options of that benchmark (see `benchmark NAME -- --help`)")

    def run_from_argv(self, argv):
        # Everything after the benchmark's name belongs to the benchmark's own parser.
        self._bench_argv = [a for a in argv[3:] if a != "--"]
        super().run_from_argv(argv[:3])

    def handle(self, *args, **options):
        name = options["name"]
        module = importlib.import_module(f"annotate.benchmarks.{name}")
        sub = argparse.ArgumentParser(prog=f"manage.py benchmark {name}", description=module.__doc__)
        if hasattr(module, "add_arguments"):
            module.add_arguments(sub)
        argv = getattr(self, "_bench_argv", None)
        if argv is None:
            argv = list(options.get("options") or [])
        try:
            bench_options = vars(sub.parse_args(argv))
        except SystemExit as exc:
            if exc.code:
                raise CommandError("bad benchmark options") from None
            return
        figures = module.run(bench_options)
        self.stdout.write(json.dumps(figures))
