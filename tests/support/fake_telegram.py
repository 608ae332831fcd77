"""A fake Telegram Bot API: a real local HTTP server that python-telegram-bot talks to.

Point PTB at it with ``base_url=fake.base_url`` (and ``base_file_url=fake.base_file_url``). It keeps
chats and messages in memory and validates like the real API (HTML entities, text lengths,
``callback_data`` size, "message is not modified"). Tests script it: a user's message or button
press becomes an update served by ``getUpdates``; a send can fail on demand (429, 403, group
migration, chat not found) or answer slowly; flood limits can be enforced. Everything it did is
recorded for assertions.

It runs in its own threads, so it serves an asyncio test in the same process as well as a bot
started in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, urlsplit

TOKEN = "123456:TEST-TOKEN"
BOT_ID = 123456
BOT_USERNAME = "solidarity_test_bot"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

Params = dict[str, Any]
JSONDict = dict[str, Any]

BOT_USER: JSONDict = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Solidarity Relay",
    "username": BOT_USERNAME,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
    "can_connect_to_business": False,
    "has_main_web_app": False,
}

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters or {}

    def body(self) -> JSONDict:
        """The JSON body Telegram answers with."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """A 400 answer, worded like Telegram's."""
    return ApiError(400, f"Bad Request: {reason}")


def flood_error(retry_after: int) -> ApiError:
    """A 429 answer telling the client how long to wait."""
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


# --- Telegram-flavoured HTML -------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler", "a", "code", "pre"}
    | {"blockquote", "span", "tg-emoji", "tg-time"}
)
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#(?:[xX][0-9a-fA-F]+|[0-9]+)|[a-zA-Z]+);?")
_TAG_NAME = re.compile(r"<([a-zA-Z0-9-]*)")
_START_TAG = re.compile(
    r"""<[a-zA-Z0-9-]+((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*>"""
)
_ATTRIBUTE = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_END_TAG = re.compile(r"</([a-zA-Z0-9-]*)\s*>")


class _HtmlReader:
    """Reads HTML the way the Bot API does for parse_mode=HTML, keeping the visible text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.visible: list[str] = []
        self.open_tags: list[str] = []

    def read(self) -> str:
        """The visible text; raises a 400 "can't parse entities" like Telegram."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "&":
                self._entity()
            elif char == "<":
                self._end_tag() if self.text.startswith("</", self.pos) else self._start_tag()
            else:
                self.visible.append(char)
                self.pos += 1
        if self.open_tags:
            tag = self.open_tags[-1]
            raise self._error(f'Can\'t find end tag corresponding to start tag "{tag}"')
        return "".join(self.visible)

    def _error(self, reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}")

    def _offset(self) -> int:
        return len(self.text[: self.pos].encode())

    def _entity(self) -> None:
        match = _ENTITY.match(self.text, self.pos)
        token = match.group() if match else "&"
        name = token[1:].rstrip(";")
        if name.startswith("#"):
            number = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
            if not 0 < number <= 0x10FFFF:
                raise self._error(f"Invalid HTML entity at byte offset {self._offset()}")
            self.visible.append(chr(number))
        elif name in _NAMED_ENTITIES:
            self.visible.append(_NAMED_ENTITIES[name])
        elif token.endswith(";"):
            raise self._error(f'Unsupported HTML entity "{token}" at byte offset {self._offset()}')
        else:  # a bare "&", as in "AT&T": Telegram keeps it as text
            token = "&"
            self.visible.append(token)
        self.pos += len(token)

    def _start_tag(self) -> None:
        name_match = _TAG_NAME.match(self.text, self.pos)
        name = name_match.group(1).lower() if name_match else ""
        if not name:
            raise self._error(f"Unexpected end of name token at byte offset {self._offset()}")
        if name not in _ALLOWED_TAGS:
            raise self._error(f'Unsupported start tag "{name}" at byte offset {self._offset()}')
        tag = _START_TAG.match(self.text, self.pos)
        if tag is None:
            raise self._error(f"Unclosed start tag at byte offset {self._offset()}")
        attributes = {m[0].lower(): m[1] or m[2] or m[3] for m in _ATTRIBUTE.findall(tag[1])}
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise self._error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self._offset()}'
            )
        self.open_tags.append(name)
        self.pos = tag.end()

    def _end_tag(self) -> None:
        tag = _END_TAG.match(self.text, self.pos)
        if tag is None:
            raise self._error(f"Unclosed end tag at byte offset {self._offset()}")
        name = tag[1].lower()
        if not self.open_tags:
            raise self._error(f'Unexpected end tag "{name}" at byte offset {self._offset()}')
        if name != self.open_tags[-1]:
            expected = self.open_tags[-1]
            raise self._error(
                f'Unmatched end tag at byte offset {self._offset()}, expected "</{expected}>", '
                f'found "</{name}>"'
            )
        self.open_tags.pop()
        self.pos = tag.end()


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a user sees once entities are parsed (only HTML is parsed; others pass through)."""
    if parse_mode and parse_mode.lower() == "html":
        return _HtmlReader(text).read()
    return text


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji usually counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def checked_text(text: str, parse_mode: str | None, *, caption: bool = False) -> str:
    """Validate a message text or caption like the Bot API and return its visible text."""
    visible = visible_text(text, parse_mode)
    if caption:
        if telegram_length(visible.strip()) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        return visible
    if not visible.strip():
        raise bad_request("message text is empty")
    if telegram_length(visible.strip()) > TEXT_LIMIT:
        raise bad_request("message is too long")
    return visible


def checked_markup(markup: Any) -> JSONDict | None:
    """Validate an inline keyboard (callback_data 1..64 bytes); None when there is none."""
    if not markup:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup if markup.get("inline_keyboard") or "keyboard" in markup else None


# --- Flood control -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Telegram's (unpublished, approximate) flood limits for sending messages."""

    overall_per_second: int = 30
    private_per_second: int = 1
    group_per_minute: int = 20


class FloodControl:
    """Sliding-window counters that say how long a send must wait, if at all."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._overall: deque[float] = deque()
        self._per_chat: dict[int, deque[float]] = {}

    def admit(self, chat_id: int, now: float) -> int | None:
        """Count a send to chat_id and return None, or return the seconds to wait (not counted)."""
        chat = self._per_chat.setdefault(chat_id, deque())
        if chat_id > 0:
            chat_window = (chat, 1.0, self.limits.private_per_second)
        else:
            chat_window = (chat, 60.0, self.limits.group_per_minute)
        for stamps, span, cap in (
            (self._overall, 1.0, self.limits.overall_per_second),
            chat_window,
        ):
            while stamps and stamps[0] <= now - span:
                stamps.popleft()
            if len(stamps) >= cap:
                return max(1, math.ceil(stamps[0] + span - now))
        self._overall.append(now)
        chat.append(now)
        return None


# --- Records -----------------------------------------------------------------------------------


class Call(NamedTuple):
    """One request the fake received, whatever it answered."""

    method: str
    params: Params
    at: float


@dataclass(frozen=True)
class SentMessage:
    """A message the fake delivered: what the bot sent and the Message it answered."""

    method: str
    chat_id: int
    message_id: int
    text: str | None  # text or caption exactly as sent (markup included)
    parse_mode: str | None
    visible_text: str | None
    reply_markup: JSONDict | None
    photo: str | None
    message: JSONDict
    at: float


@dataclass(frozen=True)
class Edit:
    """An accepted edit of a message's text or keyboard."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    reply_markup: JSONDict | None
    at: float


@dataclass
class _Failure:
    method: str
    error: ApiError
    chat_id: int | str | None
    times: int


@dataclass
class _Delay:
    method: str
    seconds: float
    times: int


@dataclass
class _Poll:
    generation: int = 0
    webhook_url: str = ""
    updates: list[JSONDict] = field(default_factory=list)
    next_update_id: int = 100_000


# --- The fake ----------------------------------------------------------------------------------


class FakeTelegram:
    """A Bot API impersonation on 127.0.0.1; ``start()`` it, point PTB at ``base_url``."""

    def __init__(
        self,
        *,
        enforce_limits: bool = False,
        limits: Limits | None = None,
        token: str = TOKEN,
        long_poll_cap: float = 1.0,
        callback_ttl: float = 15.0,
    ) -> None:
        self.token = token
        self.long_poll_cap = long_poll_cap
        self.callback_ttl = callback_ttl
        self._flood = FloodControl(limits or Limits()) if enforce_limits else None
        self._cond = threading.Condition()  # guards all state below; an RLock inside
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._calls: list[Call] = []
        self._sent: list[SentMessage] = []
        self._edits: list[Edit] = []
        self._deleted: list[tuple[int, int]] = []
        self._answered: list[JSONDict] = []
        self._count_429 = 0
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._sources: dict[tuple[int, int], str] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._chats: dict[int, JSONDict] = {}
        self._bot_rights: dict[int, JSONDict] = {}  # chats where the bot is an administrator
        self._usernames: dict[str, int] = {}
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._gone: set[int] = set()
        self._failures: list[_Failure] = []
        self._delays: list[_Delay] = []
        self._callbacks: dict[str, float] = {}
        self._callback_ids = itertools.count(7_000_000_000)
        self._commands: dict[str, list[JSONDict]] = {}
        self._poll = _Poll()
        self._methods = self._method_table()
        self._httpd = _Server(self)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    # lifecycle

    def start(self) -> FakeTelegram:
        """Serve in a background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake long polls and drop open connections."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._httpd.shutdown()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as PTB's ``base_url``."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """What to pass as PTB's ``base_file_url`` (file downloads answer 404)."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # chats and failure scripting

    def add_chat(
        self,
        chat_id: int,
        chat_type: str,
        *,
        title: str | None = None,
        username: str | None = None,
        bot_admin: bool = False,
        bot_can_post: bool = True,
    ) -> None:
        """Declare a chat (e.g. a channel with an @username); others get defaults from the id.

        The bot is an administrator there with ``bot_admin`` (allowed to post unless
        ``bot_can_post`` is false); otherwise a plain member of a group, and nothing in a
        channel (where getChatMember then answers "member list is inaccessible", as Telegram
        does). getChat and getChatMember answer "chat not found" for chats never declared.
        """
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = title or f"Chat {chat_id}"
        with self._cond:
            if username:
                chat["username"] = username.lstrip("@")
                self._usernames[chat["username"].lower()] = chat_id
            self._chats[chat_id] = chat
            self._bot_rights.pop(chat_id, None)
            if bot_admin:
                self._bot_rights[chat_id] = {"can_post_messages": bot_can_post}

    def block(self, chat_id: int) -> None:
        """Every call to that chat answers 403 "bot was blocked by the user"."""
        with self._cond:
            self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """Undo ``block``."""
        with self._cond:
            self._blocked.discard(chat_id)

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """Calls to the old group id answer 400 with ``migrate_to_chat_id``."""
        with self._cond:
            self._migrated[chat_id] = new_chat_id
            self._chats.setdefault(new_chat_id, {"id": new_chat_id, "type": "supergroup"})
            self._chats[new_chat_id].setdefault("title", f"Chat {new_chat_id}")

    def delete_chat(self, chat_id: int) -> None:
        """Calls to that chat answer 400 "chat not found"."""
        with self._cond:
            self._gone.add(chat_id)

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        chat_id: int | str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` (to ``chat_id`` only, if given) fail so."""
        parameters: JSONDict = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        if description is None:
            description = DEFAULT_DESCRIPTIONS.get(error_code, "Internal Server Error")
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after or 1}"
        error = ApiError(error_code, description, parameters)
        with self._cond:
            self._failures.append(_Failure(method, error, chat_id, times))

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` late; they take effect all the same."""
        with self._cond:
            self._delays.append(_Delay(method, seconds, times))

    # users

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queue a raw update for getUpdates (update_id added if missing); returns it."""
        with self._cond:
            if "update_id" not in update:
                update = {"update_id": self._poll.next_update_id, **update}
            self._poll.next_update_id = max(self._poll.next_update_id, update["update_id"]) + 1
            self._poll.updates.append(update)
            self._cond.notify_all()
            return update

    def user_sends(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Marie",
        language_code: str = "fr",
        chat_id: int | None = None,
    ) -> JSONDict:
        """A user writes to the bot ("/cmd args" gets a bot_command entity); returns the update."""
        with self._cond:
            message = self._user_message(user_id, first_name, language_code, chat_id)
            message["text"] = text
            command = re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text)
            if command:
                length = telegram_length(command.group())
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            return self.push_update({"message": message})

    def user_sends_photo(
        self,
        user_id: int,
        caption: str | None = None,
        *,
        first_name: str = "Marie",
        language_code: str = "fr",
        chat_id: int | None = None,
    ) -> JSONDict:
        """A user sends a photo (with an optional caption); returns the update."""
        with self._cond:
            message = self._user_message(user_id, first_name, language_code, chat_id)
            message["photo"] = _photo_sizes(f"user-{user_id}-{message['message_id']}", 54_321)
            if caption:
                message["caption"] = caption
            return self.push_update({"message": message})

    def user_presses(
        self,
        user_id: int,
        message: SentMessage | Mapping[str, Any],
        data: str | None,
        *,
        first_name: str = "Marie",
        language_code: str = "fr",
    ) -> JSONDict:
        """A user presses an inline button of ``message``; returns the callback_query update.

        ``data=None`` presses a game button: the query has a game_short_name and no data."""
        shown = message.message if isinstance(message, SentMessage) else dict(message)
        with self._cond:
            key = (shown["chat"]["id"], shown["message_id"])
            query_id = str(next(self._callback_ids))
            self._callbacks[query_id] = time.monotonic()
            query = {
                "id": query_id,
                "from": self._user(user_id, first_name, language_code),
                "message": self._messages.get(key, shown),
                "chat_instance": str(abs(hash(key[0]))),
            }
            query.update({"data": data} if data is not None else {"game_short_name": "game"})
            return self.push_update({"callback_query": query})

    def user_blocks(self, user_id: int) -> JSONDict:
        """A user blocks the bot: sends now fail with 403, and a my_chat_member update arrives."""
        self.block(user_id)
        with self._cond:
            user = self._user(user_id, "Marie", "fr")
            change = {
                "chat": self._chat(user_id),
                "from": user,
                "date": int(time.time()),
                "old_chat_member": {"user": BOT_USER, "status": "member"},
                "new_chat_member": {"user": BOT_USER, "status": "kicked", "until_date": 0},
            }
            return self.push_update({"my_chat_member": change})

    # recording

    @property
    def calls(self) -> list[Call]:
        """Every request received, in order."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Params]:
        """The parameters of every call of ``method``."""
        return [call.params for call in self.calls if call.method == method]

    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Messages delivered (to ``chat_id``, if given), in order."""
        with self._cond:
            return [m for m in self._sent if chat_id is None or m.chat_id == chat_id]

    def edits(self, chat_id: int | None = None) -> list[Edit]:
        """Accepted edits (in ``chat_id``, if given), in order."""
        with self._cond:
            return [e for e in self._edits if chat_id is None or e.chat_id == chat_id]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """A message as it currently stands (after edits), or None if deleted or unknown."""
        with self._cond:
            return self._messages.get((chat_id, message_id))

    @property
    def deleted(self) -> list[tuple[int, int]]:
        """(chat_id, message_id) of deleted messages."""
        with self._cond:
            return list(self._deleted)

    @property
    def answered_callbacks(self) -> list[JSONDict]:
        """The parameters of accepted answerCallbackQuery calls."""
        with self._cond:
            return list(self._answered)

    @property
    def pending_updates(self) -> int:
        """Updates queued for getUpdates that the bot has not fetched and confirmed yet."""
        with self._cond:
            return len(self._poll.updates)

    @property
    def count_429(self) -> int:
        """How many 429 answers were given (flood limits and injected)."""
        with self._cond:
            return self._count_429

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """The bot commands set for a scope and language."""
        with self._cond:
            return list(self._commands.get(_commands_key(scope, language_code), []))

    # waiting

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` holds (re-checked after each request); for sync code only."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"condition not met within {timeout} s")

    async def wait_for_async(  # a built-in deadline keeps a failing test from hanging
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait, without blocking the event loop, until ``predicate()`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    async def wait_for_sent(
        self,
        count: int,
        *,
        chat_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Wait until at least ``count`` messages were delivered (to ``chat_id``); returns them."""
        await self.wait_for_async(lambda: len(self.sent(chat_id)) >= count, timeout)
        return self.sent(chat_id)

    # serving

    def handle(self, path: str, content_type: str, body: bytes) -> tuple[int, JSONDict, float]:
        """Answer one HTTP request: (status, JSON body, seconds to wait before answering)."""
        url = urlsplit(path)
        route = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", url.path)
        if route is None:
            return 404, ApiError(404, "Not Found").body(), 0.0
        if route[1] != self.token:
            return 401, ApiError(401, "Unauthorized").body(), 0.0
        method = self._methods.get(route[2].lower())
        if method is None:
            return 404, ApiError(404, "Not Found").body(), 0.0
        params = _decode_request(content_type, body, url.query)
        with self._cond:
            status, answer, delay = self._answer(method[0], method[1], params)
            self._cond.notify_all()
        return status, answer, delay

    def pause(self, seconds: float) -> None:
        """Sleep in a server thread, cut short when the fake stops."""
        self._stopping.wait(seconds)

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Remember open connections so stop() can close them."""
        with self._cond:
            (self._connections.add if open_ else self._connections.discard)(conn)

    def _answer(
        self, name: str, method: Callable[[Params], Any], params: Params
    ) -> tuple[int, JSONDict, float]:
        self._calls.append(Call(name, params, time.time()))
        delay = self._take_delay(name)
        try:
            self._raise_injected(name, params)
            return 200, {"ok": True, "result": method(params)}, delay
        except ApiError as error:
            if error.code == 429:
                self._count_429 += 1
            return error.code, error.body(), delay

    def _take_delay(self, name: str) -> float:
        for rule in self._delays:
            if rule.method == name:
                rule.times -= 1
                if rule.times <= 0:
                    self._delays.remove(rule)
                return rule.seconds
        return 0.0

    def _raise_injected(self, name: str, params: Params) -> None:
        target = params.get("chat_id")
        for rule in self._failures:
            if rule.method == name and rule.chat_id in (None, target):
                rule.times -= 1
                if rule.times <= 0:
                    self._failures.remove(rule)
                raise rule.error

    def _method_table(self) -> dict[str, tuple[str, Callable[[Params], Any]]]:
        methods: dict[str, Callable[[Params], Any]] = {
            "getMe": lambda _: BOT_USER,
            "logOut": lambda _: True,
            "close": lambda _: True,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
        }
        return {name.lower(): (name, handler) for name, handler in methods.items()}

    # chats, users and messages

    def _user(self, user_id: int, first_name: str, language_code: str) -> JSONDict:
        self._chats.setdefault(user_id, {"id": user_id, "type": "private"})
        self._chats[user_id]["first_name"] = first_name
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }

    def _chat(self, chat_id: int) -> JSONDict:
        if chat_id in self._chats:
            return dict(self._chats[chat_id])
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Marie"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _new_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _user_message(
        self, user_id: int, first_name: str, language_code: str, chat_id: int | None
    ) -> JSONDict:
        user = self._user(user_id, first_name, language_code)
        chat_id = user_id if chat_id is None else chat_id
        message_id = self._new_message_id(chat_id)
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": user,
        }
        self._messages[(chat_id, message_id)] = message
        return message

    def _target_chat(self, params: Params) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            if raw[1:].lower() not in self._usernames:
                raise bad_request("chat not found")
            chat_id = self._usernames[raw[1:].lower()]
        else:
            chat_id = int(raw)
        if chat_id in self._gone:
            raise bad_request("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        return chat_id

    def _stored(self, chat_id: int, params: Params, not_found: str) -> JSONDict:
        message = self._messages.get((chat_id, int(params.get("message_id", 0))))
        if message is None:
            raise bad_request(not_found)
        return message

    def _admit(self, chat_id: int) -> None:
        if self._flood is not None:
            wait = self._flood.admit(chat_id, time.monotonic())
            if wait is not None:
                raise flood_error(wait)

    def _deliver(self, method: str, chat_id: int, params: Params, content: JSONDict) -> JSONDict:
        chat = self._chat(chat_id)
        sender = {"sender_chat": chat} if chat["type"] == "channel" else {"from": BOT_USER}
        message_id = self._new_message_id(chat_id)
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat, **sender}
        message.update(content)
        source = params.get("text", params.get("caption"))
        self._messages[(chat_id, message_id)] = message
        self._sources[(chat_id, message_id)] = source or ""
        photo = params.get("photo")
        self._sent.append(
            SentMessage(
                method=method,
                chat_id=chat_id,
                message_id=message_id,
                text=source,
                parse_mode=params.get("parse_mode"),
                visible_text=content.get("text", content.get("caption")),
                reply_markup=content.get("reply_markup"),
                photo=f"<upload of {len(photo)} bytes>" if isinstance(photo, bytes) else photo,
                message=message,
                at=time.time(),
            )
        )
        return message

    # methods

    def _send_message(self, params: Params) -> JSONDict:
        chat_id = self._target_chat(params)
        text = checked_text(str(params.get("text", "")), params.get("parse_mode"))
        content = _with_markup({"text": text}, checked_markup(params.get("reply_markup")))
        self._admit(chat_id)
        return self._deliver("sendMessage", chat_id, params, content)

    def _send_photo(self, params: Params) -> JSONDict:
        chat_id = self._target_chat(params)
        photo = params.get("photo")
        if not photo:
            raise bad_request("there is no photo in the request")
        content: JSONDict = {"photo": _photo_sizes(f"photo-{chat_id}-{len(self._sent)}", 45_678)}
        if params.get("caption"):
            content["caption"] = checked_text(
                str(params["caption"]), params.get("parse_mode"), caption=True
            )
        content = _with_markup(content, checked_markup(params.get("reply_markup")))
        self._admit(chat_id)
        return self._deliver("sendPhoto", chat_id, params, content)

    def _edit_message_text(self, params: Params) -> JSONDict:
        chat_id = self._target_chat(params)
        message = self._stored(chat_id, params, "message to edit not found")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        source = str(params.get("text", ""))
        text = checked_text(source, params.get("parse_mode"))
        markup = checked_markup(params.get("reply_markup"))
        key = (chat_id, message["message_id"])
        same_text = text == message["text"] and source == self._sources.get(key)
        if same_text and markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        message["text"] = text
        self._sources[key] = source
        return self._record_edit("editMessageText", message, params, markup)

    def _edit_message_reply_markup(self, params: Params) -> JSONDict:
        chat_id = self._target_chat(params)
        message = self._stored(chat_id, params, "message to edit not found")
        markup = checked_markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        return self._record_edit("editMessageReplyMarkup", message, params, markup)

    def _record_edit(
        self, method: str, message: JSONDict, params: Params, markup: JSONDict | None
    ) -> JSONDict:
        message.pop("reply_markup", None)
        message.update(_with_markup({"edit_date": int(time.time())}, markup))
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        text, parse_mode = params.get("text"), params.get("parse_mode")
        self._edits.append(Edit(method, chat_id, message_id, text, parse_mode, markup, time.time()))
        return message

    def _delete_message(self, params: Params) -> bool:
        chat_id = self._target_chat(params)
        message = self._stored(chat_id, params, "message to delete not found")
        del self._messages[(chat_id, message["message_id"])]
        self._deleted.append((chat_id, message["message_id"]))
        return True

    def _answer_callback_query(self, params: Params) -> bool:
        asked_at = self._callbacks.pop(str(params.get("callback_query_id")), None)
        if asked_at is None or time.monotonic() - asked_at > self.callback_ttl:
            raise bad_request(QUERY_TOO_OLD)
        self._answered.append(params)
        return True

    def _set_my_commands(self, params: Params) -> bool:
        commands = params.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        self._commands[key] = commands
        return True

    def _get_my_commands(self, params: Params) -> list[JSONDict]:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        return self._commands.get(key, [])

    def _delete_my_commands(self, params: Params) -> bool:
        self._commands.pop(
            _commands_key(params.get("scope"), params.get("language_code", "")), None
        )
        return True

    def _set_webhook(self, params: Params) -> bool:
        self._poll.webhook_url = str(params.get("url", ""))
        if params.get("drop_pending_updates"):
            self._poll.updates.clear()
        self._poll.generation += 1
        return True

    def _delete_webhook(self, params: Params) -> bool:
        return self._set_webhook({**params, "url": ""})

    def _get_webhook_info(self, _: Params) -> JSONDict:
        return {
            "url": self._poll.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._poll.updates),
        }

    def _get_updates(self, params: Params) -> list[JSONDict]:
        if self._poll.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._confirm_updates(int(params.get("offset", 0)))
        self._poll.generation += 1
        generation = self._poll.generation
        self._cond.notify_all()
        deadline = time.monotonic() + min(float(params.get("timeout", 0)), self.long_poll_cap)
        while not self._poll.updates and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
            if self._poll.generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
        return self._poll.updates[: int(params.get("limit", 100))]

    def _confirm_updates(self, offset: int) -> None:
        updates = self._poll.updates
        if offset < 0:
            self._poll.updates = updates[offset:]
        elif offset > 0:
            self._poll.updates = [u for u in updates if u["update_id"] >= offset]

    def _get_chat(self, params: Params) -> JSONDict:
        chat = self._chat(self._declared_chat(params))
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"), False
        )
        gifts["gifts_from_channels"] = False
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    def _get_chat_member(self, params: Params) -> JSONDict:
        chat_id = self._declared_chat(params)
        chat = self._chats[chat_id]
        user_id = int(params.get("user_id", 0))
        if user_id != BOT_ID:
            if chat["type"] == "private" and user_id == chat_id:
                return {"user": self._user(user_id, "Marie", "fr"), "status": "member"}
            raise bad_request("user not found")
        if chat_id in self._bot_rights:
            return _bot_administrator(chat["type"], self._bot_rights[chat_id])
        if chat["type"] == "channel":
            raise bad_request("member list is inaccessible")
        return {"user": BOT_USER, "status": "member"}

    def _declared_chat(self, params: Params) -> int:
        """The target chat, which must have been declared: Telegram knows no other."""
        chat_id = self._target_chat(params)
        if chat_id not in self._chats:
            raise bad_request("chat not found")
        return chat_id


# --- HTTP plumbing -----------------------------------------------------------------------------


def _bot_administrator(chat_type: str, rights: JSONDict) -> JSONDict:
    """The bot's ChatMemberAdministrator, with the posting rights of `rights`."""
    flags = ("can_manage_chat", "can_delete_messages", "can_invite_users", "can_change_info")
    unset = ("can_manage_video_chats", "can_restrict_members", "can_promote_members")
    stories = ("can_post_stories", "can_edit_stories", "can_delete_stories")
    member: JSONDict = {"user": BOT_USER, "status": "administrator", "can_be_edited": False}
    member.update({"is_anonymous": False, **dict.fromkeys(flags + stories, True)})
    member.update(dict.fromkeys(unset, False))
    if chat_type == "channel":
        member["can_post_messages"] = bool(rights.get("can_post_messages", True))
        member["can_edit_messages"] = True
    return member


def _with_markup(content: JSONDict, markup: JSONDict | None) -> JSONDict:
    return {**content, "reply_markup": markup} if markup else content


def _photo_sizes(file_id: str, size: int) -> list[JSONDict]:
    return [
        {"file_id": f"{file_id}-s", "file_unique_id": f"{file_id}-s", "width": 90, "height": 67},
        {
            "file_id": file_id,
            "file_unique_id": file_id,
            "width": 800,
            "height": 600,
            "file_size": size,
        },
    ]


def _commands_key(scope: Any, language_code: Any) -> str:
    return json.dumps([scope or {"type": "default"}, language_code or ""], sort_keys=True)


# Parameters PTB sends as plain strings; every other value is JSON-encoded (numbers, objects).
_STRING_FIELDS = frozenset(
    {"text", "caption", "parse_mode", "callback_query_id", "photo", "url", "inline_message_id"}
    | {"language_code", "secret_token", "description", "short_description", "name", "data"}
)


def _decode_request(content_type: str, body: bytes, query: str) -> Params:
    """Parameters from the query string and a form, multipart or JSON body."""
    raw: dict[str, str | bytes] = dict(parse_qsl(query, keep_blank_values=True))
    if content_type.startswith("application/json"):
        return {**raw, **json.loads(body or b"{}")}
    if content_type.startswith("multipart/form-data"):
        raw.update(_multipart_fields(content_type, body))
    elif body:
        raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    return {name: _decode_value(name, value) for name, value in raw.items()}


def _multipart_fields(content_type: str, body: bytes) -> Iterator[tuple[str, str | bytes]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        payload = cast(bytes, part.get_payload(decode=True) or b"")
        name = str(part.get_param("name", header="content-disposition"))
        yield name, payload if part.get_filename() else payload.decode()


def _decode_value(name: str, value: str | bytes) -> Any:
    if isinstance(value, bytes) or name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, shutdown) are normal here: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end eventually
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    @property
    def fake(self) -> FakeTelegram:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        self.fake.track(self.connection, open_=True)

    def finish(self) -> None:
        self.fake.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer, delay = self.fake.handle(
            self.path, self.headers.get("Content-Type", ""), body
        )
        if delay:
            self.fake.pause(delay)
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. its read timeout): the call still happened
            self.close_connection = True


def fake_telegram_fixture(**options: Any) -> Iterator[FakeTelegram]:
    """Body of a pytest fixture: a started FakeTelegram, stopped afterwards."""
    fake = FakeTelegram(**options).start()
    try:
        yield fake
    finally:
        fake.stop()
