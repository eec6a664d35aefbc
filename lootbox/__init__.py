"""LootBox S2S money service."""
