"""Players' seed pairs for provably fair draws (lootbox.domain.fairness)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from lootbox.domain.fairness import server_seed_hash
from lootbox.domain.records import RoundDraw, SeedPair
from lootbox.persistence import statements as hot
from lootbox.persistence.models import RoundRow, SeedPairRow
from lootbox.persistence.repositories import _Repository

CURRENT = "current"
REVEALED = "revealed"


class SeedPairRepository(_Repository):
    def current(self, operator_id: int, player_external_id: str) -> SeedPair | None:
        row = self.session.scalar(
            select(SeedPairRow).where(
                SeedPairRow.operator_id == operator_id,
                SeedPairRow.player_external_id == player_external_id,
                SeedPairRow.state == CURRENT,
            )
        )
        return _pair(row) if row else None

    def add_current(
        self,
        operator_id: int,
        player_external_id: str,
        server_seed: str,
        client_seed: str,
        now: datetime,
    ) -> None:
        self._run(
            hot.ADD_CURRENT_SEED_PAIR,
            {
                "new_operator_id": operator_id,
                "new_player_external_id": player_external_id,
                "new_server_seed": server_seed,
                "new_server_seed_hash": server_seed_hash(server_seed),
                "new_client_seed": client_seed,
                "new_next_nonce": 0,
                "new_state": CURRENT,
                "new_created_at": now,
            },
        )

    def draw_round(
        self, round_id: int, operator_id: int, player_external_id: str
    ) -> RoundDraw | None:
        row = self._run(
            hot.DRAW_WITH_CURRENT_PAIR,
            {"round_id": round_id, "owner_id": operator_id, "player": player_external_id},
        ).first()
        return _draw(row) if row else None

    def of_round(self, round_id: int) -> RoundDraw | None:
        row = self.session.execute(
            select(
                SeedPairRow.id,
                SeedPairRow.server_seed,
                SeedPairRow.server_seed_hash,
                SeedPairRow.client_seed,
                RoundRow.nonce,
            )
            .join(RoundRow, RoundRow.seed_pair_id == SeedPairRow.id)
            .where(RoundRow.id == round_id)
        ).first()
        return _draw(row) if row else None

    def lock(
        self, operator_id: int, player_external_id: str, server_seed_hash: str
    ) -> SeedPair | None:
        row = self.session.scalar(
            select(SeedPairRow)
            .where(
                SeedPairRow.operator_id == operator_id,
                SeedPairRow.player_external_id == player_external_id,
                SeedPairRow.server_seed_hash == server_seed_hash,
            )
            .with_for_update()
        )
        return _pair(row) if row else None

    def reveal(self, pair_id: int, now: datetime) -> SeedPair:
        row = self.session.scalar(
            update(SeedPairRow)
            .where(SeedPairRow.id == pair_id, SeedPairRow.state == CURRENT)
            .values(state=REVEALED, revealed_at=now)
            .returning(SeedPairRow)
        )
        assert row is not None, "reveal a current pair, locked"
        return _pair(row)


def _pair(row: SeedPairRow) -> SeedPair:
    return SeedPair(
        id=row.id,
        server_seed=row.server_seed,
        server_seed_hash=row.server_seed_hash,
        client_seed=row.client_seed,
        next_nonce=row.next_nonce,
        revealed_at=row.revealed_at,
    )


def _draw(row: Any) -> RoundDraw:
    return RoundDraw(
        seed_pair_id=row.id,
        server_seed=row.server_seed,
        server_seed_hash=row.server_seed_hash,
        client_seed=row.client_seed,
        nonce=row.nonce,
    )
