"""The statement as CSV: one column list and one row builder, shared by the API
(`GET wallet/transfers/?format=csv`) and the storefront's wallet page."""

import csv
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from banking.models import AuditEvent, Entry

STATEMENT_CSV_COLUMNS = [
    "entry_id", "transfer_id", "created_at", "kind", "account", "amount", "reference", "memo",
]


class _Echo:
    """A file-like object whose `write` hands the line back, for streaming."""

    def write(self, value: str) -> str:
        return value


def statement_csv_row(entry: Entry) -> list[object]:
    return [
        entry.id, entry.transfer_id, entry.transfer.created_at.isoformat(), entry.transfer.kind,
        entry.account.purpose, entry.amount, entry.transfer.reference, entry.transfer.memo,
    ]


def statement_csv_lines(entries: QuerySet[Entry] | Iterable[Entry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(STATEMENT_CSV_COLUMNS)
    rows = entries.iterator(chunk_size=2000) if isinstance(entries, QuerySet) else entries
    for entry in rows:
        yield writer.writerow(statement_csv_row(entry))


def statement_csv_response(
    entries: QuerySet[Entry], *, filename: str = "statement.csv"
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(statement_csv_lines(entries), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


AUDIT_CSV_COLUMNS = [
    "id", "created_at", "action", "organization_id", "actor_id", "actor", "target",
    "client_address", "request_id", "detail",
]


def _cell(value: object) -> object:
    # A spreadsheet runs a cell that starts with one of these as a formula: actors and
    # targets come from users, so such a cell is written as text.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_csv_response(
    events: QuerySet[AuditEvent], *, filename: str = "audit.csv"
) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(AUDIT_CSV_COLUMNS)
        for e in events.iterator(chunk_size=2000):
            yield writer.writerow([_cell(v) for v in (
                e.id, e.created_at.isoformat(), e.action, e.organization_id, e.actor_id,
                e.actor, e.target, e.client_address or "", e.request_id,
                json.dumps(e.detail, sort_keys=True),
            )])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
