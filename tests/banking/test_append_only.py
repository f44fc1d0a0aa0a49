"""Entries and transfers cannot be changed or removed, even by SQL bypassing the ORM."""

import pytest
from django.db import DatabaseError, connection, transaction

from banking.models import Entry, Transfer

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the triggers are PostgreSQL's"
)


@pytest.fixture
def posted(make_org):
    make_org(tokens=100)
    return Entry.objects.order_by("id").last()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE banking_entry SET amount = amount + 1 WHERE id = %s",
        "DELETE FROM banking_entry WHERE id = %s",
    ],
)
def test_an_entry_cannot_be_updated_or_deleted(posted, sql):
    with (
        pytest.raises(DatabaseError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [posted.pk])
    assert Entry.objects.get(pk=posted.pk).amount == posted.amount


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE banking_transfer SET memo = 'edited' WHERE id = %s",
        "DELETE FROM banking_transfer WHERE id = %s",
    ],
)
def test_a_transfer_cannot_be_updated_or_deleted(posted, sql):
    with (
        pytest.raises(DatabaseError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [posted.transfer_id])
    assert Transfer.objects.get(pk=posted.transfer_id).memo == "test funds"
