"""The webhook parser: every W-API shape it must read, and its one promise under attack.

Whatever JSON value arrives, `parse_webhook` returns a `WebhookEvent` or raises
`PayloadError`; the hypothesis tests at the end throw arbitrary JSON at it, whole and
field by field, to hold it to that.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediamon.core.errors import PayloadError
from mediamon.core.models import MediaInfo, MediaKind, WebhookEvent
from mediamon.core.payload import MAX_ID_LENGTH, parse_webhook
from tests.fakes.payloads import (
    WRAPPERS,
    lowercase_keys,
    media_message,
    sample_bytes,
    text_message,
    webhook,
)
from tests.fakes.registry import MediaRegistry, b64

INSTANCE = "3B6XIW-ZTS923-GEAY6V"
MESSAGE_ID = "876A6DD9A41B758E8173C5636C810B17"

# (msgContent key, kind, mimetype) for each media message W-API delivers.
MEDIA_KEYS = [
    ("imageMessage", MediaKind.IMAGE, "image/jpeg"),
    ("videoMessage", MediaKind.VIDEO, "video/mp4"),
    ("ptvMessage", MediaKind.VIDEO, "video/mp4"),
    ("audioMessage", MediaKind.AUDIO, "audio/ogg; codecs=opus"),
    ("documentMessage", MediaKind.DOCUMENT, "application/pdf"),
    ("stickerMessage", MediaKind.STICKER, "image/webp"),
]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _block(kind: MediaKind = MediaKind.IMAGE, mimetype: str = "image/jpeg", **extra: Any) -> Any:
    return MediaRegistry().add(sample_bytes(kind, 1000), kind, mimetype, **extra)


def _media_body(block: dict[str, Any] | None = None, **hook: Any) -> dict[str, Any]:
    content = media_message(MediaKind.IMAGE, block if block is not None else _block())
    return webhook(INSTANCE, content, message_id=MESSAGE_ID, **hook)


def _lowercase_everywhere(value: Any) -> Any:
    if isinstance(value, dict):
        return {key.lower(): _lowercase_everywhere(inner) for key, inner in value.items()}
    return value


def _media(body: dict[str, Any]) -> MediaInfo:
    media = parse_webhook(body).media
    assert media is not None
    return media


def _problem(body: dict[str, Any]) -> str:
    """The problem of a media message that must still come back as image media."""
    media = _media(body)
    assert media.kind is MediaKind.IMAGE
    assert media.problem is not None
    return media.problem


# Every kind, as the registry builds it.


@pytest.mark.parametrize(("key", "kind", "mimetype"), MEDIA_KEYS, ids=[k for k, _, _ in MEDIA_KEYS])
def test_every_media_kind_parses_with_its_fields(key: str, kind: MediaKind, mimetype: str) -> None:
    registry = MediaRegistry()
    plain = sample_bytes(kind, 4321)
    block = registry.add(plain, kind, mimetype)
    stored = registry.by_media_key(block["mediaKey"])
    assert stored is not None

    event = parse_webhook(webhook(INSTANCE, {key: block}, message_id=MESSAGE_ID))

    media = event.media
    assert media is not None
    assert media.kind is kind
    assert media.mimetype == mimetype
    assert media.media_key == block["mediaKey"]
    assert media.direct_path == block["directPath"]
    assert media.file_sha256 == hashlib.sha256(plain).hexdigest()
    assert media.file_enc_sha256 == hashlib.sha256(stored.blob).hexdigest()
    assert media.file_length == 4321
    assert media.problem is None
    assert event.message_id == MESSAGE_ID
    assert event.instance_id == INSTANCE


def test_event_fields_are_read_from_the_delivery() -> None:
    body = _media_body(chat_id="120363000000000000@g.us", is_group=True, moment=1748896286)
    body["sender"]["id"] = "5569922222222"

    event = parse_webhook(body)

    assert event.event == "webhookReceived"
    assert (event.chat_id, event.sender_id, event.sender_name) == (
        "120363000000000000@g.us",
        "5569922222222",
        "Maria",
    )
    assert (event.is_group, event.from_me, event.moment) == (True, False, 1748896286)


@pytest.mark.parametrize("ptt", [True, False])
def test_audio_keeps_seconds_and_ptt(ptt: bool) -> None:
    block = _block(MediaKind.AUDIO, "audio/ogg; codecs=opus", seconds=7, ptt=ptt)
    body = webhook(INSTANCE, media_message(MediaKind.AUDIO, block), message_id=MESSAGE_ID)

    media = parse_webhook(body).media

    assert media is not None
    assert (media.kind, media.seconds, media.ptt) == (MediaKind.AUDIO, 7, ptt)
    assert media.mimetype == "audio/ogg; codecs=opus"


def test_video_keeps_seconds() -> None:
    block = _block(MediaKind.VIDEO, "video/mp4", seconds=31)
    body = webhook(INSTANCE, media_message(MediaKind.VIDEO, block), message_id=MESSAGE_ID)

    media = parse_webhook(body).media

    assert media is not None
    assert media.seconds == 31


def test_document_keeps_its_file_name_and_caption() -> None:
    block = _block(
        MediaKind.DOCUMENT, "application/pdf", fileName="Relatório Final.pdf", caption="segue"
    )
    body = webhook(INSTANCE, media_message(MediaKind.DOCUMENT, block), message_id=MESSAGE_ID)

    media = parse_webhook(body).media

    assert media is not None
    assert (media.file_name, media.caption) == ("Relatório Final.pdf", "segue")


def test_missing_mimetype_falls_back_to_the_kind_default() -> None:
    block = _block(MediaKind.STICKER, "image/webp")
    del block["mimetype"]
    body = webhook(INSTANCE, media_message(MediaKind.STICKER, block), message_id=MESSAGE_ID)

    media = parse_webhook(body).media

    assert media is not None
    assert media.mimetype == "image/webp"


# Wrappers and spellings.


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_media_inside_each_wrapper_is_found(wrapper: str) -> None:
    content = media_message(
        MediaKind.DOCUMENT, _block(MediaKind.DOCUMENT, "application/pdf"), wrappers=[wrapper]
    )

    media = parse_webhook(webhook(INSTANCE, content, message_id=MESSAGE_ID)).media

    assert media is not None
    assert media.kind is MediaKind.DOCUMENT
    assert media.problem is None


@pytest.mark.parametrize(
    "wrappers",
    [(outer, inner) for outer in WRAPPERS for inner in WRAPPERS if outer != inner]
    + [tuple(WRAPPERS), tuple(reversed(WRAPPERS))],
    ids=lambda wrappers: ">".join(wrappers),
)
def test_media_inside_nested_wrappers_is_found(wrappers: tuple[str, ...]) -> None:
    content = media_message(
        MediaKind.AUDIO, _block(MediaKind.AUDIO, "audio/ogg"), wrappers=wrappers
    )

    media = parse_webhook(webhook(INSTANCE, content, message_id=MESSAGE_ID)).media

    assert media is not None
    assert media.kind is MediaKind.AUDIO


def test_wrappers_nested_100_deep_are_refused() -> None:
    content: dict[str, Any] = media_message(MediaKind.IMAGE, _block())
    for depth in range(100):
        content = {WRAPPERS[depth % len(WRAPPERS)]: {"message": content}}

    with pytest.raises(PayloadError, match="msgContent"):
        parse_webhook(webhook(INSTANCE, content, message_id=MESSAGE_ID))


@pytest.mark.parametrize("every_key", [False, True], ids=["instanceid-msgcontent", "top-level"])
def test_lowercase_top_level_keys_are_read(every_key: bool) -> None:
    body = lowercase_keys(_media_body(), every_key=every_key)
    assert "instanceid" in body
    assert "msgcontent" in body

    event = parse_webhook(body)

    assert event.instance_id == INSTANCE
    assert event.message_id == MESSAGE_ID
    assert event.media is not None
    assert event.media.problem is None


def test_lowercase_keys_all_the_way_down_are_read() -> None:
    block = _block(MediaKind.DOCUMENT, "application/pdf", fileName="a.pdf")
    content = media_message(MediaKind.DOCUMENT, block, wrappers=["ephemeralMessage"])
    body = _lowercase_everywhere(webhook(INSTANCE, content, message_id=MESSAGE_ID))
    assert "documentmessage" in body["msgcontent"]["ephemeralmessage"]["message"]

    event = parse_webhook(body)

    media = event.media
    assert media is not None
    assert media.kind is MediaKind.DOCUMENT
    assert media.problem is None
    assert (media.media_key, media.direct_path) == (block["mediaKey"], block["directPath"])
    assert media.file_length == 1000
    assert media.file_name == "a.pdf"
    assert event.sender_name == "Maria"


def test_camel_case_wins_over_lowercase_when_both_are_sent() -> None:
    body = _media_body()
    body["instanceid"] = "lowercase-instance"

    assert parse_webhook(body).instance_id == INSTANCE


# Events that carry no media.


@pytest.mark.parametrize("extended", [False, True], ids=["conversation", "extendedTextMessage"])
def test_text_has_no_media(extended: bool) -> None:
    body = webhook(INSTANCE, text_message("oi", extended=extended), message_id=MESSAGE_ID)

    event = parse_webhook(body)

    assert event.media is None
    assert event.message_id == MESSAGE_ID


STATUS = {
    "event": "webhookStatus",
    "instanceId": INSTANCE,
    "messageId": MESSAGE_ID,
    "status": "READ",
}
PRESENCE = {"event": "webhookPresence", "instanceId": INSTANCE, "presence": "composing"}
CONNECTED = {"event": "webhookConnected", "instanceId": INSTANCE, "connected": True}
DISCONNECTED = {"event": "webhookDisconnected", "instanceId": INSTANCE, "connected": False}


@pytest.mark.parametrize(
    "body",
    [STATUS, PRESENCE, CONNECTED, DISCONNECTED, {"instanceId": INSTANCE}],
    ids=["status", "presence", "connected", "disconnected", "bare"],
)
def test_events_without_msg_content_have_no_media(body: dict[str, Any]) -> None:
    event = parse_webhook(body)

    assert event.media is None
    assert event.instance_id == INSTANCE
    assert event.event == body.get("event", "unknown")


def test_a_delivery_of_our_own_message_is_from_me() -> None:
    event = parse_webhook(_media_body(event="webhookDelivery", from_me=True))

    assert (event.event, event.from_me) == ("webhookDelivery", True)
    assert event.media is not None


@pytest.mark.parametrize("content", [{}, {"unknownMessage": {}}, {"imageMessage": "x"}, [], "x"])
def test_msg_content_without_a_media_block_has_no_media(content: Any) -> None:
    body = webhook(INSTANCE, {}, message_id=MESSAGE_ID)
    body["msgContent"] = content

    assert parse_webhook(body).media is None


# Media that can never be fetched is still an event, with the reason.


def test_missing_media_key_is_a_problem() -> None:
    block = _block()
    del block["mediaKey"]

    assert "mediaKey" in _problem(_media_body(block))


def test_missing_direct_path_is_a_problem() -> None:
    block = _block()
    del block["directPath"]

    assert "directPath" in _problem(_media_body(block))


@pytest.mark.parametrize("value", ["not base64!", "%%%%", 12345, ["a"], "éé=="])
def test_media_key_that_is_not_base64_is_a_problem(value: Any) -> None:
    problem = _problem(_media_body(_block(mediaKey=value)))

    assert "mediaKey" in problem
    assert "base64" in problem


def test_media_key_of_31_bytes_is_a_problem() -> None:
    problem = _problem(_media_body(_block(mediaKey=b64(bytes(31)))))

    assert "mediaKey is 31 bytes, expected 32" in problem


@pytest.mark.parametrize("value", ["garbage!!", b64(bytes(5)), 7])
def test_garbled_file_sha256_is_a_problem(value: Any) -> None:
    body = _media_body(_block(fileSha256=value))

    assert "fileSha256" in _problem(body)
    assert _media(body).file_sha256 is None


@pytest.mark.parametrize(
    "value", ["abc", "-5", "1.5", 1.5, True, "", "²", "99999999999999999999", 2**64]
)
def test_file_length_that_is_not_a_byte_count_is_a_problem(value: Any) -> None:
    body = _media_body(_block(fileLength=value))

    assert "fileLength" in _problem(body)
    assert _media(body).file_length is None


@pytest.mark.parametrize("value", [76970, 76970.0, " 76970 "])
def test_file_length_may_be_a_number_or_a_padded_string(value: Any) -> None:
    media = parse_webhook(_media_body(_block(fileLength=value))).media

    assert media is not None
    assert (media.file_length, media.problem) == (76970, None)


def test_every_problem_is_listed() -> None:
    block = _block(fileLength="abc")
    del block["mediaKey"], block["directPath"]

    problem = _problem(_media_body(block))

    assert all(name in problem for name in ("mediaKey", "directPath", "fileLength"))


def test_url_safe_unpadded_media_key_is_passed_on_in_standard_base64() -> None:
    key = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    url_safe = base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")
    assert "-" in url_safe or "_" in url_safe

    media = parse_webhook(_media_body(_block(mediaKey=url_safe))).media

    assert media is not None
    assert media.problem is None
    assert media.media_key == b64(key)


def test_odd_integers_elsewhere_are_dropped_quietly() -> None:
    body = _media_body(_block(seconds="²"), moment="²")

    event = parse_webhook(body)

    assert event.moment is None
    assert event.media is not None
    assert event.media.seconds is None


# Deliveries that cannot be used at all.


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instanceId": None}, "no instanceId"),
        ({"instanceId": ""}, "no instanceId"),
        ({"instanceId": 42}, "instanceId must be a string, not a number"),
        ({"instanceId": {"id": "x"}}, "instanceId must be a string, not an object"),
        ({"messageId": ["A", "B"]}, "messageId must be a string, not an array"),
        ({"messageId": True}, "messageId must be a string, not a boolean"),
        ({"messageId": "A" * (MAX_ID_LENGTH + 1)}, f"messageId is longer than {MAX_ID_LENGTH}"),
        ({"messageId": None}, "media message must carry a messageId"),
        ({"messageId": ""}, "media message must carry a messageId"),
    ],
)
def test_unusable_ids_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    body = _media_body()
    for name, value in change.items():
        if value is None:
            del body[name]
        else:
            body[name] = value

    with pytest.raises(PayloadError, match=message):
        parse_webhook(body)


def test_message_id_of_the_longest_allowed_length_is_kept() -> None:
    body = _media_body()
    body["messageId"] = "A" * MAX_ID_LENGTH

    assert parse_webhook(body).message_id == "A" * MAX_ID_LENGTH


@pytest.mark.parametrize(
    ("body", "kind"),
    [([], "an array"), ([{"instanceId": INSTANCE}], "an array"), ("{}", "a string"),
     (42, "a number"), (4.2, "a number"), (True, "a boolean"), (None, "null")],
)  # fmt: skip
def test_a_body_that_is_not_an_object_is_refused(body: object, kind: str) -> None:
    with pytest.raises(PayloadError, match=f"body must be a JSON object, not {kind}"):
        parse_webhook(body)


# Fuzzing: the promise holds for any JSON value.

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet="0123456789\u00b2\u00b3\u0663 -+.", max_size=25),
    st.text(alphabet="ABCDEFabcdef0123456789+/=-_ \n", max_size=60),
    st.sampled_from(["", "\ud800", "\x00", "A" * 200_000, "=" * 5, "Zm9v", MESSAGE_ID]),
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    ["instanceId", "messageId", "msgContent", "imageMessage", "documentMessage", "message",
     "mediaKey", "fileLength", "directPath", "fileSha256", "ephemeralMessage", "viewOnceMessageV2"]
)  # fmt: skip
# JSON whose objects use the keys the parser looks for, so the fuzz reaches past the top.
SHAPED_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)

_TOP_FIELDS = [
    "event", "instanceId", "messageId", "fromMe", "isGroup", "moment", "chat", "sender",
    "msgContent",
]  # fmt: skip
_BLOCK_FIELDS = [
    "url", "mimetype", "fileSha256", "fileLength", "mediaKey", "fileEncSha256", "directPath",
    "mediaKeyTimestamp", "fileName", "caption", "seconds", "ptt",
]  # fmt: skip
_INNER = ("msgContent", "ephemeralMessage", "message", "viewOnceMessageV2")
# Where a value can go in a document inside two wrappers: (path of keys, key to set).
_PLACES = (
    [((), field) for field in _TOP_FIELDS]
    + [(("chat",), "id"), (("sender",), "id"), (("sender",), "pushName")]
    + [(("msgContent",), "ephemeralMessage"), (("msgContent", "ephemeralMessage"), "message")]
    + [(_INNER, "message")]
    + [((*_INNER, "message"), "documentMessage")]
    + [((*_INNER, "message", "documentMessage"), field) for field in _BLOCK_FIELDS]
)


def _valid_document_body() -> dict[str, Any]:
    block = _block(MediaKind.DOCUMENT, "application/pdf", fileName="a.pdf", caption="c")
    wrappers = ["ephemeralMessage", "viewOnceMessageV2"]
    content = media_message(MediaKind.DOCUMENT, block, wrappers=wrappers)
    return webhook(INSTANCE, content, message_id=MESSAGE_ID)


VALID_BODY = _valid_document_body()


def _parses_or_refuses(body: object) -> WebhookEvent | None:
    """Parse, letting only PayloadError through; other exceptions fail the test."""
    try:
        return parse_webhook(body)
    except PayloadError as error:
        assert str(error)
        return None


def _with(body: dict[str, Any], path: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = _deep_copy(body)
    target = copy
    for step in path:
        target = target[step]
    target[key] = value
    return copy


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(inner) for key, inner in value.items()}
    return value


def test_the_fuzz_base_body_is_valid() -> None:
    media = parse_webhook(VALID_BODY).media

    assert media is not None
    assert (media.kind, media.problem, media.file_name) == (MediaKind.DOCUMENT, None, "a.pdf")


@FUZZ
@given(JSON)
def test_any_json_value_parses_or_is_refused(body: object) -> None:
    _parses_or_refuses(body)


@FUZZ
@given(st.dictionaries(_KEYS | st.text(max_size=12), SHAPED_JSON, max_size=6))
def test_any_object_with_familiar_keys_parses_or_is_refused(body: dict[str, Any]) -> None:
    _parses_or_refuses(body)


@FUZZ
@given(st.sampled_from(_PLACES), JSON | SHAPED_JSON)
def test_any_json_in_any_field_of_a_media_webhook_parses_or_is_refused(
    place: tuple[tuple[str, ...], str], value: Any
) -> None:
    path, key = place

    event = _parses_or_refuses(_with(VALID_BODY, path, key, value))

    if event is not None and event.media is not None:
        assert event.message_id is not None
        assert isinstance(event.media.mimetype, str)
        assert event.media.mimetype


_INTEGER_PLACES = [
    ((), "moment"),
    ((*_INNER, "message", "documentMessage"), "fileLength"),
    ((*_INNER, "message", "documentMessage"), "seconds"),
]
_NUMBER_LIKE = (
    st.text(alphabet="0123456789\u00b2\u00b3\u00b9\u0663\u0664\u0a67 \t-+._", max_size=24)
    | st.integers()
    | st.floats()
)


@FUZZ
@given(st.sampled_from(_INTEGER_PLACES), _NUMBER_LIKE)
def test_number_like_values_in_integer_fields_parse(
    place: tuple[tuple[str, ...], str], value: Any
) -> None:
    path, key = place

    event = parse_webhook(_with(VALID_BODY, path, key, value))

    assert event.media is not None
    numbers = (event.moment, event.media.file_length, event.media.seconds)
    assert all(number is None or -(2**63) <= number < 2**63 for number in numbers)


@FUZZ
@given(st.sampled_from(_PLACES), st.sampled_from(_PLACES), JSON, JSON)
def test_two_fields_changed_at_once_parse_or_are_refused(
    first: tuple[tuple[str, ...], str], second: tuple[tuple[str, ...], str], one: Any, two: Any
) -> None:
    body = _with(VALID_BODY, *first, one)
    # The first change may have removed the place of the second; then one change it is.
    with contextlib.suppress(KeyError, TypeError):
        body = _with(body, *second, two)

    _parses_or_refuses(body)
