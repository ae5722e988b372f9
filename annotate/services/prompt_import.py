"""Importing prompts from JSONL and CSV files: validate every line, then write all or nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from annotate.models import Project, Prompt

ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
KNOWN_FIELDS = {"id", "prompt", "messages", "metadata"}
BULK_BATCH = 5000


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}, field '{self.field}': {self.message}" if self.field else f"{where}: {self.message}"


class PromptImportError(Exception):
    """The file has bad lines; nothing was imported."""

    def __init__(self, errors: list[LineError], *, filename: str = "") -> None:
        self.errors = errors
        self.filename = filename
        head = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{filename or 'upload'}: {len(errors)} bad line(s), nothing imported: {head}{more}")


@dataclass
class PromptRecord:
    line: int
    external_id: str
    messages: list[dict[str, str]]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    created: int
    skipped: int
    total: int


def detect_format(filename: str, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower()
    else:
        lower = filename.lower()
        fmt = "csv" if lower.endswith(".csv") else "jsonl" if lower.endswith((".jsonl", ".json", ".ndjson")) else ""
    if fmt not in ("jsonl", "csv"):
        raise PromptImportError(
            [LineError(0, "", f"cannot tell the format of '{filename}': use a .jsonl or .csv file")],
            filename=filename,
        )
    return fmt


def _validate_messages(value: Any, line: int, errors: list[LineError]) -> list[dict[str, str]] | None:
    if not isinstance(value, list) or not value:
        errors.append(LineError(line, "messages", "must be a non-empty list of {role, content} objects"))
        return None
    clean: list[dict[str, str]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            errors.append(LineError(line, where, "must be an object with 'role' and 'content'"))
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            errors.append(LineError(line, f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}"))
            return None
        if not isinstance(content, str) or not content.strip():
            errors.append(LineError(line, f"{where}.content", "must be non-empty text"))
            return None
        if role == "system" and i != 0:
            errors.append(LineError(line, f"{where}.role", "a system turn may only come first"))
            return None
        clean.append({"role": role, "content": content})
    if clean[-1]["role"] != "user":
        errors.append(LineError(line, "messages", "the last turn must be a user turn (the one to answer)"))
        return None
    return clean


def _record_from_mapping(obj: dict[str, Any], line: int, errors: list[LineError]) -> PromptRecord | None:
    before = len(errors)
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id).strip() == "":
        errors.append(LineError(line, "id", "is required (a non-empty string or integer)"))
    elif len(str(raw_id)) > MAX_ID_LENGTH:
        errors.append(LineError(line, "id", f"is longer than {MAX_ID_LENGTH} characters"))
    has_prompt = obj.get("prompt") not in (None, "")
    has_messages = obj.get("messages") not in (None, "", [])
    messages = None
    if has_prompt and has_messages:
        errors.append(LineError(line, "prompt", "give either 'prompt' or 'messages', not both"))
    elif has_prompt:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            errors.append(LineError(line, "prompt", "must be non-empty text"))
        else:
            messages = [{"role": "user", "content": obj["prompt"]}]
    elif has_messages:
        messages = _validate_messages(obj["messages"], line, errors)
    else:
        errors.append(LineError(line, "prompt", "is missing: give 'prompt' (text) or 'messages' (a list)"))
    metadata = obj.get("metadata", {})
    if metadata in (None, ""):
        metadata = {}
    if not isinstance(metadata, dict):
        errors.append(LineError(line, "metadata", "must be an object"))
        metadata = {}
    extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS and v not in (None, "")}
    if len(errors) > before or messages is None:
        return None
    return PromptRecord(line=line, external_id=str(raw_id).strip(), messages=messages, metadata={**extra, **metadata})


def _parse_jsonl(text: str, errors: list[LineError]) -> Iterator[PromptRecord]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, "", f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            errors.append(LineError(number, "", "each line must be a JSON object"))
            continue
        record = _record_from_mapping(obj, number, errors)
        if record:
            yield record


def _parse_csv(text: str, errors: list[LineError]) -> Iterator[PromptRecord]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if "id" not in header or not ({"prompt", "messages"} & set(header)):
        errors.append(LineError(1, "", "the header row must name an 'id' column and a 'prompt' or 'messages' column"))
        return
    start = 1
    for row in reader:
        line = start + 1  # the physical line the record starts on
        start = reader.line_num
        if None in row:
            errors.append(
                LineError(line, "", f"has {len(header) + len(row[None])} cells, the header has {len(header)}")
            )
            continue
        obj: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        if not obj:
            continue
        for json_field in ("messages", "metadata"):
            if json_field in obj:
                try:
                    obj[json_field] = json.loads(obj[json_field])
                except json.JSONDecodeError as exc:
                    errors.append(LineError(line, json_field, f"is not valid JSON: {exc.msg}"))
                    obj = {}
                    break
        if not obj:
            continue
        record = _record_from_mapping(obj, line, errors)
        if record:
            yield record


def prompts_parse(*, content: bytes | str, filename: str, fmt: str | None = None) -> list[PromptRecord]:
    """Parse and validate a whole file; raise PromptImportError listing every bad line."""
    fmt = detect_format(filename, fmt)
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = content[: exc.start].count(b"\n") + 1
            raise PromptImportError([LineError(line, "", "is not valid UTF-8 text")], filename=filename) from None
    else:
        text = content.removeprefix("\ufeff")
    errors: list[LineError] = []
    parser = _parse_csv if fmt == "csv" else _parse_jsonl
    records: list[PromptRecord] = []
    first_line: dict[str, int] = {}
    for record in parser(text, errors):
        if record.external_id in first_line:
            errors.append(
                LineError(
                    record.line,
                    "id",
                    f"duplicate id '{record.external_id}' (first on line {first_line[record.external_id]})",
                )
            )
            continue
        first_line[record.external_id] = record.line
        records.append(record)
    if errors:
        raise PromptImportError(sorted(errors, key=lambda e: e.line), filename=filename)
    if not records:
        raise PromptImportError([LineError(0, "", "the file holds no prompts")], filename=filename)
    return records


def _existing_ids(project: Project, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    found: set[str] = set()
    for start in range(0, len(ids), BULK_BATCH):
        chunk = ids[start : start + BULK_BATCH]
        found.update(
            Prompt.objects.filter(project=project, external_id__in=chunk).values_list("external_id", flat=True)
        )
    return found


def prompts_import(
    *,
    project: Project,
    content: bytes | str,
    filename: str,
    fmt: str | None = None,
    skip_existing: bool = False,
) -> ImportReport:
    """Validate the whole file, then create its prompts in one transaction.

    Any bad line, or an id the project already has (unless `skip_existing`), raises
    PromptImportError and nothing is written.
    """
    records = prompts_parse(content=content, filename=filename, fmt=fmt)
    existing = _existing_ids(project, (r.external_id for r in records))
    if existing and not skip_existing:
        errors = [
            LineError(
                r.line,
                "id",
                f"id '{r.external_id}' already exists in project '{project.slug}' "
                "(use the skip-existing option to skip such lines)",
            )
            for r in records
            if r.external_id in existing
        ]
        raise PromptImportError(errors, filename=filename)
    new = [
        Prompt(project=project, external_id=r.external_id, messages=r.messages, metadata=r.metadata)
        for r in records
        if r.external_id not in existing
    ]
    try:
        with transaction.atomic():
            # With skip_existing, a concurrent import of the same ids is skipped rather than failed.
            Prompt.objects.bulk_create(new, batch_size=BULK_BATCH, ignore_conflicts=skip_existing)
    except IntegrityError:
        raise PromptImportError(
            [LineError(0, "id", "another import created some of these ids at the same time; nothing was imported")],
            filename=filename,
        ) from None
    return ImportReport(created=len(new), skipped=len(records) - len(new), total=len(records))
