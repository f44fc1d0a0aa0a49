"""Entries and transfers cannot be changed or removed, even by SQL bypassing the ORM."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from banking.models import Account, Entry, Transfer

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


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("INSERT INTO banking_entry (transfer_id, account_id, amount) "
         "VALUES (%(transfer)s, %(account)s, -1), (%(transfer)s, %(missing)s, 1)",
         "banking_entry_account_id: account 1000000000000 does not exist"),
        ("INSERT INTO banking_entry (transfer_id, account_id, amount) "
         "VALUES (%(missing)s, %(account)s, 1), (%(missing)s, %(account)s, -1)",
         "banking_entry_transfer_id: transfer 1000000000000 does not exist"),
    ],
    ids=["unknown-account", "unknown-transfer"],
)
def test_an_entry_must_refer_to_an_existing_transfer_and_account(posted, sql, refused):
    count = Entry.objects.count()
    args = {"transfer": posted.transfer_id, "account": posted.account_id, "missing": 10**12}
    with (
        pytest.raises(IntegrityError, match=refused),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, args)
    assert Entry.objects.count() == count


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("DELETE FROM banking_account WHERE id = %s", "Cannot delete rows"),
        ("UPDATE banking_account SET id = id + 1000000 WHERE id = %s", "Cannot update rows"),
    ],
    ids=["delete", "renumber"],
)
def test_an_account_is_neither_deleted_nor_renumbered(posted, sql, refused):
    with (
        pytest.raises(DatabaseError, match=refused),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [posted.account_id])
    assert Account.objects.filter(pk=posted.account_id).exists()
    assert Entry.objects.filter(account_id=posted.account_id).exists()


def test_an_accounts_balance_still_changes(posted):
    """The renumbering guard refuses only a change of id."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE banking_account SET balance = balance WHERE id = %s",
                       [posted.account_id])
        assert cursor.rowcount == 1
