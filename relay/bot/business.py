"""Registering a business in a private chat: /register, guided or in one message.

Handlers read the update, call `relay.registration`, and answer with catalogue text. What a
business is lives in the database; only a registration in progress sits in user_data.
The conversation is drawn in business.md, beside this file; /post, /sources and /remove
are in owner.py.
"""

from __future__ import annotations

from dataclasses import replace

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from feeds.errors import FeedError
from feeds.reader import read_source
from relay.bot import owner
from relay.bot.chat import (
    PRIVATE,
    TYPED,
    button,
    conversation,
    forget,
    pressed,
    say,
    send,
    typed_text,
    user_data,
)
from relay.bot.common import (
    Context,
    argument,
    excerpt,
    language,
    plain_excerpt,
    services,
    user_id,
)
from relay.categories import CATEGORIES
from relay.i18n import text
from relay.notices import error_sentence
from relay.registration import (
    MAX_CITY,
    MAX_NAME,
    Draft,
    Found,
    candidate_url,
    check_free,
    clean_label,
    found_in,
    preview_text,
    proposed_name,
    recap_text,
    register,
)
from relay.telegram_html import escape
from storage.sources import SourceExistsError

# Conversation states.
ASK_URL, ASK_NAME, ASK_CATEGORY, ASK_CITY, CONFIRM = range(5)
DRAFT = "register.draft"  # user_data keys
AT_ONCE = "register.at_once"
URL_EXCERPT = 100  # characters of a typed address shown back


def _draft(context: Context) -> Draft:
    draft: Draft = user_data(context)[DRAFT]
    return draft


async def register_start(update: Update, context: Context) -> int:
    """/register asks for the address; `/register URL` registers at once."""
    lang = language(update, context)
    user_data(context)[DRAFT] = Draft(user_id(update), lang)
    typed = argument(context)
    if typed:
        user_data(context)[AT_ONCE] = True
        return await got_url(update, context, typed)
    user_data(context).pop(AT_ONCE, None)
    no_site = button(lang, "register.no_website", "reg:nosite")
    await send(update, context, text(lang, "register.ask_url"), [[no_site]])
    return ASK_URL


async def got_url(update: Update, context: Context, typed: str | None = None) -> int:
    """An address: read it and show what was found; then the name (or, at once, the end)."""
    found = await _look(update, context, typed or typed_text(update))
    if found is None:
        return ASK_URL  # another try
    draft = replace(_draft(context), found=found)
    user_data(context)[DRAFT] = draft
    if user_data(context).pop(AT_ONCE, False):
        return await _create(update, context, replace(draft, name=proposed_name(found)))
    lang = draft.language
    # Button labels are plain text: the name is not escaped here.
    use = button(lang, "register.use_name", "reg:name", name=proposed_name(found)[:60])
    await send(update, context, text(lang, "register.ask_name_proposed"), [[use]])
    return ASK_NAME


async def _look(update: Update, context: Context, typed: str) -> Found | None:
    """Read the address; every failure is told in plain words with another try offered."""
    wired, lang = services(context), language(update, context)
    try:
        found = await _read(update, context, typed, lang)
        with wired.db.read() as session:
            check_free(session, found)
    except FeedError as exc:
        # What was typed may be thousands of characters: only an excerpt is shown back.
        url, detail = plain_excerpt(exc.url, URL_EXCERPT), plain_excerpt(exc.detail, URL_EXCERPT)
        reason = escape(error_sentence(exc.code, url, detail, lang))
        await send(update, context, reason + "\n" + text(lang, "register.try_again"))
        return None
    except SourceExistsError as exc:
        taken = text(lang, "register.duplicate", name=escape(exc.business.name))
        await send(update, context, taken + "\n" + text(lang, "register.try_again"))
        return None
    timezone = wired.settings.pacing.timezone
    await send(update, context, preview_text(found, lang, timezone))
    return found


async def _read(update: Update, context: Context, typed: str, lang: str) -> Found:
    """Say we are looking (reading a site can take seconds), then read it."""
    url = candidate_url(typed)
    await send(update, context, text(lang, "register.looking", url=excerpt(url, URL_EXCERPT)))
    wired = services(context)
    probes = wired.settings.fetch.max_probes
    parse = wired.parsers.parse_fetched if wired.parsers else None
    return found_in(await read_source(wired.fetcher, url, max_probes=probes, parse=parse))


async def no_website(update: Update, context: Context) -> int:
    """No website: the business will post with /post; ask its name."""
    await pressed(update)
    user_data(context)[DRAFT] = replace(_draft(context), found=None)
    await say(update, context, "register.ask_name")
    return ASK_NAME


async def name_proposed(update: Update, context: Context) -> int:
    """The name read from the website is kept."""
    await pressed(update)
    draft = _draft(context)
    assert draft.found is not None
    user_data(context)[DRAFT] = replace(draft, name=proposed_name(draft.found))
    return await _ask_category(update, context)


async def got_name(update: Update, context: Context) -> int:
    """A typed name: one line, not too long."""
    name = clean_label(typed_text(update), MAX_NAME)
    if name is None:
        await say(update, context, "register.bad_name", limit=MAX_NAME)
        return ASK_NAME
    user_data(context)[DRAFT] = replace(_draft(context), name=name)
    return await _ask_category(update, context)


async def _ask_category(update: Update, context: Context) -> int:
    lang = _draft(context).language
    buttons = [button(lang, f"business.category_{code}", f"reg:cat:{code}") for code in CATEGORIES]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    await send(update, context, text(lang, "register.ask_category"), rows)
    return ASK_CATEGORY


async def got_category(update: Update, context: Context) -> int:
    """A category button; anything not in the list (forged data) asks again."""
    code = (await pressed(update)).removeprefix("reg:cat:")
    if code not in CATEGORIES:
        await say(update, context, "register.use_buttons")
        return ASK_CATEGORY
    user_data(context)[DRAFT] = replace(_draft(context), category=code)
    await say(update, context, "register.ask_city")
    return ASK_CITY


async def got_city(update: Update, context: Context) -> int:
    """The town; then the recap to confirm."""
    city = clean_label(typed_text(update), MAX_CITY)
    if city is None:
        await say(update, context, "register.bad_city", limit=MAX_CITY)
        return ASK_CITY
    draft = replace(_draft(context), city=city)
    user_data(context)[DRAFT] = draft
    lang = draft.language
    buttons = [
        [button(lang, "register.confirm", "reg:ok"), button(lang, "register.cancel", "reg:no")]
    ]
    await send(update, context, recap_text(draft, lang), buttons)
    return CONFIRM


async def confirmed(update: Update, context: Context) -> int:
    """Confirm: the business, its source and the moderation cards are created."""
    await pressed(update)
    return await _create(update, context, _draft(context))


async def _create(update: Update, context: Context, draft: Draft) -> int:
    wired = services(context)
    try:
        business = register(wired.db, draft, wired.settings, wired.clock())
    except SourceExistsError as exc:  # registered by someone else meanwhile
        await say(update, context, "register.duplicate", name=escape(exc.business.name))
        return _end(context)
    key = "register.done" if draft.found else "register.done_no_site"
    await say(update, context, key, name=escape(business.name))
    return _end(context)


async def declined(update: Update, context: Context) -> int:
    """The recap's cancel button."""
    await pressed(update)
    await say(update, context, "register.cancelled")
    return _end(context)


async def cancel_registration(update: Update, context: Context) -> int:
    """/cancel, at any step."""
    await say(update, context, "register.cancelled")
    return _end(context)


def _end(context: Context) -> int:
    """Leave the registration, forgetting its draft."""
    return forget(context, DRAFT, AT_ONCE)


async def use_buttons(update: Update, context: Context) -> None:
    """Text where a button is expected: say so; returning None keeps the state."""
    await say(update, context, "register.use_buttons")


async def stale_press(update: Update, context: Context) -> None:
    """A button of a registration that is over (finished, cancelled, bot restarted)."""
    await pressed(update)
    await say(update, context, "register.expired")


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Every owner command, private chats only."""
    return [
        _registration(),
        *owner.handlers(),
        CallbackQueryHandler(stale_press, pattern=r"^reg:"),
    ]


def _registration() -> ConversationHandler[Context]:
    # Reading a site takes up to the fetch timeout: those handlers don't block other updates.
    start = CommandHandler("register", register_start, filters=PRIVATE, block=False)
    return conversation(
        entry_points=[start],
        states={
            ASK_URL: [
                MessageHandler(TYPED, got_url, block=False),
                CallbackQueryHandler(no_website, pattern=r"^reg:nosite\Z"),
            ],
            ASK_NAME: [
                MessageHandler(TYPED, got_name),
                CallbackQueryHandler(name_proposed, pattern=r"^reg:name\Z"),
            ],
            ASK_CATEGORY: [
                CallbackQueryHandler(got_category, pattern=r"^reg:cat:"),
                MessageHandler(TYPED, use_buttons),
            ],
            ASK_CITY: [MessageHandler(TYPED, got_city)],
            CONFIRM: [
                CallbackQueryHandler(confirmed, pattern=r"^reg:ok\Z"),
                CallbackQueryHandler(declined, pattern=r"^reg:no\Z"),
                MessageHandler(TYPED, use_buttons),
            ],
        },
        fallbacks=[CommandHandler("cancel", cancel_registration)],
    )
