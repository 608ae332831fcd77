"""A business owner's everyday commands in private chats: /post, /sources, /remove.

/post is a short conversation (which business, then the news); the sources' health and the
▶ resume / remove buttons check, on every press, that the source is the presser's.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from relay.bot.chat import (
    END,
    PRIVATE,
    TYPED,
    button,
    conversation,
    forget,
    pressed,
    say,
    send,
    user_data,
)
from relay.bot.common import ID, Context, excerpt, language, services, user_id
from relay.i18n import text
from relay.registration import (
    create_post,
    holdings,
    holdings_text,
    owned_business,
    owned_source,
    posted_text,
    read_post,
    remove_source,
    resume_source,
)
from relay.telegram_html import escape, truncate_text
from storage.sources import businesses_of, get_business
from storage.values import Business

POST_PICK, POST_TEXT = range(5, 7)  # conversation states
POSTING = "post.business"  # user_data key
URL_EXCERPT = 100  # characters of a source's address shown in a sentence
NUMBER = re.compile(r"[0-9]+")
# Button data, checked whole ("$" would also take a final newline): anything else is
# answered by the bot's catch-all as a button that no longer works.
PICK_DATA = rf"^post:{ID}\Z"
REMOVE_DATA = rf"^rm:{ID}\Z"
REMOVE_YES_DATA = rf"^rm:{ID}:y\Z"
RESUME_DATA = rf"^rs:{ID}\Z"


async def post_start(update: Update, context: Context) -> int:
    """/post: which business (when several), then the news."""
    with services(context).db.read() as session:
        owned = businesses_of(session, user_id(update))
    if not owned:
        await say(update, context, "business.post_register_first")
        return END
    if len(owned) == 1:
        return await _ask_post(update, context, owned[0])
    buttons = [[InlineKeyboardButton(b.name[:60], callback_data=f"post:{b.id}")] for b in owned]
    await send(update, context, text(language(update, context), "business.post_pick"), buttons)
    return POST_PICK


async def post_picked(update: Update, context: Context) -> int:
    """A business button (checked: it must be the presser's)."""
    business_id = _number(await pressed(update))
    with services(context).db.read() as session:
        business = owned_business(session, user_id(update), business_id)
    if business is None:
        await say(update, context, "business.not_yours")
        return forget(context, POSTING)
    return await _ask_post(update, context, business)


async def _ask_post(update: Update, context: Context, business: Business) -> int:
    user_data(context)[POSTING] = business.id
    await say(update, context, "business.post_ask", name=escape(business.name))
    return POST_TEXT


async def got_post(update: Update, context: Context) -> int:
    """The news (text, or photo with caption) becomes an item, with its cards if needed."""
    message = update.effective_message
    assert message is not None
    image = f"tg:{message.photo[-1].file_id}" if message.photo else None
    post = read_post(message.text or message.caption or "", image)
    if post is None:
        await say(update, context, "business.post_empty")
        return POST_TEXT
    wired, lang, business_id = (
        services(context),
        language(update, context),
        user_data(context)[POSTING],
    )
    now, owner = wired.clock(), user_id(update)
    posted = create_post(
        wired.db, owner, business_id, post, message.message_id, wired.settings, now
    )
    reply = posted_text(posted, post, lang) if posted else text(lang, "business.not_yours")
    await send(update, context, reply)
    return forget(context, POSTING)


async def cancel_post(update: Update, context: Context) -> int:
    """/cancel while posting."""
    await say(update, context, "business.cancelled")
    return forget(context, POSTING)


# --- /sources and /remove ---------------------------------------------------------------------


async def show_sources(update: Update, context: Context) -> None:
    """/sources: each business's status and each source's health, in plain words."""
    found = services(context)
    with found.db.read() as session:
        owned = holdings(session, user_id(update))
    if not owned:
        await say(update, context, "business.none")
        return
    lang = language(update, context)
    paused = [s for h in owned for s in h.sources if s.paused]
    buttons = [
        [
            InlineKeyboardButton(
                text(lang, "business.resume_button", url=truncate_text(s.url, 50)),
                callback_data=f"rs:{s.id}",
            )
        ]
        for s in paused
    ]
    await send(
        update, context, holdings_text(owned, lang, found.settings.pacing.timezone), buttons or None
    )


async def resume_pressed(update: Update, context: Context) -> None:
    """▶ Resume a paused source: checked again within minutes, if it is the presser's."""
    data = await pressed(update)
    found = services(context)
    resumed = resume_source(found.db, user_id(update), _number(data), found.clock())
    if resumed is None:
        await say(update, context, "business.not_yours")
        return
    await say(update, context, "business.resumed", url=excerpt(resumed.url, URL_EXCERPT))


async def remove_start(update: Update, context: Context) -> None:
    """/remove: a button per source of the person's businesses."""
    with services(context).db.read() as session:
        sources = [s for h in holdings(session, user_id(update)) for s in h.sources]
    if not sources:
        await say(update, context, "business.remove_none")
        return
    buttons = [
        [InlineKeyboardButton(truncate_text(s.url, 60), callback_data=f"rm:{s.id}")]
        for s in sources
    ]
    await send(update, context, text(language(update, context), "business.remove_pick"), buttons)


async def remove_asked(update: Update, context: Context) -> None:
    """A source button: confirm first (checked: the source must be the presser's)."""
    source_id = _number(await pressed(update))
    with services(context).db.read() as session:
        source = owned_source(session, user_id(update), source_id)
        business = get_business(session, source.business_id) if source else None
    if source is None or business is None:
        await say(update, context, "business.not_yours")
        return
    lang = language(update, context)
    sure = button(lang, "business.remove_yes", f"rm:{source.id}:y")
    keep = button(lang, "business.remove_no", "rm:n")
    url = excerpt(source.url, URL_EXCERPT)
    body = text(lang, "business.remove_confirm", url=url, name=escape(business.name))
    await send(update, context, body, [[sure, keep]])


async def remove_confirmed(update: Update, context: Context) -> None:
    """Yes: the source is deleted, if it is still the presser's."""
    source_id = _number(await pressed(update))
    removed = remove_source(services(context).db, user_id(update), source_id)
    if removed is None:
        await say(update, context, "business.not_yours")
        return
    await say(update, context, "business.removed", url=excerpt(removed.url, URL_EXCERPT))


async def remove_kept(update: Update, context: Context) -> None:
    """No: nothing changes."""
    await pressed(update)
    await say(update, context, "business.remove_kept")


def _number(data: str) -> int:
    """The id in button data its handler's pattern checked ("rm:12:y" → 12)."""
    match = NUMBER.search(data)
    assert match is not None  # the handler's pattern guarantees it
    return int(match[0])


# --- Wiring ------------------------------------------------------------------------------------


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """/post, /sources, /remove and their buttons."""
    return [
        _posting(),
        CommandHandler("sources", show_sources, filters=PRIVATE),
        CommandHandler("remove", remove_start, filters=PRIVATE),
        CallbackQueryHandler(remove_asked, pattern=REMOVE_DATA),
        CallbackQueryHandler(remove_confirmed, pattern=REMOVE_YES_DATA),
        CallbackQueryHandler(remove_kept, pattern=r"^rm:n\Z"),
        CallbackQueryHandler(resume_pressed, pattern=RESUME_DATA),
    ]


def _posting() -> ConversationHandler[Context]:
    pick = CallbackQueryHandler(post_picked, pattern=PICK_DATA)
    return conversation(
        entry_points=[CommandHandler("post", post_start, filters=PRIVATE), pick],
        states={
            POST_PICK: [pick],
            POST_TEXT: [MessageHandler((TYPED | filters.PHOTO) & PRIVATE, got_post)],
        },
        fallbacks=[CommandHandler("cancel", cancel_post)],
    )
