"""Who may do what in an organization: the one table of roles, actions and API key
scopes. Every page, API view and admin action asks `role_allows`/`action_require`
(directly or through `banking.api.permissions` and the storefront's decorator).

Owners do everything; admins everything but managing owners and deleting the
organization; billing moves money (top-ups, payouts, the payout account, loans and
financed purchases) and reads statements; developers run jobs, buy blocks from the
wallet, run nodes and deposits, register webhook endpoints and keep their own keys;
viewers read."""

from django.db.models import TextChoices

from banking.error_codes import AccessErrorCode
from banking.models import Membership
from core.errors import PermissionDenied

Role = Membership.Role


class Action(TextChoices):
    READ = "read", "read the organization's data"
    JOBS = "jobs", "submit and cancel jobs"
    BLOCKS = "blocks", "buy blocks paid from the wallet and sell them back"
    NODES = "nodes", "register and change nodes, deposit capacity"
    WEBHOOKS = "webhooks", "register and remove webhook endpoints"
    TOPUP = "topup", "top up the wallet"
    LOANS = "loans", "finance purchases, draw advances and prepay loans"
    PAYOUT_REQUEST = "payout_request", "request payouts"
    PAYOUT_ACCOUNT = "payout_account", "change the payout account"
    KEYS_OWN = "keys_own", "create and revoke their own API keys"
    KEYS_MANAGE = "keys_manage", "revoke anyone's API keys"
    MEMBERS_MANAGE = "members_manage", "invite, remove and change members"
    OWNERS_MANAGE = "owners_manage", "make, change and remove owners"
    SETTINGS = "settings", "change the organization's settings"
    AUDIT_READ = "audit_read", "read the audit trail"


_EVERYTHING = frozenset(Action)
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.OWNER: _EVERYTHING,
    Role.ADMIN: _EVERYTHING - {Action.OWNERS_MANAGE, Action.AUDIT_READ},
    Role.BILLING: frozenset(
        {Action.READ, Action.TOPUP, Action.LOANS, Action.PAYOUT_REQUEST,
         Action.PAYOUT_ACCOUNT, Action.KEYS_OWN}
    ),
    Role.DEVELOPER: frozenset(
        {Action.READ, Action.JOBS, Action.BLOCKS, Action.NODES, Action.WEBHOOKS,
         Action.KEYS_OWN}
    ),
    Role.VIEWER: frozenset({Action.READ}),
}

# The API key scope an action needs. Managing keys, members and settings is done by
# people in the storefront, never by a key.
ACTION_SCOPE: dict[Action, str] = {
    Action.READ: "read",
    Action.JOBS: "jobs",
    Action.BLOCKS: "blocks",
    Action.NODES: "provider",
    # Endpoints are told of jobs' ends (and a low wallet) by the integration that submits
    # the jobs: its `jobs` key registers them, so no key needs a scope of its own for it.
    Action.WEBHOOKS: "jobs",
    Action.TOPUP: "billing",
    Action.LOANS: "billing",
    Action.PAYOUT_REQUEST: "payouts",
    Action.PAYOUT_ACCOUNT: "payouts",
}

# Actions that move money out of the organization or bind it to repay: those who may do
# them need a second factor once the organization has a payout account.
MONEY_MOVING = frozenset({Action.LOANS, Action.PAYOUT_REQUEST, Action.PAYOUT_ACCOUNT})


def role_allows(role: str, action: Action) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())


def role_scopes(role: str) -> frozenset[str]:
    """The widest scopes a key created by someone of `role` may carry."""
    return frozenset(
        scope for action, scope in ACTION_SCOPE.items() if role_allows(role, action)
    )


def forbidden_role(role: str, action: Action) -> PermissionDenied:
    return PermissionDenied(
        f"Your role ({role}) may not {action.label}.",
        code=AccessErrorCode.FORBIDDEN_ROLE,
    )


def action_require(*, role: str, action: Action) -> None:
    if not role_allows(role, action):
        raise forbidden_role(role, action)
