"""The HTTP wallet client: the ``Wallet`` port over the contract's wallet RPC (section 6)."""

from lootbox.wallet.http import HttpWallet, build_session, classify

__all__ = ["HttpWallet", "build_session", "classify"]
