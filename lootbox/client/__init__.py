"""The Python client SDK of the LootBox S2S API, for operator backends.

::

    from lootbox.client import LootboxClient, ReelPick, WalletRefusedError

    with LootboxClient(API_URL, key_id=KEY_ID, secret=SECRET) as client:
        bought = client.purchase("u_8431", "act-1", [ReelPick(0, box_version_id)])
        cashed = client.cashout("u_8431", bought.won_items[0].inventory_item_id, "USD")

Provably fair draws: ``get_fairness`` and ``rotate_seeds`` read and reveal a player's seed
pair, every round's ``fairness`` says what it was drawn with, and ``verify_draw`` with
``load_snapshot`` (the standalone verifier ``lootbox.fairness``, re-exported) redoes a draw::

    revealed = client.rotate_seeds("u_8431", bought.round.fairness.server_seed_hash).revealed
    draw = verify_draw(revealed.server_seed, revealed.client_seed, bought.round.fairness.nonce,
                       0, load_snapshot(f"{API_URL}/fairness/box-version/{version}/snapshot"))

It depends only on the standard library, ``requests``, ``lootbox.signing`` (the HMAC
envelope the service verifies with) and the verifier (``lootbox.fairness`` and
``lootbox.domain.fairness``, standard library only), so it can be vendored: copy
``lootbox/signing.py``, ``lootbox/client/``, ``lootbox/fairness/`` and
``lootbox/domain/__init__.py`` with ``lootbox/domain/fairness.py``, keeping the package
layout.
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
    Fairness,
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
    RevealedSeed,
    Round,
    RoundResult,
    SeedRotation,
    Seeds,
    WonItem,
)
from lootbox.client.retry import RetryPolicy
from lootbox.fairness import VerificationError, VerifiedDraw, load_snapshot, verify_draw

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
    "Fairness",
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
    "RevealedSeed",
    "Round",
    "RoundResult",
    "SeedRotation",
    "Seeds",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "UnexpectedResponseError",
    "ValidationError",
    "VerificationError",
    "VerifiedDraw",
    "WalletRefusedError",
    "WonItem",
    "__version__",
    "default_cancel_key",
    "default_cashout_key",
    "default_open_key",
    "load_snapshot",
    "verify_draw",
]
