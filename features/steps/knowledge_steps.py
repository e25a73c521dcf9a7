"""Steps of an operator feeding a tenant's documents and of an end user searching and asking."""

from __future__ import annotations

from behave import given, then, when
from behave.runner import Context
from cli import agent_platform, json_out, succeeded


def tenant_dir(context: Context, tenant: str):
    path = context.workdir / "sources" / tenant
    path.mkdir(parents=True, exist_ok=True)
    return path


@given('the tenant "{tenant}" has these documents')
def documents(context: Context, tenant: str) -> None:
    folder = tenant_dir(context, tenant)
    for row in context.table:
        text = row["text"].replace("\\n", "\n")  # a table cell is one line; \n breaks it
        (folder / row["file"]).write_text(text, encoding="utf-8")


@given('a binary file "{name}" lands in the folder of tenant "{tenant}"')
def binary_file(context: Context, name: str, tenant: str) -> None:
    (tenant_dir(context, tenant) / name).write_bytes(b"%PDF\x00\x00\x01\x02 not text at all\x00")


@given('the operator has ingested the documents of tenant "{tenant}"')
@when('the operator ingests the documents of tenant "{tenant}"')
def ingest(context: Context, tenant: str) -> None:
    context.ingest = json_out(
        agent_platform("ingest", "--tenant", tenant, tenant_dir(context, tenant), "--json")
    )


@then("{seen:d} documents were seen and {chunks:d} chunks are indexed")
def ingest_counts(context: Context, seen: int, chunks: int) -> None:
    assert context.ingest["documents_seen"] == seen, context.ingest
    assert context.ingest["chunks_total"] == chunks, context.ingest


@then("no document was skipped")
def nothing_skipped(context: Context) -> None:
    assert context.ingest["documents_skipped"] == [], context.ingest


@then('"{name}" was skipped because it is "{reason}"')
def skipped(context: Context, name: str, reason: str) -> None:
    assert {"path": name, "reason": reason} in context.ingest["documents_skipped"], context.ingest


@then("no indexed chunk was deleted or embedded again")
def nothing_lost(context: Context) -> None:
    assert context.ingest["chunks_deleted"] == 0, context.ingest
    assert context.ingest["chunks_embedded"] == 0, context.ingest


@when('an end user searches tenant "{tenant}" for "{query}"')
def search(context: Context, tenant: str, query: str) -> None:
    context.search = json_out(agent_platform("search", "--tenant", tenant, "--json", query))


@then('the best hit comes from "{source}"')
def best_hit(context: Context, source: str) -> None:
    hits = context.search["hits"]
    assert hits and hits[0]["source"] == source, hits
    assert 0.0 <= hits[0]["score"] <= 1.0


@when('end user "{user}" asks tenant "{tenant}" "{question}"')
def ask(context: Context, user: str, tenant: str, question: str) -> None:
    context.answer = succeeded(
        agent_platform("run", "--tenant", tenant, "--user", user, question)
    ).stdout


@then('the answer says "{text}"')
def answer_says(context: Context, text: str) -> None:
    assert text in context.answer, context.answer


@then('the answer cites "{source}" as [{number:d}]')
def answer_cites(context: Context, source: str, number: int) -> None:
    assert f"[{number}] {source}" in context.answer, context.answer
