import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotate.models import Prompt
from annotate.services.prompt_import import PromptImportError, prompts_import

pytestmark = pytest.mark.django_db

GOOD = {"id": "ok-1", "prompt": "Hello?"}


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_imports_text_and_messages_prompts_with_metadata(project):
    content = jsonl(
        {"id": "a", "prompt": "Why is the sky blue?", "metadata": {"topic": "science"}},
        {
            "id": 2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me a joke."},
            ],
            "source": "hh",
        },
    )
    report = prompts_import(project=project, content=content, filename="p.jsonl")
    assert (report.created, report.skipped) == (2, 0)
    a = Prompt.objects.get(project=project, external_id="a")
    assert a.messages == [{"role": "user", "content": "Why is the sky blue?"}]
    assert a.metadata == {"topic": "science"}
    two = Prompt.objects.get(project=project, external_id="2")
    assert len(two.messages) == 4 and two.metadata == {"source": "hh"}


@pytest.mark.parametrize(
    ("bad_line", "field", "fragment"),
    [
        ("{not json", "", "invalid JSON"),
        ("[1, 2]", "", "JSON object"),
        (json.dumps({"prompt": "no id"}), "id", "required"),
        (json.dumps({"id": "", "prompt": "empty id"}), "id", "required"),
        (json.dumps({"id": "x" * 201, "prompt": "long id"}), "id", "longer than"),
        (json.dumps({"id": "n1"}), "prompt", "missing"),
        (json.dumps({"id": "n2", "prompt": "  "}), "prompt", "non-empty"),
        (json.dumps({"id": "n3", "prompt": "a", "messages": [{"role": "user", "content": "b"}]}), "prompt", "not both"),
        (json.dumps({"id": "n4", "messages": "hello"}), "messages", "non-empty list"),
        (json.dumps({"id": "n5", "messages": [{"role": "robot", "content": "x"}]}), "messages[0].role", "one of"),
        (json.dumps({"id": "n6", "messages": [{"role": "user", "content": ""}]}), "messages[0].content", "non-empty"),
        (
            json.dumps(
                {"id": "n7", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            ),
            "messages",
            "last turn",
        ),
        (
            json.dumps(
                {"id": "n8", "messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]}
            ),
            "messages[1].role",
            "only come first",
        ),
        (json.dumps({"id": "n9", "prompt": "x", "metadata": [1]}), "metadata", "object"),
        (json.dumps({"id": "ok-1", "prompt": "duplicate of line 1"}), "id", "duplicate id 'ok-1' (first on line 1)"),
    ],
)
def test_each_kind_of_bad_line_is_reported_with_its_line_and_nothing_is_imported(project, bad_line, field, fragment):
    content = jsonl(GOOD, {"id": "ok-2", "prompt": "fine"}, bad_line)
    with pytest.raises(PromptImportError) as info:
        prompts_import(project=project, content=content, filename="p.jsonl")
    errors = info.value.errors
    assert len(errors) == 1
    assert errors[0].line == 3
    assert errors[0].field == field
    assert fragment in errors[0].message
    assert Prompt.objects.count() == 0


def test_every_bad_line_is_listed(project):
    content = jsonl(GOOD, "{oops", {"id": "b"}, "", {"id": "c", "prompt": "fine"}, {"prompt": "x"})
    with pytest.raises(PromptImportError) as info:
        prompts_import(project=project, content=content, filename="p.jsonl")
    assert [e.line for e in info.value.errors] == [2, 3, 6]
    assert "p.jsonl" in str(info.value)


def test_existing_ids_are_refused_unless_skipped(project):
    prompts_import(project=project, content=jsonl(GOOD), filename="p.jsonl")
    content = jsonl({"id": "new", "prompt": "n"}, GOOD)
    with pytest.raises(PromptImportError) as info:
        prompts_import(project=project, content=content, filename="p.jsonl")
    assert info.value.errors[0].line == 2 and "already exists" in info.value.errors[0].message
    assert Prompt.objects.count() == 1
    report = prompts_import(project=project, content=content, filename="p.jsonl", skip_existing=True)
    assert (report.created, report.skipped) == (1, 1)
    assert Prompt.objects.count() == 2


def test_same_id_in_another_project_is_fine(project):
    from tests.factories import ProjectFactory

    other = ProjectFactory()
    prompts_import(project=project, content=jsonl(GOOD), filename="p.jsonl")
    prompts_import(project=other, content=jsonl(GOOD), filename="p.jsonl")
    assert Prompt.objects.count() == 2


def test_csv_with_messages_metadata_and_extra_columns(project):
    content = (
        b"id,prompt,messages,metadata,lang\n"
        b'c1,"Multi\nline prompt",,"{""k"": 1}",en\n'
        b'c2,,"[{""role"": ""user"", ""content"": ""hi""}]",,fr\n'
    )
    report = prompts_import(project=project, content=content, filename="p.csv")
    assert report.created == 2
    c1 = Prompt.objects.get(external_id="c1")
    assert c1.messages[0]["content"] == "Multi\nline prompt"
    assert c1.metadata == {"k": 1, "lang": "en"}


def test_csv_errors_name_the_physical_line(project):
    content = b'id,prompt\nc1,"two\nlines"\nc2,\nc3,"ok",extra\n'
    with pytest.raises(PromptImportError) as info:
        prompts_import(project=project, content=content, filename="p.csv")
    assert [(e.line, e.field) for e in info.value.errors] == [(4, "prompt"), (5, "")]


def test_csv_without_required_columns(project):
    with pytest.raises(PromptImportError) as info:
        prompts_import(project=project, content=b"name,text\na,b\n", filename="p.csv")
    assert "header" in info.value.errors[0].message


def test_unknown_extension_and_bad_encoding_and_empty_file(project):
    with pytest.raises(PromptImportError, match="format"):
        prompts_import(project=project, content=b"x", filename="p.txt")
    with pytest.raises(PromptImportError) as info:
        prompts_import(
            project=project, content=b'{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": "\xff"}', filename="p.jsonl"
        )
    assert info.value.errors[0].line == 2 and "UTF-8" in info.value.errors[0].message
    with pytest.raises(PromptImportError, match="no prompts"):
        prompts_import(project=project, content=b"\n\n", filename="p.jsonl")


def test_management_command_reports_lines_and_imports_nothing(project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(GOOD, {"id": "x"}))
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_prompts", project.slug, str(bad), stderr=err)
    assert "line 2, field 'prompt'" in err.getvalue()
    assert Prompt.objects.count() == 0
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(GOOD, {"id": "y", "prompt": "q"}))
    out = io.StringIO()
    call_command("import_prompts", project.slug, str(good), stdout=out)
    assert "imported 2" in out.getvalue()
    with pytest.raises(CommandError, match="no project"):
        call_command("import_prompts", "nope", str(good))


def test_upload_page_lists_errors_per_line(client, manager, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(manager)
    url = reverse("prompt-upload", args=[project.slug])
    upload = SimpleUploadedFile("p.jsonl", jsonl(GOOD, {"id": "b", "prompt": ""}))
    response = client.post(url, {"file": upload})
    assert response.status_code == 400
    assert b"Nothing was imported" in response.content
    assert Prompt.objects.count() == 0
    upload = SimpleUploadedFile("p.jsonl", jsonl(GOOD))
    response = client.post(url, {"file": upload})
    assert response.status_code == 302 and Prompt.objects.count() == 1


def test_upload_page_is_for_managers_only(client, annotator, project):
    client.force_login(annotator)
    assert client.get(reverse("prompt-upload", args=[project.slug])).status_code == 404


def test_rest_import_endpoint(client, manager, annotator, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("api-prompt-import", args=[project.slug])
    token = Token.objects.create(user=manager)
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    bad = client.post(url, {"file": SimpleUploadedFile("p.jsonl", jsonl(GOOD, "{"))}, **auth)
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"line": 2, "field": "", "message": bad.json()["errors"][0]["message"]}]
    ok = client.post(url, {"file": SimpleUploadedFile("p.jsonl", jsonl(GOOD))}, **auth)
    assert ok.status_code == 201 and ok.json() == {"created": 1, "skipped": 0, "total": 1}
    missing = client.post(url, {}, **auth)
    assert missing.status_code == 400 and "file" in missing.json()
    other = Token.objects.create(user=annotator)
    denied = client.post(
        url,
        {"file": SimpleUploadedFile("p.jsonl", jsonl({"id": "z", "prompt": "q"}))},
        HTTP_AUTHORIZATION=f"Token {other.key}",
    )
    assert denied.status_code == 404
    assert client.post(url, {}).status_code in (401, 403)
