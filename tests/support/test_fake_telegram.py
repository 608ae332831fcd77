"""Tests of the fake Telegram server, through python-telegram-bot's own HTTP client.

They double as compatibility tests: they pin how PTB 22 encodes requests and which exception
each Bot API error becomes.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, RetryAfter, TimedOut
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.support.fake_telegram import (
    TOKEN,
    FakeTelegram,
    Limits,
    checked_markup,
    fake_telegram_fixture,
    visible_text,
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    # PTB 22 warns (an error here) on reading RetryAfter.retry_after unless opted in to timedelta.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    yield from fake_telegram_fixture()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    request = HTTPXRequest(read_timeout=0.3, write_timeout=0.3, connect_timeout=1.0)
    async with telegram.Bot(TOKEN, base_url=fake.base_url, request=request) as bot:
        yield bot


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data=data)]])


# --- the HTML reader, without HTTP -------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "visible"),
    [
        ("<b>Boulangerie</b> ouvre", "Boulangerie ouvre"),
        ('<a href="https://x.fr/?a=1&amp;b=2">lien</a>', "lien"),
        ("<strong><i>a</i></strong>", "a"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;ok&quot;", '1 < 2 && 3 > 2 "ok"'),
        ("&#233;t&#xE9;", "été"),
        ("AT&T", "AT&T"),
        ('<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>', "xy"),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ("<blockquote expandable>citation</blockquote>", "citation"),
    ],
)
def test_html_reader_keeps_visible_text(html: str, visible: str) -> None:
    assert visible_text(html, "HTML") == visible


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("a < b", "Unexpected end of name token at byte offset 2"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", 'Unexpected end tag "b"'),
        ("caf&eacute;", 'Unsupported HTML entity "&eacute;"'),
        ("&nbsp;", 'Unsupported HTML entity "&nbsp;"'),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("é<br/>", 'Unsupported start tag "br" at byte offset 2'),
    ],
)
def test_html_reader_rejects_what_telegram_rejects(html: str, reason: str) -> None:
    with pytest.raises(Exception, match="can't parse entities") as caught:
        visible_text(html, "HTML")
    assert reason in str(caught.value)


def test_html_is_only_parsed_in_html_mode() -> None:
    assert visible_text("<div>", None) == "<div>"


@pytest.mark.parametrize(
    ("data", "valid"), [("x" * 64, True), ("é" * 32, True), ("é" * 33, False), ("", False)]
)
def test_callback_data_is_limited_to_64_bytes(data: str, valid: bool) -> None:
    markup = {"inline_keyboard": [[{"text": "OK", "callback_data": data}]]}
    if valid:
        assert checked_markup(markup) == markup
    else:
        with pytest.raises(Exception, match="BUTTON_DATA_INVALID"):
            checked_markup(markup)


# --- through PTB's Bot -------------------------------------------------------------------------


async def test_get_me(bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.username == "solidarity_test_bot"
    assert me.can_join_groups


async def test_send_message_is_delivered_and_recorded(
    bot: telegram.Bot, fake: FakeTelegram
) -> None:
    first = await bot.send_message(42, "Bonjour", reply_markup=keyboard("like:1"))
    second = await bot.send_message(42, "Encore")
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.type == "private"
    [sent, _] = fake.sent(42)
    assert (sent.text, sent.reply_markup) == ("Bonjour", keyboard("like:1").to_dict())
    assert fake.calls_to("sendMessage")[0]["chat_id"] == 42


async def test_html_message_is_accepted(bot: telegram.Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(42, "<b>Nouveau</b> &amp; frais", parse_mode="HTML")
    assert message.text == "Nouveau & frais"
    assert fake.sent()[0].parse_mode == "HTML"


async def test_unknown_tag_cannot_be_parsed(bot: telegram.Bot, fake: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(42, "<div>x</div>", parse_mode="HTML")
    assert fake.sent() == []


@pytest.mark.parametrize(("length", "ok"), [(4096, True), (4097, False), (5000, False)])
async def test_text_is_limited_to_4096_visible_characters(
    bot: telegram.Bot, length: int, ok: bool
) -> None:
    text = "<b>" + "a" * length + "</b>"
    if ok:
        await bot.send_message(42, text, parse_mode="HTML")
    else:
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(42, text, parse_mode="HTML")


async def test_injected_flood_error_becomes_retry_after(
    bot: telegram.Bot, fake: FakeTelegram
) -> None:
    fake.fail_next("sendMessage", error_code=429, retry_after=5)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(42, "x")
    assert caught.value.retry_after == dtm.timedelta(seconds=5)
    assert fake.count_429 == 1
    await bot.send_message(42, "x")  # only the next call failed


async def test_injected_failure_can_target_one_chat(bot: telegram.Bot, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", error_code=400, chat_id=7, times=2)
    await bot.send_message(42, "x")
    for _ in range(2):
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_message(7, "x")
    await bot.send_message(7, "x")


async def test_blocked_user_is_forbidden(bot: telegram.Bot, fake: FakeTelegram) -> None:
    fake.block(42)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(42, "x")


async def test_migrated_group_raises_chat_migrated(bot: telegram.Bot, fake: FakeTelegram) -> None:
    fake.migrate(-4001, -1004001)
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(-4001, "x")
    assert caught.value.new_chat_id == -1004001
    message = await bot.send_message(-1004001, "x")
    assert message.chat.type == "supergroup"


async def test_deleted_chat_is_not_found(bot: telegram.Bot, fake: FakeTelegram) -> None:
    fake.delete_chat(-1009)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.get_chat(-1009)


async def test_slow_answer_times_out_but_message_is_delivered(
    bot: telegram.Bot, fake: FakeTelegram
) -> None:
    fake.delay("sendMessage", 2.0)
    with pytest.raises(TimedOut):
        await bot.send_message(42, "Peut-être livré")
    assert [m.text for m in fake.sent(42)] == ["Peut-être livré"]


async def test_flood_limits_allow_one_message_per_second_per_private_chat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    with FakeTelegram(enforce_limits=True) as fake:
        async with telegram.Bot(TOKEN, base_url=fake.base_url) as bot:
            await bot.send_message(42, "1")
            for text in "2345":
                with pytest.raises(RetryAfter):
                    await bot.send_message(42, text)
            await bot.send_message(43, "another chat is fine")
    assert fake.count_429 == 4
    assert [m.text for m in fake.sent()] == ["1", "another chat is fine"]


async def test_flood_limits_cap_groups_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    with FakeTelegram(enforce_limits=True, limits=Limits(group_per_minute=3)) as fake:
        async with telegram.Bot(TOKEN, base_url=fake.base_url) as bot:
            for _ in range(3):
                await bot.send_message(-1001, "x")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(-1001, "x")
    wait = caught.value.retry_after
    assert isinstance(wait, dtm.timedelta)
    assert dtm.timedelta(seconds=59) <= wait <= dtm.timedelta(seconds=60)


async def test_edits(bot: telegram.Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(42, "v1", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("v1", 42, message.message_id, reply_markup=keyboard("a"))
    await bot.edit_message_text("v2", 42, message.message_id, reply_markup=keyboard("a"))
    await bot.edit_message_reply_markup(42, message.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("v3", 42, 999)
    assert [(e.method, e.text) for e in fake.edits(42)] == [
        ("editMessageText", "v2"),
        ("editMessageReplyMarkup", None),
    ]
    current = fake.message(42, message.message_id)
    assert current is not None
    assert current["text"] == "v2"
    assert "reply_markup" not in current


async def test_oversized_callback_data_is_rejected(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(42, "x", reply_markup=keyboard("x" * 65))


async def test_delete_message(bot: telegram.Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(42, "x")
    assert await bot.delete_message(42, message.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(42, message.message_id)
    assert fake.deleted == [(42, message.message_id)]


async def test_photo_by_url(bot: telegram.Bot, fake: FakeTelegram) -> None:
    message = await bot.send_photo(
        -1001, "https://example.org/a.jpg", caption="<i>Vitrine</i>", parse_mode="HTML"
    )
    assert message.caption == "Vitrine"
    assert fake.sent()[0].photo == "https://example.org/a.jpg"


async def test_photo_upload_goes_as_multipart(bot: telegram.Bot, fake: FakeTelegram) -> None:
    upload = b"\xff\xd8 not really a jpeg"
    await bot.send_photo(42, upload, caption="é" * 1024)
    assert fake.sent()[0].photo == f"<upload of {len(upload)} bytes>"
    assert fake.sent()[0].text == "é" * 1024
    with pytest.raises(BadRequest, match="(?i)caption is too long"):
        await bot.send_photo(42, b"x", caption="é" * 1025)


async def test_callback_query_is_answered_once(bot: telegram.Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(42, "x", reply_markup=keyboard("like:1"))
    query = fake.user_presses(42, fake.sent()[0], "like:1")["callback_query"]
    assert query["message"]["message_id"] == message.message_id
    assert await bot.answer_callback_query(query["id"], text="Merci")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    assert fake.answered_callbacks[0]["text"] == "Merci"


async def test_commands_round_trip(bot: telegram.Bot, fake: FakeTelegram) -> None:
    await bot.set_my_commands([("start", "Commencer")], language_code="fr")
    assert [c.command for c in await bot.get_my_commands(language_code="fr")] == ["start"]
    assert fake.commands(language_code="fr") == [{"command": "start", "description": "Commencer"}]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Start!", "x")])


async def test_updates_are_served_and_confirmed(bot: telegram.Bot, fake: FakeTelegram) -> None:
    fake.user_sends(42, "/start abc")
    [update] = await bot.get_updates(timeout=1)
    assert update.message is not None
    assert update.message.text == "/start abc"
    assert update.message.entities[0].type == "bot_command"
    assert await bot.get_updates(offset=update.update_id + 1) == ()


async def test_long_poll_wakes_up_on_a_new_update(bot: telegram.Bot, fake: FakeTelegram) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=1))
    await asyncio.sleep(0.05)
    fake.user_sends(42, "bonjour")
    updates = await asyncio.wait_for(poll, 0.5)
    assert [u.message.text for u in updates if u.message] == ["bonjour"]


async def test_second_poller_terminates_the_first(fake: FakeTelegram) -> None:
    async with (
        telegram.Bot(TOKEN, base_url=fake.base_url) as first,
        telegram.Bot(TOKEN, base_url=fake.base_url) as second,
    ):
        poll = asyncio.create_task(first.get_updates(timeout=1))
        await asyncio.sleep(0.05)
        await second.get_updates(timeout=0)
        with pytest.raises(Conflict, match="(?i)terminated by other getUpdates"):
            await poll


# --- through a PTB Application -----------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply to /start."""
    assert update.message is not None
    await update.message.reply_text("hello")


async def test_application_answers_a_command(fake: FakeTelegram) -> None:
    app: Application = (  # type: ignore[type-arg]
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=dtm.timedelta(seconds=1))
        fake.user_sends(42, "/start")
        [reply] = await fake.wait_for_sent(1, chat_id=42, timeout=5)
        await app.updater.stop()
        await app.stop()
    assert reply.text == "hello"


# --- without PTB: what a subprocess bot or another client sees ---------------------------------


def post(url: str, fields: dict[str, str]) -> tuple[int, dict[str, object]]:
    """POST a form the way PTB does, from any thread."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_sync_wait_for_sees_a_send_from_another_thread(fake: FakeTelegram) -> None:
    url = f"{fake.base_url}{TOKEN}/sendMessage"
    fields = {"chat_id": "42", "text": "123", "reply_markup": '{"inline_keyboard": []}'}
    sender = threading.Thread(target=post, args=(url, fields))
    sender.start()
    fake.wait_for(lambda: len(fake.sent(42)) == 1, timeout=2)
    sender.join()
    assert fake.sent(42)[0].text == "123"  # strings stay strings, even when they look like JSON


@pytest.mark.parametrize(
    ("path", "status", "description"),
    [
        (f"/bot{TOKEN}/sendSticker", 404, "Not Found"),
        ("/bot1:WRONG/getMe", 401, "Unauthorized"),
        (f"/bot{TOKEN}/GETME", 200, None),  # method names are case-insensitive
    ],
)
def test_routing(fake: FakeTelegram, path: str, status: int, description: str | None) -> None:
    code, body = post(f"http://127.0.0.1:{fake.port}{path}", {})
    assert (code, body.get("description")) == (status, description)


async def test_get_chat_member_of_the_bot_as_telegram_answers_it(
    bot: telegram.Bot, fake: FakeTelegram
) -> None:
    fake.add_chat(-1001, "channel", bot_admin=True)
    fake.add_chat(-1002, "channel", bot_admin=True, bot_can_post=False)
    fake.add_chat(-1003, "channel")
    fake.add_chat(-1004, "supergroup")
    admin = await bot.get_chat_member(-1001, bot.id)
    assert isinstance(admin, telegram.ChatMemberAdministrator)
    assert admin.can_post_messages is True
    no_post = await bot.get_chat_member(-1002, bot.id)
    assert isinstance(no_post, telegram.ChatMemberAdministrator)
    assert no_post.can_post_messages is False
    with pytest.raises(BadRequest, match="(?i)member list is inaccessible"):
        await bot.get_chat_member(-1003, bot.id)
    assert (await bot.get_chat_member(-1004, bot.id)).status == "member"
    with pytest.raises(BadRequest, match="(?i)user not found"):
        await bot.get_chat_member(-1004, 42)
    for unknown in (bot.get_chat(-1009999), bot.get_chat_member(-1009999, bot.id)):
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await unknown
