"""The posting service: the only code that writes transfers, entries and balances."""

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import IntegrityError, connection
from django.db.models import F
from django.utils import timezone

from banking.audit import audit_record
from banking.error_codes import BankingErrorCode
from banking.errors import IdempotencyConflict, InsufficientFunds
from banking.locks import LockedAccount, accounts_lock
from banking.models import Account, AuditAction, Entry, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.services.transactions import money_statement, money_transaction
from core.database import server_bound_cursor
from core.errors import Conflict, ErrorCode, InvalidInput, NotFound
from core.sql_names import column, column_name, columns, insert_into, table, value

MAX_KEY_LENGTH = 255
KNOWN_KINDS = frozenset(TransferKind.values)
# unique_violation (a key already posted) and foreign_key_violation (an unknown account):
# the fresh batch form hands these to the checked form.
FRESH_BATCH_REFUSALS = {"23505", "23503"}
NOT_REVERSIBLE_KINDS = {TransferKind.HOLD, TransferKind.CAPTURE, TransferKind.RELEASE}


_json_text = json.encoder.encode_basestring_ascii
# The columns a transfer is written with, in the order the batch form writes them.
_TRANSFER_FIELDS = ("id", "kind", "idempotency_key", "request_hash", "reference", "memo",
                    "reverses", "created_at")


@dataclass(frozen=True)
class Leg:
    account_id: int
    amount: int


@dataclass(frozen=True)
class TransferSpec:
    kind: str
    idempotency_key: str
    legs: tuple[Leg, ...]
    reference: str = ""
    memo: str = ""
    reverses_id: int | None = None

    def __post_init__(self) -> None:
        """A spec is valid once built: checked here, once, wherever it came from."""
        if self.kind not in KNOWN_KINDS:
            raise InvalidInput(f"Unknown transfer kind {self.kind!r}.",
                               fields={"kind": ["Unknown."]})
        if not self.idempotency_key or len(self.idempotency_key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                f"An idempotency key of 1 to {MAX_KEY_LENGTH} characters is required.",
                fields={"idempotency_key": ["Required, at most 255 characters."]},
            )
        if len(self.legs) < 2:
            raise InvalidInput("A transfer needs at least two entries.", code=ErrorCode.INVALID)
        for leg in self.legs:
            if isinstance(leg.amount, bool) or not isinstance(leg.amount, int) or leg.amount == 0:
                raise InvalidInput(
                    "Every entry's amount must be a non-zero whole number of tokens.",
                    fields={"amount": ["Must be a non-zero whole number."]},
                )
        if sum(leg.amount for leg in self.legs) != 0:
            raise InvalidInput(
                "The entries of a transfer must sum to zero.",
                code=BankingErrorCode.UNBALANCED_TRANSFER,
            )

    @cached_property
    def request_hash(self) -> str:
        """SHA-256 of the request's JSON, `json.dumps(body, sort_keys=True)` of
        {"kind", "legs": sorted [account, amount] pairs, "reference", "reverses"}, written
        out by hand (a batch hashes a thousand of them; the pairs %-formatted, the fastest): the
        same text, so the same hashes as the transfers already stored."""
        pairs = sorted([(leg.account_id, leg.amount) for leg in self.legs])
        legs = ", ".join(["[%d, %d]" % pair for pair in pairs])  # noqa: UP031
        reverses = "null" if self.reverses_id is None else str(int(self.reverses_id))
        body = (f'{{"kind": {_json_text(str(self.kind))}, "legs": [{legs}], '
                f'"reference": {_json_text(self.reference)}, "reverses": {reverses}}}')
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class BatchResult:
    transfer_ids: list[int] = field(default_factory=list)
    posted: int = 0
    replayed: int = 0


def new_idempotency_key(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


def require_positive_tokens(amount: object, name: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput(
            f"{name} must be a positive whole number of tokens.",
            fields={name: ["Must be a positive whole number."]},
        )
    return amount


def transfer_spec(
    *,
    kind: str,
    idempotency_key: str,
    legs: Iterable[tuple[int, int] | Leg],
    reference: str = "",
    memo: str = "",
    reverses_id: int | None = None,
) -> TransferSpec:
    built = tuple(leg if isinstance(leg, Leg) else Leg(*leg) for leg in legs)
    return TransferSpec(
        kind=kind,
        idempotency_key=idempotency_key,
        legs=built,
        reference=reference[:255],
        memo=memo[:500],
        reverses_id=reverses_id,
    )


def transfer_post(
    *,
    kind: str,
    idempotency_key: str,
    legs: Iterable[tuple[int, int] | Leg],
    reference: str = "",
    memo: str = "",
    reverses_id: int | None = None,
) -> Transfer:
    """Post one transfer. A repeated key with the same body returns the first transfer and
    posts nothing; with another body it raises `IdempotencyConflict`."""
    spec = transfer_spec(
        kind=kind,
        idempotency_key=idempotency_key,
        legs=legs,
        reference=reference,
        memo=memo,
        reverses_id=reverses_id,
    )
    return posting_engine(connection.vendor)(spec)


@money_transaction
def _post_one(spec: TransferSpec) -> Transfer:
    existing = _existing(spec)
    if existing is not None:
        return existing
    accounts = accounts_lock(leg.account_id for leg in spec.legs)
    deltas = _deltas([spec])
    _check_accounts(accounts, deltas)
    try:
        # A concurrent twin with the same key waited on the account locks above; the
        # insert skips a key that is already taken and the caller gets the first one.
        now = timezone.now()
        transfer_id = _insert_transfers([spec], now).get(spec.idempotency_key)
    except IntegrityError as exc:
        if spec.reverses_id is not None:
            raise Conflict("That transfer has already been reversed.",
                           code=BankingErrorCode.ALREADY_REVERSED) from exc
        raise
    if transfer_id is None:
        raced = _existing(spec)
        assert raced is not None
        return raced
    _insert_entries([(transfer_id, leg.account_id, leg.amount) for leg in spec.legs])
    _apply_deltas(deltas)
    return Transfer(
        id=transfer_id,
        kind=spec.kind,
        idempotency_key=spec.idempotency_key,
        request_hash=spec.request_hash,
        reference=spec.reference,
        memo=spec.memo,
        reverses_id=spec.reverses_id,
        created_at=now,
    )


@money_statement
def _post_one_in_database(spec: TransferSpec) -> Transfer:
    """The same steps as the Python form (_post_one), in one statement and one round trip
    (banking_ledger_post, banking/sql/ledger_post.sql), prepared once per connection."""
    now = timezone.now()
    try:
        with server_bound_cursor() as cursor:
            cursor.execute(
                "SELECT transfer_id, outcome, detail FROM banking_ledger_post("
                "%s, %s, %s, %s, %s, %s, %s::bigint[], %s::bigint[], %s)",
                # The two arrays as array literals: psycopg's list adapter costs more than
                # the posting's other parameters together (whole numbers only, so safe).
                [str(spec.kind), spec.idempotency_key, spec.request_hash, spec.reference,
                 spec.memo, spec.reverses_id,
                 "{%s}" % ",".join([str(leg.account_id) for leg in spec.legs]),  # noqa: UP031
                 "{%s}" % ",".join([str(leg.amount) for leg in spec.legs]),  # noqa: UP031
                 now],
                prepare=True,
            )
            row = cursor.fetchone()
            assert row is not None
            transfer_id, outcome, raw_detail = row
    except IntegrityError as exc:
        if spec.reverses_id is not None:
            raise Conflict("That transfer has already been reversed.",
                           code=BankingErrorCode.ALREADY_REVERSED) from exc
        raise
    # Django's adapters leave jsonb results as text.
    detail = json.loads(raw_detail) if isinstance(raw_detail, str) else raw_detail
    if outcome == "posted":
        return Transfer(id=transfer_id, kind=spec.kind, idempotency_key=spec.idempotency_key,
                        request_hash=spec.request_hash, reference=spec.reference,
                        memo=spec.memo, reverses_id=spec.reverses_id, created_at=now)
    if outcome == "replayed":
        return Transfer.objects.get(pk=transfer_id)
    if outcome == "conflict":
        raise IdempotencyConflict(
            "This idempotency key was already used for a different request.",
            fields={"idempotency_key": [spec.idempotency_key]},
        )
    if outcome == "unknown_account":
        raise NotFound(f"Unknown account {detail['account']}.",
                       fields={"account": [detail["account"]]})
    raise InsufficientFunds(
        f"Not enough tokens in {detail['account']}: {detail['available']} available, "
        f"{detail['needed']} needed.",
        fields=detail,
    )


PostingEngine = Callable[[TransferSpec], Transfer]
# The single-transfer engine by database vendor: PostgreSQL has the posting function; any
# other database takes the Python form, the reference both keep to.
_ENGINES: dict[str, PostingEngine] = {"postgresql": _post_one_in_database}
REFERENCE_ENGINE: PostingEngine = _post_one


def posting_engine(vendor: str) -> PostingEngine:
    """The one place a posting engine is chosen: every single transfer and reversal is
    posted by `posting_engine(connection.vendor)(spec)`."""
    return _ENGINES.get(vendor, REFERENCE_ENGINE)


def _existing(spec: TransferSpec) -> Transfer | None:
    rows = Transfer.objects.raw(
        f"SELECT * FROM {table(Transfer)} WHERE {column(Transfer, 'idempotency_key')} = %s",
        [spec.idempotency_key],
    )
    found = next(iter(rows), None)
    if found is None:
        return None
    if found.request_hash != spec.request_hash:
        raise IdempotencyConflict(
            "This idempotency key was already used for a different request.",
            fields={"idempotency_key": [spec.idempotency_key]},
        )
    return found


def _deltas(specs: Iterable[TransferSpec]) -> dict[int, int]:
    deltas: dict[int, int] = defaultdict(int)
    for spec in specs:
        for leg in spec.legs:
            deltas[leg.account_id] += leg.amount
    return deltas


def _check_accounts(accounts: dict[int, LockedAccount], deltas: dict[int, int]) -> None:
    missing = sorted(set(deltas) - set(accounts))
    if missing:
        raise NotFound(f"Unknown account {missing[0]}.", fields={"account": missing})
    for account_id, delta in deltas.items():
        account = accounts[account_id]
        if account.floor is not None and delta < 0 and account.balance + delta < account.floor:
            available = account.balance - account.floor
            raise InsufficientFunds(
                f"Not enough tokens in {account.purpose}: {available} available, "
                f"{-delta} needed.",
                fields={
                    "account": account.purpose,
                    "available": available,
                    "needed": -delta,
                },
            )


_BALANCE = column(Account, "balance")
_APPLY_DELTAS = (
    f"UPDATE {table(Account)} AS a SET {_BALANCE} = a.{_BALANCE} + v.delta, "
    f"{column(Account, 'updated_at')} = %s "
    f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, delta) "
    f"WHERE a.{column(Account, 'id')} = v.id"
)


def _apply_deltas(deltas: dict[int, int]) -> None:
    changed = {k: v for k, v in deltas.items() if v != 0}
    if not changed:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _APPLY_DELTAS,
                [now, list(changed.keys()), list(changed.values())],
            )
        return
    for account_id, delta in changed.items():
        Account.objects.filter(pk=account_id).update(
            balance=F("balance") + delta, updated_at=now
        )


def transfers_post_batch(specs: Sequence[TransferSpec]) -> BatchResult:
    """Post many transfers in one transaction with one balance update per account.

    Transfers whose key was already posted (same body) are skipped; the whole batch fails
    if any transfer would take an account below its floor."""
    keys = [s.idempotency_key for s in specs]
    if len(set(keys)) != len(keys):
        raise InvalidInput("A batch must not repeat an idempotency key.")
    return _post_batch(specs)


class _NotFresh(Exception):
    """The batch is not the usual one (a key already taken, an unknown account): post it
    by the checked form, which explains what is wrong or replays what was posted."""


def _post_batch(specs: Sequence[TransferSpec]) -> BatchResult:
    if not specs:
        return BatchResult()
    if connection.vendor == "postgresql":
        try:
            return _post_fresh_batch(specs)
        except _NotFresh:
            pass
    return _post_checked_batch(specs)


@money_transaction
def _post_fresh_batch(specs: Sequence[TransferSpec]) -> BatchResult:
    """The batch as it nearly always comes, none of its keys posted before: its rows are
    written first with no lock held, and its accounts locked only for the floor check and
    the balance update at the end, so that concurrent batches into one hot account (all
    settlement credits platform revenue) overlap in everything but that last step. The
    unique index on keys is the idempotency check here: a taken key fails the COPY, and an
    unknown account fails the entries' COPY (their references are checked as they are
    written, migration 0012), before any lock is taken."""
    try:
        new_ids = _copy_transfers(specs, timezone.now())
        _insert_entries(
            [(new_ids[s.idempotency_key], leg.account_id, leg.amount)
             for s in specs for leg in s.legs]
        )
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) in FRESH_BATCH_REFUSALS:
            raise _NotFresh from exc
        raise
    deltas = _deltas(specs)
    _check_accounts(accounts_lock(deltas), deltas)
    _apply_deltas(deltas)
    return BatchResult(transfer_ids=[new_ids[s.idempotency_key] for s in specs],
                       posted=len(specs))


@money_transaction
def _post_checked_batch(specs: Sequence[TransferSpec]) -> BatchResult:
    """The batch with its accounts locked first and every key looked up: replays what was
    posted, refuses a key reused for another body, names an unknown account."""
    result = BatchResult()
    accounts = accounts_lock(leg.account_id for s in specs for leg in s.legs)
    by_key = _taken_keys([s.idempotency_key for s in specs])
    fresh: list[TransferSpec] = []
    for spec in specs:
        seen = by_key.get(spec.idempotency_key)
        if seen is None:
            fresh.append(spec)
            continue
        if seen["request_hash"] != spec.request_hash:
            raise IdempotencyConflict(
                "This idempotency key was already used for a different request.",
                fields={"idempotency_key": [spec.idempotency_key]},
            )
        result.replayed += 1
    deltas = _deltas(fresh)
    _check_accounts(accounts, deltas)
    if connection.vendor == "postgresql":
        try:
            new_ids = _copy_transfers(fresh, timezone.now())
        except IntegrityError as exc:
            raise IdempotencyConflict(
                "An idempotency key of this batch was taken meanwhile.") from exc
    else:
        new_ids = _insert_transfers(fresh, timezone.now())
    if len(new_ids) != len(fresh):
        # Only a concurrent batch reusing a key for another body gets here.
        raise IdempotencyConflict("An idempotency key of this batch was taken meanwhile.")
    _insert_entries(
        [(new_ids[s.idempotency_key], leg.account_id, leg.amount) for s in fresh for leg in s.legs]
    )
    _apply_deltas(deltas)
    result.posted = len(fresh)
    result.transfer_ids = [
        new_ids[s.idempotency_key] if s.idempotency_key in new_ids
        else by_key[s.idempotency_key]["id"]
        for s in specs
    ]
    return result


_KEY = column(Transfer, "idempotency_key")
_INSERT_TRANSFERS = (
    f"INSERT INTO {insert_into(Transfer, *_TRANSFER_FIELDS[1:])} "
    "SELECT k, i, h, r, m, v, %s FROM unnest("
    "%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], "
    "%s::bigint[]) AS t(k, i, h, r, m, v) "
    f"ON CONFLICT ({_KEY}) DO NOTHING RETURNING {_KEY}, {column(Transfer, 'id')}"
)


def _insert_transfers(specs: Sequence[TransferSpec], now: datetime) -> dict[str, int]:
    """Insert transfers; returns the ids of those inserted by idempotency key (a key
    already taken is skipped on PostgreSQL). One `INSERT ... SELECT FROM unnest(...)`
    statement on PostgreSQL, whatever the batch size."""
    if not specs:
        return {}
    if connection.vendor == "postgresql":
        with server_bound_cursor() as cursor:
            cursor.execute(
                _INSERT_TRANSFERS,
                [
                    now,
                    [str(s.kind) for s in specs],
                    [s.idempotency_key for s in specs],
                    [s.request_hash for s in specs],
                    [s.reference for s in specs],
                    [s.memo for s in specs],
                    [s.reverses_id for s in specs],
                ],
            )
            return {key: pk for key, pk in cursor.fetchall()}
    Transfer.objects.bulk_create(
        [
            Transfer(kind=s.kind, idempotency_key=s.idempotency_key, request_hash=s.request_hash,
                     reference=s.reference, memo=s.memo, reverses_id=s.reverses_id,
                     created_at=now)
            for s in specs
        ]
    )
    # SQLite does not return ids from a bulk insert.
    return dict(
        Transfer.objects.filter(idempotency_key__in=[s.idempotency_key for s in specs])
        .values_list("idempotency_key", "id")
    )


def _taken_keys(keys: list[str]) -> dict[str, dict[str, Any]]:
    """{key: {"id", "request_hash"}} of the transfers that already have one of `keys`."""
    if connection.vendor == "postgresql":
        with server_bound_cursor() as cursor:
            cursor.execute(
                f"SELECT {columns(Transfer, 'idempotency_key', 'id', 'request_hash')} "
                f"FROM {table(Transfer)} WHERE {_KEY} = ANY(%s::varchar[])", [keys],
            )
            rows = cursor.fetchall()
    else:
        rows = list(Transfer.objects.filter(idempotency_key__in=keys)
                    .values_list("idempotency_key", "id", "request_hash"))
    return {key: {"id": pk, "request_hash": digest} for key, pk, digest in rows}


_TRANSFER_IDS = (
    f"SELECT nextval(seq) FROM CAST(pg_get_serial_sequence("
    f"{value(Transfer._meta.db_table)}, {value(column_name(Transfer, 'id'))}) "
    "AS regclass) AS seq, generate_series(1, %s)"
)
_COPY_TRANSFERS = f"COPY {insert_into(Transfer, *_TRANSFER_FIELDS)} FROM STDIN"


def _copy_transfers(specs: Sequence[TransferSpec], now: datetime) -> dict[str, int]:
    """The batch's transfers by COPY, the fastest way into PostgreSQL, with ids drawn from
    the table's sequence first. A key already taken fails the whole COPY (IntegrityError)."""
    if not specs:
        return {}
    with server_bound_cursor() as cursor:
        cursor.execute(
            # The sequence is looked up once, in FROM: as nextval's argument it is looked
            # up per row, a share of the batch's time worth saving (docs/performance.md).
            _TRANSFER_IDS, [len(specs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(_COPY_TRANSFERS) as copy:
            for pk, spec in zip(ids, specs, strict=True):
                copy.write_row((pk, str(spec.kind), spec.idempotency_key,
                                spec.request_hash, spec.reference, spec.memo,
                                spec.reverses_id, now))
    return {spec.idempotency_key: pk for pk, spec in zip(ids, specs, strict=True)}


_COPY_ENTRIES = f"COPY {insert_into(Entry, 'transfer', 'account', 'amount')} FROM STDIN"


def _insert_entries(rows: Sequence[tuple[int, int, int]]) -> None:
    """Insert (transfer_id, account_id, amount) rows (by COPY on PostgreSQL)."""
    if connection.vendor == "postgresql":
        # Whole numbers only, so the COPY text is written out directly, in one piece,
        # rather than encoded row by row, and with %-formatting, quicker than f-strings
        # for it (bench.ledger's batch form; docs/performance.md).
        data = "".join(["%d\t%d\t%d\n" % row for row in rows])  # noqa: UP031
        with server_bound_cursor() as cursor, cursor.copy(_COPY_ENTRIES) as copy:
            copy.write(data)
        return
    Entry.objects.bulk_create(
        [Entry(transfer_id=t, account_id=a, amount=n) for t, a, n in rows], batch_size=2000
    )


def transfer_reverse(
    *, transfer_id: int, memo: str = "", idempotency_key: str | None = None
) -> Transfer:
    """Post the mirror image of a transfer. A transfer is reversed at most once; a
    reversal is never reversed; hold movements are undone through the hold services."""
    original = Transfer.objects.filter(pk=transfer_id).prefetch_related("entries").first()
    if original is None:
        raise NotFound(f"Transfer {transfer_id} does not exist.")
    if original.reverses_id is not None or original.kind == TransferKind.REVERSAL:
        raise InvalidInput(
            "A reversal cannot itself be reversed.", code=BankingErrorCode.REVERSAL_OF_REVERSAL
        )
    if original.kind in NOT_REVERSIBLE_KINDS:
        raise InvalidInput(
            "Hold movements are undone by releasing or capturing the hold, not by reversal.",
            code=BankingErrorCode.NOT_REVERSIBLE,
        )
    spec = transfer_spec(
        kind=TransferKind.REVERSAL,
        idempotency_key=idempotency_key or f"reversal:{original.pk}",
        legs=[(e.account_id, -e.amount) for e in original.entries.all()],
        reference=f"transfer:{original.pk}",
        memo=memo or f"Reversal of transfer #{original.pk}",
        reverses_id=original.pk,
    )
    if spec.idempotency_key != f"reversal:{original.pk}":
        # A caller key must not slip a second reversal past the one-per-transfer rule.
        already = Transfer.objects.filter(reverses_id=original.pk).first()
        if already is not None and already.idempotency_key != spec.idempotency_key:
            raise Conflict("That transfer has already been reversed.",
                           code=BankingErrorCode.ALREADY_REVERSED)
    reversal = posting_engine(connection.vendor)(spec)
    audit_record(action=AuditAction.TRANSFER_REVERSED, organization_id=None,
                 target=f"transfer:{original.pk}",
                 detail={"reversal_id": reversal.pk, "memo": spec.memo[:200]})
    return reversal


def system_account(purpose: str) -> Account:
    account, _ = Account.objects.get_or_create(organization=None, purpose=purpose)
    return account


def grant_post(
    *, organization_id: int, amount: int, reason: str, idempotency_key: str | None = None
) -> Transfer:
    """Credit promotional tokens to an organization's wallet."""
    from banking.selectors import organization_account

    require_positive_tokens(amount)
    if not reason.strip():
        raise InvalidInput("A grant needs a reason.", fields={"reason": ["Required."]})
    wallet = organization_account(organization_id, AccountPurpose.WALLET)
    promotions = system_account(AccountPurpose.PROMOTIONS)
    return transfer_post(
        kind=TransferKind.GRANT,
        idempotency_key=f"grant:{idempotency_key}" if idempotency_key
        else new_idempotency_key("grant"),
        legs=[(promotions.id, -amount), (wallet.id, amount)],
        reference=f"organization:{organization_id}",
        memo=reason,
    )
