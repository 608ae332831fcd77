"""The database layer on the configured backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.engine import Database
from storage.sources import (
    NewBusiness,
    SourceExistsError,
    claim_due_sources,
    create_business,
    create_source,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_timestamps_come_back_aware_utc(db: Database) -> None:
    with db.write() as s:
        business = create_business(s, NewBusiness(name="Fleurs", owner_id=1), NOW)
        source = create_source(s, business.id, "https://fleurs.example/feed", "rss", NOW)
    assert source.next_check_at == NOW
    assert source.next_check_at.tzinfo is not None


def test_same_url_twice_says_who_registered_it(db: Database) -> None:
    with db.write() as s:
        first = create_business(s, NewBusiness(name="Boulangerie Martin", owner_id=1), NOW)
        create_source(s, first.id, "https://martin.example/feed/", "rss", NOW)
    with db.write() as s:
        other = create_business(s, NewBusiness(name="Autre", owner_id=2), NOW)
        with pytest.raises(SourceExistsError) as err:
            create_source(s, other.id, "https://martin.example/feed/", "rss", NOW)
    assert err.value.business.name == "Boulangerie Martin"


def test_claimed_sources_are_not_claimed_again_until_the_lease_ends(db: Database) -> None:
    with db.write() as s:
        business = create_business(s, NewBusiness(name="B", owner_id=1), NOW)
        for n in range(5):
            create_source(s, business.id, f"https://b.example/{n}", "rss", NOW)
    first = claim_due_sources(db, NOW, limit=3, lease=timedelta(minutes=5))
    second = claim_due_sources(db, NOW, limit=3, lease=timedelta(minutes=5))
    assert len(first) == 3
    assert len(second) == 2
    assert not {s.id for s in first} & {s.id for s in second}
    assert claim_due_sources(db, NOW, limit=3, lease=timedelta(minutes=5)) == []
    later = claim_due_sources(db, NOW + timedelta(minutes=6), limit=10, lease=timedelta(minutes=5))
    assert len(later) == 5
