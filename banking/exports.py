"""The statement as CSV: one column list and one row builder, shared by the API
(`GET wallet/transfers/?format=csv`) and the storefront's wallet page."""

import csv
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from banking.models import Entry

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
