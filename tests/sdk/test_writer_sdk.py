#!/usr/bin/env python3
"""End-to-end check of scriptorium against the official Writer Python SDK (writer-sdk 3.0.0).

A plain script, no pytest: it reads WRITER_BASE_URL and WRITER_API_KEY from the environment,
drives every application and file route through `writerai.Writer` against the fixture
applications (tests/fixtures/apps: echo, single-shot, uploads deployed; unfinished a draft),
applications two organisations create over our own route, and fixture files
(tests/fixtures/files), prints one
line per check and ends with `SDK OK`. Any failure raises (exit status non-zero).

Run by tests/api/sdk.rs against a server it starts; by hand (SCRIPTORIUM_OTHER_API_KEY: a key
of another organisation, from `scriptorium keys create --org other`):
    WRITER_BASE_URL=http://127.0.0.1:8080 WRITER_API_KEY=... SCRIPTORIUM_OTHER_API_KEY=... \
        python3 tests/sdk/test_writer_sdk.py
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import writerai

BASE_URL = os.environ["WRITER_BASE_URL"]
API_KEY = os.environ["WRITER_API_KEY"]

# Every request the SDK sends, as (method, path, x-stainless-retry-count): lets the script
# prove that no call was silently retried by the SDK (which it does on 408/409/429/5xx).
SENT: list[tuple[str, str, str]] = []


def _record(request: httpx.Request) -> None:
    SENT.append(
        (request.method, request.url.path, request.headers.get("x-stainless-retry-count", "?"))
    )


def make_client(api_key: str) -> writerai.Writer:
    # trust_env=False: a proxy from the environment must never see requests to a local server.
    http = writerai.DefaultHttpxClient(trust_env=False, event_hooks={"request": [_record]})
    # max_retries=2, not the default 7: a retry is still visible (x-stainless-retry-count above 0
    # is recorded and fails the run), but a dead server fails the script in seconds, not minutes.
    return writerai.Writer(
        base_url=BASE_URL, api_key=api_key, timeout=30.0, max_retries=2, http_client=http
    )


client = make_client(API_KEY)
intruder = make_client(API_KEY + "-wrong")
# A valid key of another organisation (tests/api/sdk.rs creates it).
other_org = make_client(os.environ["SCRIPTORIUM_OTHER_API_KEY"])


def ok(message: str) -> None:
    print(f"ok   {message}", flush=True)


def poll(job_id: str, want: str, timeout: float = 20.0):
    """Polls a job until its status is `want`; fails on another final status or a timeout."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.applications.jobs.retrieve(job_id)
        assert job.status in ("in_progress", "completed", "failed"), (
            f"job {job_id}: status {job.status!r} is not one of Writer's three"
        )
        if job.status == want:
            return job
        if job.status != "in_progress":
            raise AssertionError(f"job {job_id} ended {job.status!r} while waiting for {want!r}: {job}")
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {want!r} within {timeout} s; last seen: {job}")


def raises(kind: type[Exception], call, what: str):
    """Runs `call`, asserts it raises `kind` promptly and without an SDK retry; answers it."""
    sent_before = len(SENT)
    started = time.monotonic()
    try:
        call()
    except kind as e:
        elapsed = time.monotonic() - started
        retries = [s for s in SENT[sent_before:] if s[2] != "0"]
        assert not retries, f"{what}: the SDK retried before raising: {retries}"
        # The retry-count check above is the proof; this only bounds "promptly" loosely enough
        # for a loaded CI machine (one SDK retry would also add at least 0.75 s of backoff).
        assert elapsed < 5.0, f"{what}: took {elapsed:.2f} s to raise"
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong kind with its details
        raise AssertionError(f"{what}: expected {kind.__name__}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"{what}: expected {kind.__name__}, but the call succeeded")


def text_input(*values: str, name: str = "Text") -> list[dict]:
    return [{"id": name, "value": list(values)}]


# --- applications: list, retrieve -----------------------------------------------------------

DEPLOYED_ASC = ["echo", "single-shot", "uploads"]  # by created_at; "unfinished" is a draft

first_page = client.applications.list(limit=1)
assert len(first_page.data) == 1 and first_page.has_more, (
    f"first page with limit=1: {first_page.data!r}, has_more={first_page.has_more}"
)
pages = list(client.applications.list(limit=1).iter_pages())
assert len(pages) == 3, f"limit=1 over 3 deployed apps should take 3 pages, took {len(pages)}"
desc = [app.id for app in client.applications.list(limit=1)]
assert desc == DEPLOYED_ASC[::-1], f"default order should be newest first {DEPLOYED_ASC[::-1]}, got {desc}"
ok(f"applications.list(limit=1) auto-paginates over 3 pages, newest first: {desc}")

asc = [app.id for app in client.applications.list(limit=1, order="asc")]
assert asc == DEPLOYED_ASC, f"order=asc should be {DEPLOYED_ASC}, got {asc}"
ok(f"applications.list(order='asc') is oldest first: {asc}")

whole = client.applications.list()
assert [a.id for a in whole.data] == DEPLOYED_ASC[::-1] and not whole.has_more, (
    f"one default page should hold every deployed app: {whole}"
)
ok("applications.list() default limit: one page, has_more false, no draft")

echo = client.applications.retrieve("echo")
assert echo.id == "echo" and echo.name == "Echo", f"echo: {echo}"
assert echo.type == "generation", f"echo.type: {echo.type!r}"
assert echo.status == "deployed", f"echo.status: {echo.status!r}"
assert isinstance(echo.created_at, datetime), f"created_at not a timestamp: {echo.created_at!r}"
assert isinstance(echo.updated_at, datetime), f"updated_at not a timestamp: {echo.updated_at!r}"
assert echo.created_at.year == 2025 and echo.created_at.month == 1 and echo.created_at.day == 1, (
    f"echo.created_at: {echo.created_at}"
)
inputs = {i.name: i for i in echo.inputs}
assert list(inputs) == ["Text", "Mode", "Note"], f"echo inputs, in order: {list(inputs)}"
text = inputs["Text"]
assert text.input_type == "text" and text.required is True, f"Text: {text}"
assert text.options is not None, f"Text has options {{min_fields, max_fields}}: {text}"
assert (text.options.min_fields, text.options.max_fields) == (1, 3), f"Text options: {text.options}"
mode = inputs["Mode"]
assert mode.input_type == "dropdown" and mode.required is False, f"Mode: {mode}"
assert mode.options is not None and mode.options.list == ["plain", "loud"], f"Mode options: {mode.options}"
note = inputs["Note"]
assert note.input_type == "text" and note.required is False and note.options is None, f"Note: {note}"
ok("applications.retrieve('echo'): type, status, timestamps, inputs with options, dropdown list")

uploads = client.applications.retrieve("uploads")
kinds = {i.name: i.input_type for i in uploads.inputs}
assert kinds == {"Contract": "file", "Picture": "media"}, f"uploads inputs: {kinds}"
ok("applications.retrieve('uploads'): file and media inputs")

e = raises(writerai.NotFoundError, lambda: client.applications.retrieve("unfinished"), "retrieve a draft")
assert e.status_code == 404
ok("applications.retrieve('unfinished') (a draft) raises NotFoundError")
raises(writerai.NotFoundError, lambda: client.applications.retrieve("no-such-app"), "retrieve unknown")
ok("applications.retrieve('no-such-app') raises NotFoundError")

# --- synchronous generation -----------------------------------------------------------------

values = ["alpha one", "beta two"]
done = client.applications.generate_content(
    "echo", inputs=text_input(*values) + [{"id": "Mode", "value": ["loud"]}]
)
assert done.suggestion, f"empty suggestion: {done}"
for v in values + ["mode=loud"]:
    assert v in done.suggestion, f"suggestion {done.suggestion!r} lacks {v!r}"
assert done.suggestion.startswith("[") and "] alpha one | beta two" in done.suggestion, (
    f"the mock echoes '[model] <prompt>': {done.suggestion!r}"
)
assert done.title == "Echo of alpha one", f"title: {done.title!r}"
ok(f"generate_content('echo'): suggestion {done.suggestion!r}, title {done.title!r}")

optional_empty = client.applications.generate_content(
    "echo", inputs=text_input("just this") + [{"id": "Note", "value": []}]
)
assert "just this" in optional_empty.suggestion, f"{optional_empty}"
ok("generate_content accepts an optional input sent as value: []")

long_values = ["one two three four five six seven", "eight nine ten eleven twelve"]
whole_text = client.applications.generate_content("echo", inputs=text_input(*long_values))
stream = client.applications.generate_content("echo", inputs=text_input(*long_values), stream=True)
chunks = list(stream)
content = "".join(c.delta.content for c in chunks if c.delta.content)
titles = [c.delta.title for c in chunks if c.delta.title]
content_chunks = [c for c in chunks if c.delta.content]
assert len(content_chunks) > 1, f"expected the answer in several deltas, got {chunks}"
assert content == whole_text.suggestion, (
    f"streamed content {content!r} differs from the non-streamed suggestion {whole_text.suggestion!r}"
)
assert titles == [f"Echo of {long_values[0]}"], f"title deltas: {titles}"
ok(f"generate_content(stream=True): {len(content_chunks)} content deltas reassemble the suggestion; title delta")

# --- async jobs -----------------------------------------------------------------------------

texts = [f"job text {n} {uuid.uuid4().hex[:8]}" for n in range(5)]
created = []
for t in texts:
    job = client.applications.jobs.create("echo", inputs=text_input(t))
    assert job.id and job.status == "in_progress", f"create answered {job}"
    assert isinstance(job.created_at, datetime), f"created_at: {job.created_at!r}"
    created.append(job.id)
assert len(set(created)) == 5, f"job ids not distinct: {created}"
ok("jobs.create x5 on 'echo': 5 distinct ids, status in_progress")

for job_id, t in zip(created, texts):
    job = poll(job_id, "completed")
    assert job.id == job_id and job.application_id == "echo", f"{job}"
    assert job.data is not None and t in job.data.suggestion, f"job {job_id} data lacks {t!r}: {job.data}"
    assert job.data.title == f"Echo of {t}", f"job {job_id} title: {job.data.title!r}"
    assert job.error is None, f"a completed job has no error: {job.error!r}"
    assert isinstance(job.completed_at, datetime), f"completed_at: {job.completed_at!r}"
ok("jobs.retrieve: all 5 completed, each suggestion holds its own text")

listed_pages = list(client.applications.jobs.list("echo", limit=2).iter_pages())
assert [len(p.result) for p in listed_pages] == [2, 2, 1], (
    f"limit=2 over 5 jobs should page 2+2+1, got {[len(p.result) for p in listed_pages]}"
)
assert listed_pages[0].total_count == 5, f"totalCount: {listed_pages[0].total_count}"
assert [p.pagination.offset for p in listed_pages] == [0, 2, 4], (
    f"pagination.offset per page: {[p.pagination and p.pagination.offset for p in listed_pages]}"
)
listed = [j.id for j in client.applications.jobs.list("echo", limit=2)]
assert len(listed) == 5 and set(listed) == set(created), f"listed {listed}, created {created}"
ok("jobs.list('echo', limit=2) auto-paginates on offset/totalCount: all 5, no duplicates")

completed = [j.id for j in client.applications.jobs.list("echo", status="completed")]
assert set(completed) == set(created), f"status=completed: {completed}"
failed = list(client.applications.jobs.list("echo", status="failed"))
assert failed == [], f"status=failed on echo should be empty: {failed}"
ok("jobs.list(status=...) filters: 5 completed, 0 failed")

# --- retry ----------------------------------------------------------------------------------

doomed = client.applications.jobs.create(
    "single-shot", inputs=text_input("fails once [[mock:fatal-first=1]]")
)
job = poll(doomed.id, "failed")
assert job.error, f"a failed job carries a non-empty error: {job}"
assert job.data is None, f"a failed job has no data: {job.data}"
ok(f"single-shot job with fatal-first=1 failed: error {job.error!r}")

failed_listed = [j.id for j in client.applications.jobs.list("single-shot", status="failed")]
assert failed_listed == [doomed.id], f"status=failed on single-shot: {failed_listed}"
ok("jobs.list('single-shot', status='failed') finds it")

again = client.applications.jobs.retry(doomed.id)
assert again.id == doomed.id and again.status == "in_progress", f"retry answered {again}"
ok("jobs.retry(failed job) answers in_progress")
job = poll(doomed.id, "completed")
assert job.data is not None and "fails once" in job.data.suggestion, f"{job}"
assert job.error is None, f"the retried job kept its error: {job.error!r}"
ok("the retried job completed")

e = raises(writerai.BadRequestError, lambda: client.applications.jobs.retry(doomed.id), "retry completed")
assert e.status_code == 400
ok("jobs.retry(completed job) raises BadRequestError at once, not retried by the SDK")

raises(writerai.NotFoundError, lambda: client.applications.jobs.retry(str(uuid.uuid4())), "retry unknown")
raises(writerai.NotFoundError, lambda: client.applications.jobs.retrieve(str(uuid.uuid4())), "get unknown")
ok("jobs.retry / jobs.retrieve of an unknown job raise NotFoundError")

# --- validation and auth --------------------------------------------------------------------

e = raises(
    writerai.BadRequestError,
    lambda: client.applications.generate_content("echo", inputs=text_input("x") + text_input("y", name="Bogus")),
    "unknown input (sync)",
)
assert "Bogus" in str(e), f"the error should name the unknown input: {e}"
assert isinstance(e.body, dict) and "Bogus" in e.body["errors"][0]["description"], f"body: {e.body}"
ok("generate_content with an unknown input raises BadRequestError naming it")

e = raises(
    writerai.BadRequestError,
    lambda: client.applications.jobs.create("echo", inputs=text_input("x") + text_input("y", name="Bogus")),
    "unknown input (job)",
)
assert "Bogus" in str(e), f"the error should name the unknown input: {e}"
ok("jobs.create with an unknown input raises BadRequestError naming it")

e = raises(
    writerai.BadRequestError,
    lambda: client.applications.generate_content("echo", inputs=text_input("x") + [{"id": "Mode", "value": ["shout"]}]),
    "dropdown value outside its list",
)
assert "Mode" in str(e), f"the error should name the dropdown: {e}"
ok("a dropdown value outside its list raises BadRequestError naming the input")

total_after = client.applications.jobs.list("echo").total_count
assert total_after == 5, f"a rejected create must not store a job: totalCount {total_after}"
ok("rejected creates stored nothing")

e = raises(writerai.AuthenticationError, lambda: intruder.applications.list(), "wrong key (list)")
assert e.status_code == 401
raises(writerai.AuthenticationError, lambda: intruder.applications.jobs.retrieve(created[0]), "wrong key (job)")
ok("a wrong API key raises AuthenticationError")

# --- graphs ---------------------------------------------------------------------------------

graph_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
updated = client.applications.graphs.update("echo", graph_ids=graph_ids)
assert updated.graph_ids == graph_ids, f"update answered {updated.graph_ids}, sent {graph_ids}"
assert client.applications.graphs.list("echo").graph_ids == graph_ids, "graphs.list after update"
replaced = client.applications.graphs.update("echo", graph_ids=graph_ids[1:])
assert replaced.graph_ids == graph_ids[1:], f"update replaces the list: {replaced.graph_ids}"
assert client.applications.graphs.list("echo").graph_ids == graph_ids[1:], "graphs.list after replace"
ok("graphs.update then graphs.list returns them; a second update replaces the list")

raises(
    writerai.BadRequestError,
    lambda: client.applications.graphs.update("echo", graph_ids=["not-a-uuid"]),
    "graph id not a uuid",
)
ok("graphs.update with a non-UUID raises BadRequestError")

# --- files ----------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "files"


def wait_processed(file_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = client.files.retrieve(file_id)
        if f.status != "in_progress":
            return f
        time.sleep(0.05)
    raise AssertionError(f"file {file_id} still in progress after {timeout} s")


pdf_bytes = (FIXTURES / "report.pdf").read_bytes()
uploaded = {}
for disposition, name in [
    ("attachment; filename=report.pdf", "report.pdf"),
    ('attachment; filename="Q3 report.pdf"', "Q3 report.pdf"),
    ("attachment; filename*=utf-8''Q3%20r%C3%A9sum%C3%A9.pdf", "Q3 résumé.pdf"),
]:
    # The SDK sends Content-Type: text/plain whatever is passed; the type comes from the bytes.
    f = client.files.upload(content=pdf_bytes, content_disposition=disposition, content_type="application/pdf")
    assert f.name == name, f"{disposition}: named {f.name!r}"
    assert f.status in ("in_progress", "completed"), f.status
    uploaded[name] = f.id
ok("files.upload names the file from each Content-Disposition form")

done = wait_processed(uploaded["report.pdf"])
assert done.status == "completed", done
assert done.type == "pdf", f"type from the bytes: {done}"  # our added field
ok("files.retrieve: a PDF sent as text/plain is processed as a PDF")

graph = str(uuid.uuid4())
in_graph = client.files.upload(
    content=(FIXTURES / "dot.png").read_bytes(),
    content_disposition="attachment; filename=dot.png",
    content_type="image/png",
    graph_id=graph,
)
legacy = client.files.upload(
    content=(FIXTURES / "legacy.doc").read_bytes(),
    content_disposition="attachment; filename=legacy.doc",
    content_type="application/msword",
)
for file_id in [*uploaded.values(), in_graph.id, legacy.id]:
    wait_processed(file_id)
assert client.files.retrieve(in_graph.id).graph_ids == [graph], "graph association"
assert client.files.retrieve(legacy.id).status == "failed", "a .doc cannot be read"
ok("files.upload with graph_id; an unreadable type ends failed")

everything = [f.id for f in client.files.list(limit=2)]  # auto-paginates with after=<last id>
expected = [legacy.id, in_graph.id, *reversed(list(uploaded.values()))]
assert everything == expected, f"list, newest first, two a page: {everything} != {expected}"
oldest_first = [f.id for f in client.files.list(order="asc", limit=100)]
assert oldest_first == list(reversed(expected)), f"order=asc: {oldest_first}"
page = client.files.list(limit=2, before=expected[2])
assert [f.id for f in page.data] == expected[:2], f"before: {page.data}"
assert [f.id for f in client.files.list(status="failed")] == [legacy.id], "status filter"
assert [f.id for f in client.files.list(file_types="png,doc")] == [legacy.id, in_graph.id], "file_types filter"
assert [f.id for f in client.files.list(graph_id=graph)] == [in_graph.id], "graph_id filter"
ok("files.list pages forward and back and filters by status, file_types and graph_id")

downloaded = client.files.download(uploaded["Q3 report.pdf"])
assert downloaded.read() == pdf_bytes, "download gives the uploaded bytes"
assert downloaded.headers["content-type"] == "application/pdf", downloaded.headers["content-type"]
ok("files.download gives the bytes back with the file's MIME type")

retried = client.files.retry(file_ids=[legacy.id])
assert retried.success is True, retried
assert wait_processed(legacy.id).status == "failed"
ok("files.retry processes a failed file again")

job = client.applications.jobs.create(
    "uploads",
    inputs=[{"id": "Contract", "value": [uploaded["report.pdf"]]}, {"id": "Picture", "value": [in_graph.id]}],
)
finished = poll(job.id, "completed")
assert "Quarterly revenue grew" in finished.data.suggestion, finished.data.suggestion
ok("a job with a file input and a media input sees the PDF's text")

e = raises(
    writerai.BadRequestError,
    lambda: client.applications.jobs.create("uploads", inputs=[{"id": "Contract", "value": [legacy.id]}]),
    "a failed file as input",
)
assert "Contract" in str(e), e
ok("a job naming a failed file raises BadRequestError naming the input")

deleted = client.files.delete(uploaded["report.pdf"])
assert deleted.id == uploaded["report.pdf"] and deleted.deleted is True, deleted
raises(writerai.NotFoundError, lambda: client.files.retrieve(uploaded["report.pdf"]), "retrieve after delete")
raises(writerai.NotFoundError, lambda: other_org.files.retrieve(in_graph.id), "another organisation's file")
ok("files.delete, then retrieve raises NotFoundError; another organisation gets NotFoundError")

# --- applications as data: each organisation lists its own plus the provisioned ones --------


def deploy(sdk: writerai.Writer, app_id: str, status: str = "deployed") -> None:
    """Creates an application of `sdk`'s organisation over our route, with the SDK's raw post."""
    made = sdk.post(
        "/v1/scriptorium/applications",
        cast_to=object,
        body={
            "id": app_id,
            "name": app_id,
            "status": status,
            "prompt": "Hello {{ inputs['Who'][0] }}",
            "inputs": [{"name": "Who", "input_type": "text", "required": True}],
        },
    )
    assert made["id"] == app_id and made["version"] == 1, made


ours = [f"ours-{i}" for i in range(3)]
theirs = [f"theirs-{i}" for i in range(2)]
for app_id in ours:
    deploy(client, app_id)
deploy(client, "ours-draft", status="draft")
for app_id in theirs:
    deploy(other_org, app_id)

for sdk, own in ((client, ours), (other_org, theirs)):
    listed = [app.id for app in sdk.applications.list(limit=2)]
    want = own[::-1] + DEPLOYED_ASC[::-1]
    assert listed == want, f"newest first, own then provisioned, no draft: want {want}, got {listed}"
    pages = list(sdk.applications.list(limit=2).iter_pages())
    assert [p.has_more for p in pages] == [True] * (len(pages) - 1) + [False], pages
    assert len(pages) == (len(want) + 1) // 2, f"{len(want)} apps by 2 took {len(pages)} pages"
    asc = [app.id for app in sdk.applications.list(limit=2, order="asc")]
    assert asc == want[::-1], f"order=asc: want {want[::-1]}, got {asc}"
    assert sdk.applications.retrieve(own[0]).id == own[0]
ok("applications.list (cursor pages of 2, both orders) shows each organisation its own plus the provisioned ones")

raises(writerai.NotFoundError, lambda: other_org.applications.retrieve(ours[0]), "another org's application")
raises(writerai.NotFoundError, lambda: client.applications.retrieve(theirs[0]), "another org's application")
raises(writerai.NotFoundError, lambda: client.applications.retrieve("ours-draft"), "a draft of our own")
ok("applications.retrieve of another organisation's application, or of a draft, raises NotFoundError")

# --- batches (our routes) through the SDK's raw post and get; the items as Writer jobs ------

batch = client.post(
    "/v1/applications/echo/batches",
    cast_to=object,
    body={
        "items": [
            {"custom_id": "a", "inputs": text_input("first")},
            {"custom_id": "b", "inputs": text_input("second")},
            {"custom_id": "bad", "inputs": []},
        ],
        "metadata": {"from": "sdk"},
    },
)
want = {"total": 3, "in_progress": 2, "completed": 0, "failed": 1, "cancelled": 0}
assert batch["counts"] == want, batch
assert [e["custom_id"] for e in batch["errors"]] == ["bad"], batch
deadline = time.time() + 20
while (batch := client.get(f"/v1/applications/batches/{batch['id']}", cast_to=object))["status"] != "completed":
    assert time.time() < deadline, f"batch not completed within 20 s: {batch}"
    time.sleep(0.05)
assert batch["counts"]["completed"] == 2 and batch["counts"]["failed"] == 1, batch
assert batch["completed_at"] and batch["metadata"] == {"from": "sdk"}, batch
listed = client.get("/v1/applications/echo/batches", cast_to=object, options={"params": {"status": "completed"}})
assert listed["result"][0]["id"] == batch["id"] and listed["pagination"]["offset"] == 0, listed
items = {
    j.to_dict()["custom_id"]: j
    for j in client.applications.jobs.list("echo", limit=100)
    if j.to_dict().get("batch_id") == batch["id"]
}
assert sorted(items) == ["a", "b", "bad"], items
assert items["a"].status == "completed" and items["a"].data.suggestion == "[mock] first", items["a"]
assert items["bad"].status == "failed" and "Text" in (items["bad"].error or ""), items["bad"]
ok("a batch created with the raw post completes; its items are Writer jobs with batch_id and custom_id")

raises(
    writerai.BadRequestError,
    lambda: client.post(
        "/v1/applications/echo/batches",
        cast_to=object,
        body={"items": [{"custom_id": "x", "inputs": text_input("1")}, {"custom_id": "x", "inputs": text_input("2")}]},
    ),
    "a repeated custom_id",
)
raises(writerai.NotFoundError, lambda: other_org.get(f"/v1/applications/batches/{batch['id']}", cast_to=object), "another org's batch")
ok("a repeated custom_id raises BadRequestError; another organisation's batch raises NotFoundError")

# --- no call was retried by the SDK ---------------------------------------------------------

retried = [s for s in SENT if s[2] != "0"]
assert not retried, f"the SDK retried these requests (a 408/409/429/5xx answer?): {retried}"
ok(f"{len(SENT)} requests sent, none retried by the SDK")

print("SDK OK", flush=True)
sys.exit(0)
