"""Where media lands on disk, and that no value from a payload can steer it elsewhere.

Every path checked here goes through `_assert_safe`: relative, four parts, none empty,
`.` or `..`, no separator or control character, each part short enough for any file
system, and still under the root once joined and resolved.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediamon.core.layout import (
    extension_for,
    is_layout_folder,
    media_relpath,
    safe_component,
    safe_message_id,
)
from mediamon.core.models import MediaKind

CLIENT = "2"
INSTANCE = "3B6XIW-ZTS923-GEAY6V"
MESSAGE_ID = "876A6DD9A41B758E8173C5636C810B17"

HOSTILE = [
    "../../etc/passwd",
    "..",
    ".",
    "...",
    "a/b",
    "a\\b",
    "/abs",
    "/",
    "C:\\x",
    "C:",
    "a\x00b",
    "\x00",
    "\x01\x1f\x7f\x9f",
    "line\nbreak\r",
    "\t",
    " ",
    "x" * 10_000,
    "é" * 10_000,
    "🙂" * 10_000,
    "",
    "\u202egnp.exe",
    "\u200b\u2028\u2029\ufeff",
    "\ud800",
    "./.",
    "..\\..\\windows",
    "~",
    "-rf",
    "_",
]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _path(
    *,
    client: str = CLIENT,
    instance_id: str = INSTANCE,
    kind: MediaKind = MediaKind.IMAGE,
    message_id: str = MESSAGE_ID,
    mimetype: str = "image/jpeg",
    file_name: str | None = None,
) -> PurePosixPath:
    return media_relpath(
        client=client,
        instance_id=instance_id,
        kind=kind,
        message_id=message_id,
        mimetype=mimetype,
        file_name=file_name,
    )


def _assert_safe(relpath: PurePosixPath, root: Path) -> None:
    assert not relpath.is_absolute()
    assert len(relpath.parts) == 4
    for part in relpath.parts:
        assert part not in ("", ".", "..")
        assert "/" not in part
        assert "\\" not in part
        assert all(unicodedata.category(ch)[0] != "C" and ch.isprintable() for ch in part)
        assert len(part.encode("utf-8")) <= 255
    resolved = (root / relpath).resolve()
    assert resolved.is_relative_to(root.resolve())
    assert resolved != root.resolve()


# The layout itself.


@pytest.mark.parametrize(
    ("kind", "mimetype", "extension"),
    [
        (MediaKind.IMAGE, "image/jpeg", ".jpg"),
        (MediaKind.VIDEO, "video/mp4", ".mp4"),
        (MediaKind.AUDIO, "audio/ogg; codecs=opus", ".ogg"),
        (MediaKind.DOCUMENT, "application/pdf", ".pdf"),
        (MediaKind.STICKER, "image/webp", ".webp"),
    ],
)
def test_each_kind_has_its_folder(kind: MediaKind, mimetype: str, extension: str) -> None:
    relpath = _path(kind=kind, mimetype=mimetype)

    assert relpath == PurePosixPath(
        f"cliente_{CLIENT}", f"instance_{INSTANCE}", kind.value, f"{MESSAGE_ID}{extension}"
    )


@pytest.mark.parametrize(
    ("mimetype", "extension"),
    [
        ("image/jpeg", ".jpg"),
        ("image/png", ".png"),
        ("image/webp", ".webp"),
        ("video/mp4", ".mp4"),
        ("audio/ogg; codecs=opus", ".ogg"),
        ("audio/ogg;codecs=opus", ".ogg"),
        ("audio/mpeg", ".mp3"),
        ("audio/mp4", ".m4a"),
        ("application/pdf", ".pdf"),
        ("IMAGE/JPEG", ".jpg"),
        ("Audio/OGG; Codecs=Opus", ".ogg"),
        ("  application/PDF  ", ".pdf"),
        ("application/x-unknown", ".bin"),
        ("", ".bin"),
        ("image", ".bin"),
        ("../../etc/passwd", ".bin"),
    ],
)
def test_extension_table(mimetype: str, extension: str) -> None:
    assert extension_for(mimetype) == extension


def test_unknown_mimetype_gives_a_bin_file() -> None:
    assert _path(mimetype="application/x-whatever").name == f"{MESSAGE_ID}.bin"


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("Relatório Final.pdf", f"{MESSAGE_ID}_Relatório_Final.pdf"),
        ("Relatório de março.PDF", f"{MESSAGE_ID}_Relatório_de_março.pdf"),
        ("planilha.xlsx", f"{MESSAGE_ID}_planilha.xlsx"),
        ("backup.tar.gz", f"{MESSAGE_ID}_backup.tar.gz"),
        ("sem extensão", f"{MESSAGE_ID}_sem_extensão.pdf"),
        (".bashrc", f"{MESSAGE_ID}_bashrc.pdf"),
        ("Cafe\u0301.pdf", f"{MESSAGE_ID}_Café.pdf"),
        ("../../etc/passwd", f"{MESSAGE_ID}_etc_passwd.pdf"),
        ("???.pdf", f"{MESSAGE_ID}.pdf"),
        ("....", f"{MESSAGE_ID}.pdf"),
        ("", f"{MESSAGE_ID}.pdf"),
    ],
)
def test_a_document_keeps_its_cleaned_name_after_the_id(file_name: str, name: str) -> None:
    relpath = _path(kind=MediaKind.DOCUMENT, mimetype="application/pdf", file_name=file_name)

    assert relpath.parent == PurePosixPath(f"cliente_{CLIENT}", f"instance_{INSTANCE}", "document")
    assert relpath.name == name


def test_only_documents_keep_a_file_name() -> None:
    relpath = _path(kind=MediaKind.IMAGE, file_name="foto.png")

    assert relpath.name == f"{MESSAGE_ID}.jpg"


def test_a_long_document_name_is_cut_but_keeps_the_id_and_extension() -> None:
    relpath = _path(kind=MediaKind.DOCUMENT, file_name="ç" * 500 + ".docx")

    assert relpath.name.startswith(f"{MESSAGE_ID}_ççç")
    assert relpath.name.endswith("ç.docx")
    assert len(relpath.name.encode("utf-8")) <= 255


# Hostile values, one input at a time.


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_message_id_stays_inside(value: str, tmp_path: Path) -> None:
    relpath = _path(message_id=value)

    _assert_safe(relpath, tmp_path)
    assert relpath.suffix == ".jpg"


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_document_name_stays_inside(value: str, tmp_path: Path) -> None:
    relpath = _path(kind=MediaKind.DOCUMENT, mimetype="application/pdf", file_name=value)

    _assert_safe(relpath, tmp_path)
    assert relpath.name.startswith(MESSAGE_ID)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_instance_id_and_client_stay_inside(value: str, tmp_path: Path) -> None:
    relpath = _path(client=value, instance_id=value)

    _assert_safe(relpath, tmp_path)
    assert relpath.parts[0].startswith("cliente_")
    assert relpath.parts[1].startswith("instance_")


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_mimetype_stays_inside(value: str, tmp_path: Path) -> None:
    _assert_safe(_path(mimetype=value), tmp_path)
    _assert_safe(_path(kind=MediaKind.DOCUMENT, mimetype=value, file_name=value), tmp_path)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_safe_component_is_one_plain_part(value: str) -> None:
    part = safe_component(value)

    assert part not in ("", ".", "..")
    assert not part.startswith(".")
    assert "/" not in part
    assert "\\" not in part
    assert part.isprintable()
    assert len(part.encode("utf-8")) <= 120


def test_safe_component_keeps_accents_and_replaces_spaces() -> None:
    assert safe_component("João da Silva") == "João_da_Silva"


def test_a_clean_message_id_is_kept_as_it_is() -> None:
    assert safe_message_id(MESSAGE_ID) == MESSAGE_ID
    assert safe_message_id("3EB0C4F1A2_x-y") == "3EB0C4F1A2_x-y"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a/b", "a\\b"),
        ("a/b", "a_b"),
        ("a b", "a_b"),
        ("..", "."),
        ("", "_"),
        ("", "message"),
        ("é", "è"),
        ("x" * 64, "x" * 65),
        ("x" * 100, "x" * 101),
        ("../../etc/passwd", "etc/passwd"),
        ("\ud800", "\udfff"),
    ],
    ids=repr,
)
def test_ids_that_clean_alike_still_get_different_names(first: str, second: str) -> None:
    assert safe_message_id(first) != safe_message_id(second)
    for kind in MediaKind:
        assert _path(kind=kind, message_id=first) != _path(kind=kind, message_id=second)


# Hypothesis: any text in any of the four inputs.

_TEXT = st.text() | st.text(alphabet=st.sampled_from("./\\\x00\n :é_-A"), max_size=300)
_ANY_TEXT = _TEXT | st.sampled_from(HOSTILE) | st.text(min_size=200, max_size=2000)


@FUZZ
@given(
    client=_ANY_TEXT,
    instance_id=_ANY_TEXT,
    message_id=_ANY_TEXT,
    file_name=st.none() | _ANY_TEXT,
    kind=st.sampled_from(MediaKind),
    mimetype=_ANY_TEXT | st.sampled_from(["image/jpeg", "audio/ogg; codecs=opus"]),
)
def test_any_text_gives_a_safe_path(
    client: str,
    instance_id: str,
    message_id: str,
    file_name: str | None,
    kind: MediaKind,
    mimetype: str,
) -> None:
    relpath = _path(
        client=client,
        instance_id=instance_id,
        kind=kind,
        message_id=message_id,
        mimetype=mimetype,
        file_name=file_name,
    )

    _assert_safe(relpath, Path("/srv/media"))
    assert relpath.parts[2] == kind.value


@FUZZ
@given(st.lists(_ANY_TEXT, min_size=2, max_size=2, unique=True), st.sampled_from(MediaKind))
def test_different_message_ids_give_different_names(ids: list[str], kind: MediaKind) -> None:
    first, second = ids

    assert _path(kind=kind, message_id=first) != _path(kind=kind, message_id=second)


def test_every_folder_above_a_media_file_is_a_layout_folder_and_no_other_is() -> None:
    relpath = _path(kind=MediaKind.DOCUMENT, message_id=MESSAGE_ID, file_name="a b.pdf")
    above = [relpath.parents[n] for n in range(len(relpath.parts))]

    assert all(is_layout_folder(folder) for folder in above)
    assert not is_layout_folder(relpath)
    for other in ("notes", "cliente_2/notes", "cliente_2/instance_A/image/deeper"):
        assert not is_layout_folder(PurePosixPath(other))
