"""The Python client SDK of the LootBox S2S API, for operator backends.

::

    from lootbox.client import LootboxClient, ReelPick, WalletRefusedError

    with LootboxClient(API_URL, key_id=KEY_ID, secret=SECRET) as client:
        bought = client.purchase("u_8431", "act-1", [ReelPick(0, box_version_id)])
        cashed = client.cashout("u_8431", bought.won_items[0].inventory_item_id, "USD")

It depends only on the standard library, ``requests`` and ``lootbox.signing`` (the HMAC
envelope the service verifies with), so it can be vendored: copy ``lootbox/signing.py``
and ``lootbox/client/`` keeping the package layout.
"""

from lootbox.client._version import __version__
from lootbox.client.client import (
    USER_AGENT,
    LootboxClient,
    default_cancel_key,
    default_cashout_key,
    default_open_key,
)
from lootbox.client.errors import (
    AuthenticationError,
    BusinessRuleError,
    ConflictError,
    IdempotencyError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    LootboxApiError,
    LootboxClientError,
    NotFoundError,
    ServerError,
    TransportError,
    UnavailableError,
    UnexpectedResponseError,
    ValidationError,
    WalletRefusedError,
)
from lootbox.client.models import (
    BoxDetail,
    BoxList,
    BoxPrize,
    BoxSummary,
    BoxVersionInfo,
    CancelResult,
    CashoutResult,
    Health,
    HistoryEntry,
    HistoryPage,
    InventoryItem,
    InventoryPage,
    PageCursor,
    Pagination,
    Prize,
    Reel,
    ReelPick,
    Round,
    RoundResult,
    WonItem,
)
from lootbox.client.retry import RetryPolicy

__all__ = [
    "USER_AGENT",
    "AuthenticationError",
    "BoxDetail",
    "BoxList",
    "BoxPrize",
    "BoxSummary",
    "BoxVersionInfo",
    "BusinessRuleError",
    "CancelResult",
    "CashoutResult",
    "ConflictError",
    "Health",
    "HistoryEntry",
    "HistoryPage",
    "IdempotencyError",
    "IdempotencyKeyInUseError",
    "IdempotencyKeyReusedError",
    "InventoryItem",
    "InventoryPage",
    "LootboxApiError",
    "LootboxClient",
    "LootboxClientError",
    "NotFoundError",
    "PageCursor",
    "Pagination",
    "Prize",
    "Reel",
    "ReelPick",
    "RetryPolicy",
    "Round",
    "RoundResult",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "UnexpectedResponseError",
    "ValidationError",
    "WalletRefusedError",
    "WonItem",
    "__version__",
    "default_cancel_key",
    "default_cashout_key",
    "default_open_key",
]
