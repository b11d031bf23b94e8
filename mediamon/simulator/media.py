"""The files the simulated phones send: one real, small file of each kind, made on demand.

`make_media` returns a `MediaFile` whose bytes start with their format's signature and
match their mimetype, so whatever opens them later (a viewer, `file`, the TUI) sees a
plausible WhatsApp download: JPEG or PNG photos, WebP stickers, Ogg Opus voice notes and
WAV clips, PDF documents and MP4 videos, from a few kB to a few hundred kB. Everything
comes from the `random.Random` passed in, so a seed always makes the same files.

Two kinds are honest stand-ins: the Ogg Opus audio is silence, though in correct Ogg
pages and at a voice note's bitrate, and the videos have a valid MP4 box structure whose
data box holds filler rather than a playable track.
"""

from __future__ import annotations

import array
import math
import random
import struct
import sys
from dataclasses import dataclass
from typing import Final

from mediamon.core.models import MediaKind
from mediamon.simulator import images

OPUS_MIMETYPE: Final = "audio/ogg; codecs=opus"

# A 20 ms mono CELT frame of silence (0xff 0xfe) in a "code 3" packet (TOC 0xfb, one
# frame, 0x41: with padding) padded to 40 bytes, the size of a 16 kbit/s voice note's
# frames; decoders skip the padding.
_OPUS_PADDING: Final = 35
_OPUS_SILENCE: Final = b"\xfb\x41" + bytes([_OPUS_PADDING]) + b"\xff\xfe" + bytes(_OPUS_PADDING)
_OPUS_FRAME_SAMPLES: Final = 960  # 20 ms at Opus's 48 kHz granule clock
_OPUS_PRE_SKIP: Final = 312
_FRAMES_PER_PAGE: Final = 50

_DOCUMENTS: Final = (
    ("Orçamento", "orcamento_{n}.pdf"),
    ("Comprovante de pagamento Pix", "comprovante_pix_{n}.pdf"),
    ("Nota fiscal", "nota_fiscal_{n}.pdf"),
    ("Contrato de prestação de serviços", "contrato_{n}.pdf"),
    ("Boleto", "boleto_{n}.pdf"),
)
_ITEMS: Final = (
    "Troca de óleo",
    "Filtro de ar",
    "Pastilhas de freio",
    "Alinhamento e balanceamento",
    "Mão de obra",
    "Consulta",
    "Frete",
    "Instalação",
)


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file as the sender's phone has it, before WhatsApp encrypts it."""

    kind: MediaKind
    mimetype: str
    data: bytes
    width: int | None = None
    height: int | None = None
    seconds: int | None = None
    ptt: bool = False
    page_count: int | None = None
    file_name: str | None = None
    title: str | None = None
    thumbnail: bytes | None = None


def make_media(kind: MediaKind, rng: random.Random, *, ptt: bool = False) -> MediaFile:
    """A new file of `kind`. An audio is a voice note with `ptt`, else Ogg Opus or WAV."""
    if kind is MediaKind.IMAGE:
        return _photo(rng)
    if kind is MediaKind.STICKER:
        return MediaFile(kind, "image/webp", images.webp_sticker(512, rng), 512, 512)
    if kind is MediaKind.AUDIO:
        return _opus(rng, ptt=ptt) if ptt or rng.random() < 0.5 else _clip(rng)
    if kind is MediaKind.VIDEO:
        return _video(rng)
    return _document(rng)


def _photo(rng: random.Random) -> MediaFile:
    thumbnail = images.jpeg(48, 32, rng, detail=0)
    if rng.random() < 0.2:
        width, height = rng.choice(((400, 300), (320, 480)))
        data = images.png(width, height, rng)
        return MediaFile(MediaKind.IMAGE, "image/png", data, width, height, thumbnail=thumbnail)
    width, height = rng.choice(((640, 480), (480, 640), (800, 600), (480, 480)))
    data = images.jpeg(width, height, rng, detail=rng.randint(2, 6))
    return MediaFile(MediaKind.IMAGE, "image/jpeg", data, width, height, thumbnail=thumbnail)


def _opus(rng: random.Random, *, ptt: bool) -> MediaFile:
    seconds = rng.randint(2, 45)
    data = ogg_opus_silence(seconds, rng)
    return MediaFile(MediaKind.AUDIO, OPUS_MIMETYPE, data, seconds=seconds, ptt=ptt)


def _clip(rng: random.Random) -> MediaFile:
    data, seconds = wav_melody(rng)
    return MediaFile(MediaKind.AUDIO, "audio/wav", data, seconds=seconds)


def _video(rng: random.Random) -> MediaFile:
    seconds = rng.randint(2, 12)
    width, height = rng.choice(((848, 480), (480, 848)))
    return MediaFile(
        MediaKind.VIDEO,
        "video/mp4",
        mp4_stand_in(seconds, rng),
        width,
        height,
        seconds=seconds,
        thumbnail=images.jpeg(32, 48, rng, detail=0),
    )


def _document(rng: random.Random) -> MediaFile:
    title, name = rng.choice(_DOCUMENTS)
    number = rng.randint(100, 9999)
    pages = rng.randint(1, 3)
    return MediaFile(
        MediaKind.DOCUMENT,
        "application/pdf",
        pdf(f"{title} nº {number}", pages, rng),
        page_count=pages,
        file_name=name.format(n=number),
        title=f"{title} nº {number}",
    )


def ogg_opus_silence(seconds: int, rng: random.Random) -> bytes:
    """An Ogg Opus stream of `seconds` of mono silence, with correct page checksums."""
    serial = rng.getrandbits(32)
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _OPUS_PRE_SKIP, 48_000, 0, 0)
    vendor = b"mediamon simulator"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)

    pages = [_ogg_page([head], serial, 0, 0, first=True), _ogg_page([tags], serial, 1, 0)]
    frames = seconds * 50
    sent = 0
    while sent < frames:
        count = min(_FRAMES_PER_PAGE, frames - sent)
        sent += count
        pages.append(
            _ogg_page(
                [_OPUS_SILENCE] * count,
                serial,
                len(pages),
                sent * _OPUS_FRAME_SAMPLES,
                last=sent == frames,
            )
        )
    return b"".join(pages)


def _ogg_page(
    packets: list[bytes],
    serial: int,
    sequence: int,
    granule: int,
    *,
    first: bool = False,
    last: bool = False,
) -> bytes:
    # Each packet here is shorter than 255 bytes, so it takes one lacing value.
    lacing = bytes(len(packet) for packet in packets)
    flags = (0x02 if first else 0) | (0x04 if last else 0)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        value = index << 24
        for _ in range(8):
            value = (value << 1) ^ 0x04C11DB7 if value & 0x80000000 else value << 1
        table.append(value & 0xFFFFFFFF)
    return tuple(table)


_OGG_CRC_TABLE: Final = _ogg_crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32 with polynomial 0x04C11DB7, unreflected, starting at 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def wav_melody(rng: random.Random, rate: int = 16_000) -> tuple[bytes, int]:
    """A mono 16-bit WAV of a few soft notes, and its length in whole seconds."""
    samples = array.array("h")
    for _ in range(rng.randint(5, 12)):
        frequency = 220 * 2 ** (rng.choice((0, 2, 4, 5, 7, 9, 12)) / 12)
        length = int(rate * rng.choice((0.25, 0.5)))
        for n in range(length):
            fade = min(n, length - n, 400) / 400  # no clicks between notes
            samples.append(int(9000 * fade * math.sin(2 * math.pi * frequency * n / rate)))
    if sys.byteorder == "big":
        samples.byteswap()
    pcm = samples.tobytes()

    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body, max(1, round(len(samples) / rate))


def pdf(title: str, pages: int, rng: random.Random) -> bytes:
    """A PDF of `pages` pages listing made-up items and prices under `title`, with a banner."""
    page_ids = [3 + 2 * index for index in range(pages)]
    font_id = 3 + 2 * pages
    banner_id = font_id + 1
    # A JPEG goes into a PDF as it is: DCTDecode is the JPEG decoder.
    banner = images.jpeg(240, 64, rng, detail=4)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % page for page in page_ids), pages),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding /WinAnsiEncoding >>",
        banner_id: b"<< /Type /XObject /Subtype /Image /Width 240 /Height 64 "
        b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\n"
        b"stream\n%s\nendstream" % (len(banner), banner),
    }
    for number, page_id in enumerate(page_ids, start=1):
        lines = [title, f"Página {number} de {pages}", ""]
        total = 0
        for _ in range(rng.randint(4, 12)):
            cents = rng.randint(1_500, 90_000)
            total += cents
            lines.append(f"{rng.choice(_ITEMS):<32} R$ {_reais(cents)}")
        lines += ["", f"Total: R$ {_reais(total)}"]
        content = b"q 240 0 0 64 60 740 cm /Banner Do Q\n" + _text_stream(lines)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << "
            b"/Font << /F1 %d 0 R >> /XObject << /Banner %d 0 R >> >> /Contents %d 0 R >>"
            % (font_id, banner_id, page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[number] for number in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _text_stream(lines: list[str]) -> bytes:
    commands = [b"BT /F1 12 Tf 14 TL 60 700 Td"]
    for line in lines:
        text = line.encode("cp1252", errors="replace")
        text = text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        commands.append(b"(%s) Tj T*" % text)
    commands.append(b"ET")
    return b"\n".join(commands)


def _reais(cents: int) -> str:
    """Brazilian money format: 1.234,56."""
    return f"{cents // 100:,}".replace(",", ".") + f",{cents % 100:02d}"


def mp4_stand_in(seconds: int, rng: random.Random) -> bytes:
    """An MP4 of `seconds`: ftyp, a movie header, and a data box of filler bytes."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">IIIII", 0, 0, 0, 1000, seconds * 1000)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + matrix
        + bytes(24)
        + struct.pack(">I", 1),
    )
    # Roughly the bitrate of a WhatsApp video, so sizes look right in listings.
    filler = rng.randbytes(seconds * rng.randint(20_000, 30_000))
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", filler)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body
