"""Business owners' commands in private chats: /register, /post, /sources, /remove.

Handlers read the update, call `relay.registration`, and answer with catalogue text. What a
business is lives in the database; only a conversation in progress sits in user_data.
The conversations are drawn in business.md, beside this file.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from feeds.errors import FeedError
from feeds.reader import read_source
from relay.bot.common import Context, argument, language, services, user_id
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
    create_post,
    found_in,
    holdings,
    holdings_text,
    owned_business,
    owned_source,
    posted_text,
    preview_text,
    proposed_name,
    read_post,
    recap_text,
    register,
    remove_source,
    resume_source,
)
from relay.telegram_html import escape, truncate_text
from storage.sources import SourceExistsError, businesses_of, get_business
from storage.values import Business

# Conversation states.
ASK_URL, ASK_NAME, ASK_CATEGORY, ASK_CITY, CONFIRM, POST_PICK, POST_TEXT = range(7)
END = ConversationHandler.END

PRIVATE = filters.ChatType.PRIVATE
TYPED = filters.TEXT & ~filters.COMMAND
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
DRAFT = "register.draft"  # user_data keys
AT_ONCE = "register.at_once"
POSTING = "post.business"
SOURCE_ID = re.compile(r"^rm:(\d{1,18})")


# --- Plumbing ----------------------------------------------------------------------------------


async def _send(
    update: Update,
    context: Context,
    html: str,
    buttons: list[list[InlineKeyboardButton]] | None = None,
) -> None:
    """An HTML message to the chat of the update, with inline buttons if any."""
    chat = update.effective_chat
    assert chat is not None
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    await context.bot.send_message(
        chat.id,
        html,
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=markup,
    )


async def _say(update: Update, context: Context, key: str, **values: Any) -> None:
    """A catalogue message in the person's language."""
    await _send(update, context, text(language(update, context), key, **values))


async def _pressed(update: Update) -> str:
    """Answer a button press at once (the person sees a spinner until then); its data."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    return query.data or ""


def _button(lang: str, key: str, data: str, **values: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text(lang, key, **values), callback_data=data)


def _data(context: Context) -> dict[str, Any]:
    assert context.user_data is not None
    return context.user_data


def _draft(context: Context) -> Draft:
    draft: Draft = _data(context)[DRAFT]
    return draft


def _typed(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message else ""


# --- /register ---------------------------------------------------------------------------------


async def register_start(update: Update, context: Context) -> int:
    """/register asks for the address; `/register URL` registers at once."""
    lang = language(update, context)
    _data(context)[DRAFT] = Draft(user_id(update), lang)
    typed = argument(context)
    if typed:
        _data(context)[AT_ONCE] = True
        return await got_url(update, context, typed)
    _data(context).pop(AT_ONCE, None)
    no_site = _button(lang, "register.no_website", "reg:nosite")
    await _send(update, context, text(lang, "register.ask_url"), [[no_site]])
    return ASK_URL


async def got_url(update: Update, context: Context, typed: str | None = None) -> int:
    """An address: read it and show what was found; then the name (or, at once, the end)."""
    found = await _look(update, context, typed or _typed(update))
    if found is None:
        return ASK_URL  # another try
    draft = replace(_draft(context), found=found)
    _data(context)[DRAFT] = draft
    if _data(context).pop(AT_ONCE, False):
        return await _create(update, context, replace(draft, name=proposed_name(found)))
    lang = draft.language
    # Button labels are plain text: the name is not escaped here.
    use = _button(lang, "register.use_name", "reg:name", name=proposed_name(found)[:60])
    await _send(update, context, text(lang, "register.ask_name_proposed"), [[use]])
    return ASK_NAME


async def _look(update: Update, context: Context, typed: str) -> Found | None:
    """Read the address; every failure is told in plain words with another try offered."""
    wired, lang = services(context), language(update, context)
    try:
        found = await _read(update, context, typed, lang)
        with wired.db.read() as session:
            check_free(session, found)
    except FeedError as exc:
        reason = escape(error_sentence(exc.code, exc.url, exc.detail, lang))
        await _send(update, context, reason + "\n" + text(lang, "register.try_again"))
        return None
    except SourceExistsError as exc:
        taken = text(lang, "register.duplicate", name=escape(exc.business.name))
        await _send(update, context, taken + "\n" + text(lang, "register.try_again"))
        return None
    timezone = wired.settings.pacing.timezone
    await _send(update, context, preview_text(found, lang, timezone))
    return found


async def _read(update: Update, context: Context, typed: str, lang: str) -> Found:
    """Say we are looking (reading a site can take seconds), then read it."""
    url = candidate_url(typed)
    await _send(update, context, text(lang, "register.looking", url=escape(url)))
    wired = services(context)
    probes = wired.settings.fetch.max_probes
    return found_in(await read_source(wired.fetcher, url, max_probes=probes))


async def no_website(update: Update, context: Context) -> int:
    """No website: the business will post with /post; ask its name."""
    await _pressed(update)
    _data(context)[DRAFT] = replace(_draft(context), found=None)
    await _say(update, context, "register.ask_name")
    return ASK_NAME


async def name_proposed(update: Update, context: Context) -> int:
    """The name read from the website is kept."""
    await _pressed(update)
    draft = _draft(context)
    assert draft.found is not None
    _data(context)[DRAFT] = replace(draft, name=proposed_name(draft.found))
    return await _ask_category(update, context)


async def got_name(update: Update, context: Context) -> int:
    """A typed name: one line, not too long."""
    name = clean_label(_typed(update), MAX_NAME)
    if name is None:
        await _say(update, context, "register.bad_name", limit=MAX_NAME)
        return ASK_NAME
    _data(context)[DRAFT] = replace(_draft(context), name=name)
    return await _ask_category(update, context)


async def _ask_category(update: Update, context: Context) -> int:
    lang = _draft(context).language
    buttons = [_button(lang, f"business.category_{code}", f"reg:cat:{code}") for code in CATEGORIES]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    await _send(update, context, text(lang, "register.ask_category"), rows)
    return ASK_CATEGORY


async def got_category(update: Update, context: Context) -> int:
    """A category button; anything not in the list (forged data) asks again."""
    code = (await _pressed(update)).removeprefix("reg:cat:")
    if code not in CATEGORIES:
        await _say(update, context, "register.use_buttons")
        return ASK_CATEGORY
    _data(context)[DRAFT] = replace(_draft(context), category=code)
    await _say(update, context, "register.ask_city")
    return ASK_CITY


async def got_city(update: Update, context: Context) -> int:
    """The town; then the recap to confirm."""
    city = clean_label(_typed(update), MAX_CITY)
    if city is None:
        await _say(update, context, "register.bad_city", limit=MAX_CITY)
        return ASK_CITY
    draft = replace(_draft(context), city=city)
    _data(context)[DRAFT] = draft
    lang = draft.language
    buttons = [
        [_button(lang, "register.confirm", "reg:ok"), _button(lang, "register.cancel", "reg:no")]
    ]
    await _send(update, context, recap_text(draft, lang), buttons)
    return CONFIRM


async def confirmed(update: Update, context: Context) -> int:
    """Confirm: the business, its source and the moderation cards are created."""
    await _pressed(update)
    return await _create(update, context, _draft(context))


async def _create(update: Update, context: Context, draft: Draft) -> int:
    wired = services(context)
    try:
        business = register(wired.db, draft, wired.settings, wired.clock())
    except SourceExistsError as exc:  # registered by someone else meanwhile
        await _say(update, context, "register.duplicate", name=escape(exc.business.name))
        return _end(context)
    key = "register.done" if draft.found else "register.done_no_site"
    await _say(update, context, key, name=escape(business.name))
    return _end(context)


async def declined(update: Update, context: Context) -> int:
    """The recap's cancel button."""
    await _pressed(update)
    await _say(update, context, "register.cancelled")
    return _end(context)


async def cancel_registration(update: Update, context: Context) -> int:
    """/cancel, at any step."""
    await _say(update, context, "register.cancelled")
    return _end(context)


def _end(context: Context, *keys: str) -> int:
    """Leave a conversation, forgetting what it kept (a registration's by default)."""
    for key in keys or (DRAFT, AT_ONCE):
        _data(context).pop(key, None)
    return END


async def use_buttons(update: Update, context: Context) -> None:
    """Text where a button is expected: say so; returning None keeps the state."""
    await _say(update, context, "register.use_buttons")


async def stale_press(update: Update, context: Context) -> None:
    """A button of a registration that is over (finished, cancelled, bot restarted)."""
    await _pressed(update)
    await _say(update, context, "register.expired")


# --- /post -------------------------------------------------------------------------------------


async def post_start(update: Update, context: Context) -> int:
    """/post: which business (when several), then the news."""
    with services(context).db.read() as session:
        owned = businesses_of(session, user_id(update))
    if not owned:
        await _say(update, context, "business.post_register_first")
        return END
    if len(owned) == 1:
        return await _ask_post(update, context, owned[0])
    buttons = [[InlineKeyboardButton(b.name[:60], callback_data=f"post:{b.id}")] for b in owned]
    await _send(update, context, text(language(update, context), "business.post_pick"), buttons)
    return POST_PICK


async def post_picked(update: Update, context: Context) -> int:
    """A business button (checked: it must be the presser's)."""
    business_id = int((await _pressed(update)).removeprefix("post:"))
    with services(context).db.read() as session:
        business = owned_business(session, user_id(update), business_id)
    if business is None:
        await _say(update, context, "business.not_yours")
        return _end(context, POSTING)
    return await _ask_post(update, context, business)


async def _ask_post(update: Update, context: Context, business: Business) -> int:
    _data(context)[POSTING] = business.id
    await _say(update, context, "business.post_ask", name=escape(business.name))
    return POST_TEXT


async def got_post(update: Update, context: Context) -> int:
    """The news (text, or photo with caption) becomes an item, with its cards if needed."""
    message = update.effective_message
    assert message is not None
    image = f"tg:{message.photo[-1].file_id}" if message.photo else None
    post = read_post(message.text or message.caption or "", image)
    if post is None:
        await _say(update, context, "business.post_empty")
        return POST_TEXT
    wired, lang, business_id = services(context), language(update, context), _data(context)[POSTING]
    now, owner = wired.clock(), user_id(update)
    posted = create_post(
        wired.db, owner, business_id, post, message.message_id, wired.settings, now
    )
    reply = posted_text(posted, post, lang) if posted else text(lang, "business.not_yours")
    await _send(update, context, reply)
    return _end(context, POSTING)


async def cancel_post(update: Update, context: Context) -> int:
    """/cancel while posting."""
    await _say(update, context, "business.cancelled")
    return _end(context, POSTING)


# --- /sources and /remove ---------------------------------------------------------------------


async def show_sources(update: Update, context: Context) -> None:
    """/sources: each business's status and each source's health, in plain words."""
    found = services(context)
    with found.db.read() as session:
        owned = holdings(session, user_id(update))
    if not owned:
        await _say(update, context, "business.none")
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
    await _send(
        update, context, holdings_text(owned, lang, found.settings.pacing.timezone), buttons or None
    )


async def resume_pressed(update: Update, context: Context) -> None:
    """▶ Resume a paused source: checked again within minutes, if it is the presser's."""
    data = await _pressed(update)
    found = services(context)
    resumed = resume_source(found.db, user_id(update), int(data[3:]), found.clock())
    if resumed is None:
        await _say(update, context, "business.not_yours")
        return
    await _say(update, context, "business.resumed", url=escape(resumed.url))


async def remove_start(update: Update, context: Context) -> None:
    """/remove: a button per source of the person's businesses."""
    with services(context).db.read() as session:
        sources = [s for h in holdings(session, user_id(update)) for s in h.sources]
    if not sources:
        await _say(update, context, "business.remove_none")
        return
    buttons = [
        [InlineKeyboardButton(truncate_text(s.url, 60), callback_data=f"rm:{s.id}")]
        for s in sources
    ]
    await _send(update, context, text(language(update, context), "business.remove_pick"), buttons)


async def remove_asked(update: Update, context: Context) -> None:
    """A source button: confirm first (checked: the source must be the presser's)."""
    source_id = _source_id(await _pressed(update))
    with services(context).db.read() as session:
        source = owned_source(session, user_id(update), source_id)
        business = get_business(session, source.business_id) if source else None
    if source is None or business is None:
        await _say(update, context, "business.not_yours")
        return
    lang = language(update, context)
    sure = _button(lang, "business.remove_yes", f"rm:{source.id}:y")
    keep = _button(lang, "business.remove_no", "rm:n")
    body = text(lang, "business.remove_confirm", url=escape(source.url), name=escape(business.name))
    await _send(update, context, body, [[sure, keep]])


async def remove_confirmed(update: Update, context: Context) -> None:
    """Yes: the source is deleted, if it is still the presser's."""
    source_id = _source_id(await _pressed(update))
    removed = remove_source(services(context).db, user_id(update), source_id)
    if removed is None:
        await _say(update, context, "business.not_yours")
        return
    await _say(update, context, "business.removed", url=escape(removed.url))


async def remove_kept(update: Update, context: Context) -> None:
    """No: nothing changes."""
    await _pressed(update)
    await _say(update, context, "business.remove_kept")


def _source_id(data: str) -> int:
    match = SOURCE_ID.match(data)
    assert match is not None  # the handler's pattern guarantees it
    return int(match[1])


# --- Wiring ------------------------------------------------------------------------------------


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Every owner command, private chats only."""
    return [
        _registration(),
        _posting(),
        CommandHandler("sources", show_sources, filters=PRIVATE),
        CommandHandler("remove", remove_start, filters=PRIVATE),
        CallbackQueryHandler(remove_asked, pattern=r"^rm:\d{1,18}$"),
        CallbackQueryHandler(remove_confirmed, pattern=r"^rm:\d{1,18}:y$"),
        CallbackQueryHandler(remove_kept, pattern=r"^rm:n$"),
        CallbackQueryHandler(resume_pressed, pattern=r"^rs:\d{1,18}$"),
        CallbackQueryHandler(stale_press, pattern=r"^reg:"),
    ]


def _registration() -> ConversationHandler[Context]:
    # Reading a site takes up to the fetch timeout: those handlers don't block other updates.
    start = CommandHandler("register", register_start, filters=PRIVATE, block=False)
    return _conversation(
        entry_points=[start],
        states={
            ASK_URL: [
                MessageHandler(TYPED, got_url, block=False),
                CallbackQueryHandler(no_website, pattern=r"^reg:nosite$"),
            ],
            ASK_NAME: [
                MessageHandler(TYPED, got_name),
                CallbackQueryHandler(name_proposed, pattern=r"^reg:name$"),
            ],
            ASK_CATEGORY: [
                CallbackQueryHandler(got_category, pattern=r"^reg:cat:"),
                MessageHandler(TYPED, use_buttons),
            ],
            ASK_CITY: [MessageHandler(TYPED, got_city)],
            CONFIRM: [
                CallbackQueryHandler(confirmed, pattern=r"^reg:ok$"),
                CallbackQueryHandler(declined, pattern=r"^reg:no$"),
                MessageHandler(TYPED, use_buttons),
            ],
        },
        fallbacks=[CommandHandler("cancel", cancel_registration)],
    )


def _posting() -> ConversationHandler[Context]:
    pick = CallbackQueryHandler(post_picked, pattern=r"^post:\d{1,18}$")
    return _conversation(
        entry_points=[CommandHandler("post", post_start, filters=PRIVATE), pick],
        states={
            POST_PICK: [pick],
            POST_TEXT: [MessageHandler((TYPED | filters.PHOTO) & PRIVATE, got_post)],
        },
        fallbacks=[CommandHandler("cancel", cancel_post)],
    )


def _conversation(**parts: Any) -> ConversationHandler[Context]:
    """One conversation per person and chat, re-entered by its command."""
    # per_message=False is what we want (the conversation follows the person, whichever
    # message its buttons are on); PTB warns about it for each CallbackQueryHandler.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "If 'per_message=False'", PTBUserWarning)
        return ConversationHandler(per_user=True, per_chat=True, allow_reentry=True, **parts)
