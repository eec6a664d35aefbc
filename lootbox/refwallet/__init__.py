"""The reference wallet: the operator side of the wallet RPC (contract section 6).

A small, readable model of what an operator's wallet must do, used by demos, by tests and
by operators writing their own. ``ledger`` holds the rules (pure Python), ``app`` the HTTP
side (``create_wallet_app``), ``server`` the in-process runner (``serve_wallet``) and
``__main__`` the stand-alone process (``python -m lootbox.refwallet``).
"""

from __future__ import annotations

from lootbox.refwallet.app import create_wallet_app, operator_secrets, wallet_state
from lootbox.refwallet.ledger import Ledger
from lootbox.refwallet.server import RunningWallet, make_wallet_server, serve_wallet

__all__ = [
    "Ledger",
    "RunningWallet",
    "create_wallet_app",
    "make_wallet_server",
    "operator_secrets",
    "serve_wallet",
    "wallet_state",
]
