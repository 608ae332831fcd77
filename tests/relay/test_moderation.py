"""Moderation decisions: once, race-safe, forged data decides nothing, cards follow."""

from __future__ import annotations

import threading

import pytest

from relay.moderation import (
    Actor,
    Press,
    decide,
    enqueue_item_cards,
    parse_callback,
    set_trust,
    suspend,
)
from relay.settings import Settings
from storage import outbox, people
from storage.engine import Database
from storage.items import insert_items
from storage.sources import NewBusiness, create_business, get_business
from storage.tables import ItemRow
from storage.values import BusinessStatus, DeliveryState, ItemState
from tests.support.builders import T0, item_row, relay_settings

ALICE, BOB = Actor(11, "Alice"), Actor(12, "Bob")


@pytest.fixture
def settings() -> Settings:
    return relay_settings()


def business_with_items(
    db: Database, states: list[ItemState], status: BusinessStatus = BusinessStatus.ACTIVE
) -> tuple[int, list[int]]:
    with db.write() as s:
        for actor in (ALICE, BOB):
            people.add_moderator(s, actor.id, "moderator", None, T0)
        b = create_business(s, NewBusiness(name="Fleurs Lila", owner_id=77, status=status), T0)
        ids = insert_items(
            s,
            [
                item_row(
                    b.id,
                    f"i{n}",
                    T0,
                    title=f"Bouquet {n}",
                    link=f"https://l.example/{n}",
                    summary="Roses",
                    published=T0,
                    state=state.value,
                )
                for n, state in enumerate(states)
            ],
        )
    return b.id, ids


def state_of(db: Database, item_id: int) -> str:
    with db.read() as s:
        row = s.get(ItemRow, item_id)
        assert row is not None
        return row.state


@pytest.mark.parametrize(
    "data", ["m:i:a:", "m:i:x:1", "m:z:a:1", "i:a:1", "m:i:a:1;drop", "m:i:a:" + "9" * 30, "", None]
)
def test_forged_or_foreign_callback_data_is_not_a_press(data: str | None) -> None:
    assert parse_callback(data) is None


def test_callback_data_round_trips_within_64_bytes() -> None:
    press = parse_callback("m:i:t:123456789012")
    assert press == Press("i", "t", 123456789012)


def test_two_moderators_pressing_at_once_make_one_decision(
    db: Database, settings: Settings
) -> None:
    _, (item_id,) = business_with_items(db, [ItemState.PENDING])
    outcomes = {}
    barrier = threading.Barrier(2)

    def press(actor: Actor, action: str) -> None:
        barrier.wait()
        with db.write() as s:
            outcomes[actor.name] = decide(s, Press("i", action, item_id), actor, settings, T0)

    threads = [
        threading.Thread(target=press, args=(ALICE, "a")),
        threading.Thread(target=press, args=(BOB, "r")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, o in outcomes.items() if o.won]
    assert len(winners) == 1
    loser = outcomes["Bob" if winners == ["Alice"] else "Alice"]
    assert loser.decided_by_name == winners[0]
    assert state_of(db, item_id) == ("approved" if winners == ["Alice"] else "rejected")


def test_a_second_press_is_told_who_decided(db: Database, settings: Settings) -> None:
    _, (item_id,) = business_with_items(db, [ItemState.PENDING])
    with db.write() as s:
        first = decide(s, Press("i", "a", item_id), ALICE, settings, T0)
    with db.write() as s:
        second = decide(s, Press("i", "r", item_id), BOB, settings, T0)
    assert (first.won, second.won) == (True, False)
    assert (second.state, second.decided_by_name) == ("approved", "Alice")
    assert state_of(db, item_id) == "approved"


def test_a_press_on_a_missing_item_decides_nothing(db: Database, settings: Settings) -> None:
    with db.write() as s:
        outcome = decide(s, Press("i", "a", 424242), ALICE, settings, T0)
    assert not outcome.found


def test_approve_and_trust_approves_what_waits_and_what_comes(
    db: Database, settings: Settings
) -> None:
    business_id, ids = business_with_items(db, [ItemState.PENDING, ItemState.PENDING])
    with db.write() as s:
        decide(s, Press("i", "t", ids[0]), ALICE, settings, T0)
        business = get_business(s, business_id)
    assert business is not None
    assert business.trusted
    assert [state_of(db, i) for i in ids] == ["approved", "approved"]


def test_approving_a_business_sends_its_waiting_news_to_moderation(
    db: Database, settings: Settings
) -> None:
    business_id, ids = business_with_items(db, [ItemState.PENDING], BusinessStatus.PENDING)
    with db.write() as s:
        outcome = decide(s, Press("b", "a", business_id), ALICE, settings, T0)
        deliveries = outbox.deliveries_for(s)
    assert outcome.won
    assert outcome.state == "active"
    owner = [d for d in deliveries if d.chat_id == 77]
    assert len(owner) == 1
    assert "est approuvé" in owner[0].text
    cards = [d for d in deliveries if d.kind == "card"]
    assert sorted(d.chat_id for d in cards) == [ALICE.id, BOB.id]
    assert all(d.item_id == ids[0] for d in cards)


def test_decided_cards_are_edited_to_show_who_decided(db: Database, settings: Settings) -> None:
    _, (item_id,) = business_with_items(db, [ItemState.PENDING])
    with db.write() as s:
        enqueue_item_cards(s, [item_id], settings, T0)
        for n, card in enumerate(outbox.deliveries_for(s)):
            outbox.mark(s, card.id, DeliveryState.SENT, message_id=100 + n)
    with db.write() as s:
        decide(s, Press("i", "r", item_id), BOB, settings, T0)
        edits = [d for d in outbox.deliveries_for(s) if d.kind == "edit"]
    assert sorted(d.edit_message_id or 0 for d in edits) == [100, 101]
    assert all("Refusée par Bob" in d.text and "Bouquet 0" in d.text for d in edits)


@pytest.mark.parametrize("how", ["suspend", "reject registration"])
def test_a_suspended_business_has_nothing_left_waiting(
    db: Database, settings: Settings, how: str
) -> None:
    """Its pending and approved news is rejected (no later press, post or digest shares it),
    unsent cards are dropped; what was published stays published."""
    states = [ItemState.PENDING, ItemState.APPROVED, ItemState.PUBLISHED]
    status = BusinessStatus.ACTIVE if how == "suspend" else BusinessStatus.PENDING
    business_id, ids = business_with_items(db, states, status)
    with db.write() as s:
        if status is BusinessStatus.ACTIVE:
            enqueue_item_cards(s, [ids[0]], settings, T0)
        if how == "suspend":
            suspend(s, business_id, ALICE.id, T0)
        else:
            decide(s, Press("b", "r", business_id), ALICE, settings, T0)
        cards = [d for d in outbox.deliveries_for(s) if d.kind == "card" and d.item_id]
    assert [state_of(db, i) for i in ids] == ["rejected", "rejected", "published"]
    assert all(d.state is DeliveryState.FAILED for d in cards)
    with db.write() as s:
        late = decide(s, Press("i", "a", ids[0]), BOB, settings, T0)
    assert (late.won, late.state, late.decided_by) == (False, "rejected", ALICE.id)


def test_trusting_drops_the_unsent_cards_of_the_news_it_approves(
    db: Database, settings: Settings
) -> None:
    business_id, (item_id,) = business_with_items(db, [ItemState.PENDING])
    with db.write() as s:
        enqueue_item_cards(s, [item_id], settings, T0)
        set_trust(s, business_id, True, T0)
        cards = outbox.deliveries_for(s, item_id=item_id)
    assert state_of(db, item_id) == "approved"
    assert [d.state for d in cards] == [DeliveryState.FAILED, DeliveryState.FAILED]
