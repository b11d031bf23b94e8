"""Small, valid JPEG, PNG and WebP pictures, drawn and encoded with the standard library.

The simulator needs pictures that any viewer opens and whose first bytes say what they
are, without Pillow and without shipping sample files. Each encoder writes the simplest
form of its format that decoders accept: a baseline JPEG whose blocks carry a colour and
a few low-frequency ripples, a palette PNG, and a lossless WebP whose prefix codes are
one bit per channel. Everything is drawn from the `random.Random` given, so one seed
always makes the same bytes.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Sequence
from typing import Final

Colour = tuple[int, int, int]

# JPEG Huffman tables as (number of codes of each length 1..16, symbols in code order).
# DC symbols are magnitude categories; the AC table holds only what `_encode_block`
# writes: end-of-block (0x00) and a non-zero coefficient after no zeros (0x01-0x0A).
_DC_COUNTS: Final = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_SYMBOLS: Final = tuple(range(12))
_AC_COUNTS: Final = (0, 1, 2, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_AC_SYMBOLS: Final = tuple(range(11))
_EOB: Final = 0x00
_RIPPLE: Final = 24
"""The largest low-frequency coefficient a block gets: a gentle texture, no noise."""


def jpeg(width: int, height: int, rng: random.Random, *, detail: int = 5) -> bytes:
    """A baseline YCbCr JPEG: a sky, a sun and a ground, with `detail` ripples per block."""
    scene = _Scene(width, height, rng)
    dc_codes = _huffman_codes(_DC_COUNTS, _DC_SYMBOLS)
    ac_codes = _huffman_codes(_AC_COUNTS, _AC_SYMBOLS)
    ripples = [_coded(value, ac_codes) for value in range(-_RIPPLE, _RIPPLE + 1) if value]
    end_code, end_length = ac_codes[_EOB]
    bits = _MsbBits()
    predictions = [0, 0, 0]

    for block_y in range(0, height, 8):
        for block_x in range(0, width, 8):
            ycbcr = _to_ycbcr(scene.colour_at(block_x + 4, block_y + 4))
            for component, value in enumerate(ycbcr):
                # A flat 8x8 block of value v has DC coefficient 8 * (v - 128), written
                # as the difference from the previous block's.
                dc = round(8 * (value - 128))
                code, length = _coded(dc - predictions[component], dc_codes)
                predictions[component] = dc
                # The ripples fill the first zig-zag positions with no zeros between
                # them; end-of-block then says that the rest of the 63 are zero.
                for ripple_code, ripple_length in rng.choices(ripples, k=detail):
                    code = (code << ripple_length) | ripple_code
                    length += ripple_length
                bits.put((code << end_length) | end_code, length + end_length)

    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00" + struct.pack(">HH", 1, 1) + b"\x00\x00"),
            _segment(0xDB, b"\x00" + bytes([1] * 64)),
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + _components(0x11, 0)),
            _segment(0xC4, b"\x00" + bytes(_DC_COUNTS) + bytes(_DC_SYMBOLS)),
            _segment(0xC4, b"\x10" + bytes(_AC_COUNTS) + bytes(_AC_SYMBOLS)),
            _segment(0xDA, b"\x03" + _components(0x00) + b"\x00\x3f\x00"),
            bits.finish(),
            b"\xff\xd9",
        ]
    )


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A palette PNG: a grainy sunset gradient with a sun in it."""
    scene = _Scene(width, height, rng)
    palette = [scene.background_at(round(i * (height - 1) / 255)) for i in range(256)]
    sun = 255  # the palette's last entry, repainted as the sun
    palette[sun] = scene.sun_colour

    rows = bytearray()
    for y in range(height):
        level = min(round(y * 255 / height), 240)
        # translate() maps each random byte to a palette index near this row's colour,
        # so a whole row of grain costs one call rather than a loop over pixels.
        grain = bytes(min(level + (byte & 15), sun - 1) for byte in range(256))
        row = bytearray(rng.randbytes(width).translate(grain))
        start, end = scene.sun_span(y)
        row[start:end] = bytes([sun]) * (end - start)
        rows += b"\x00" + row

    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"PLTE", b"".join(bytes(colour) for colour in palette)),
            _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9)),
            _png_chunk(b"IEND", b""),
        ]
    )


def webp_sticker(size: int, rng: random.Random) -> bytes:
    """A lossless WebP smiley on a transparent background, as WhatsApp stickers are."""
    face: Colour = (rng.randint(230, 255), rng.randint(170, 230), rng.randint(0, 60))
    features = rng.randint(20, 70)

    # The stream is read least significant bit first, so it is built as one integer
    # whose bit i is the stream's bit i. Every code below is a "simple" prefix code:
    # green and alpha have two symbols (one bit per pixel), red and blue one (no bits).
    fields: list[tuple[int, int]] = [
        (0x2F, 8),  # signature
        (size - 1, 14),
        (size - 1, 14),
        (1, 1),  # alpha is used
        (0, 3),  # version
        (0, 1),  # no transforms
        (0, 1),  # no colour cache
        (0, 1),  # one prefix code group for the whole image
        *_simple_code(features, face[1]),  # green: the eyes and mouth, or the face
        *_simple_code(face[0]),  # red
        *_simple_code(face[2]),  # blue
        *_simple_code(0, 255),  # alpha: outside the face, or on it
        *_simple_code(0),  # distance codes, never used
    ]
    stream, offset = 0, 0
    for value, width in fields:
        stream |= value << offset
        offset += width

    stream |= _smiley_pixels(size) << offset
    data = stream.to_bytes((offset + 2 * size * size + 7) // 8, "little")
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


class _Scene:
    """Where things are in the picture, and what colour each point is."""

    def __init__(self, width: int, height: int, rng: random.Random) -> None:
        self.width, self.height = width, height
        self.sky_top: Colour = (rng.randint(20, 90), rng.randint(60, 140), rng.randint(150, 230))
        self.sky_low: Colour = (rng.randint(200, 255), rng.randint(120, 200), rng.randint(60, 140))
        self.ground: Colour = (rng.randint(30, 90), rng.randint(90, 150), rng.randint(20, 70))
        self.sun_colour: Colour = (255, rng.randint(200, 240), rng.randint(60, 120))
        self.horizon = round(height * rng.uniform(0.6, 0.8))
        self.sun_x = round(width * rng.uniform(0.2, 0.8))
        self.sun_y = round(self.horizon * rng.uniform(0.3, 0.7))
        self.sun_r = max(4, round(min(width, height) * rng.uniform(0.08, 0.15)))

    def colour_at(self, x: int, y: int) -> Colour:
        if (x - self.sun_x) ** 2 + (y - self.sun_y) ** 2 <= self.sun_r**2:
            return self.sun_colour
        return self.background_at(y)

    def background_at(self, y: int) -> Colour:
        if y >= self.horizon:
            return self.ground
        share = y / max(self.horizon, 1)
        return _mix(self.sky_top, self.sky_low, share)

    def sun_span(self, y: int) -> tuple[int, int]:
        """The columns the sun covers on row `y`; an empty span when it does not."""
        dy = y - self.sun_y
        if abs(dy) > self.sun_r:
            return 0, 0
        half = int((self.sun_r**2 - dy**2) ** 0.5)
        return max(self.sun_x - half, 0), min(self.sun_x + half, self.width)


def _mix(a: Colour, b: Colour, share: float) -> Colour:
    red, green, blue = (round(x + (y - x) * share) for x, y in zip(a, b, strict=True))
    return red, green, blue


def _to_ycbcr(colour: Colour) -> tuple[float, float, float]:
    red, green, blue = colour
    return (
        0.299 * red + 0.587 * green + 0.114 * blue,
        128 - 0.168736 * red - 0.331264 * green + 0.5 * blue,
        128 + 0.5 * red - 0.418688 * green - 0.081312 * blue,
    )


def _huffman_codes(counts: Sequence[int], symbols: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Canonical codes, as (code, length) per symbol, the way JPEG's DHT defines them."""
    codes: dict[int, tuple[int, int]] = {}
    remaining = iter(symbols)
    code = 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[next(remaining)] = (code, length)
            code += 1
        code <<= 1
    return codes


def _coded(value: int, codes: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """A coefficient as JPEG writes it, as (bits, length): the code of its size, then itself.

    Its size is its bit length, and that is also the symbol of an AC coefficient that
    follows no zeros, so one function serves the DC differences and the ripples.
    """
    size, extra = _magnitude(value)
    code, length = codes[size]
    return (code << size) | extra, length + size


def _magnitude(value: int) -> tuple[int, int]:
    """JPEG's (category, extra bits) for a coefficient: negatives are stored as v - 1."""
    size = abs(value).bit_length()
    return size, value if value >= 0 else value + (1 << size) - 1


class _MsbBits:
    """A JPEG entropy-coded segment: bits written most significant first, 0xFF stuffed."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._pending = 0
        self._count = 0

    def put(self, value: int, length: int) -> None:
        self._pending = (self._pending << length) | value
        self._count += length
        while self._count >= 8:
            self._count -= 8
            byte = (self._pending >> self._count) & 0xFF
            self._out.append(byte)
            if byte == 0xFF:
                self._out.append(0x00)
        self._pending &= (1 << self._count) - 1

    def finish(self) -> bytes:
        if self._count:
            fill = 8 - self._count
            self.put((1 << fill) - 1, fill)
        return bytes(self._out)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _components(*settings: int) -> bytes:
    """Y, Cb and Cr (ids 1-3), each followed by the same settings bytes."""
    return b"".join(bytes([component, *settings]) for component in (1, 2, 3))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _simple_code(first: int, second: int | None = None) -> list[tuple[int, int]]:
    """A WebP "simple" prefix code of one or two 8-bit symbols, as (value, bits) fields."""
    fields = [(1, 1), (0 if second is None else 1, 1), (1, 1), (first, 8)]
    return fields if second is None else [*fields, (second, 8)]


def _smiley_pixels(size: int) -> int:
    """Two bits per pixel, green's then alpha's: 1 on the face, features green 0."""
    centre, radius = size / 2, size * 0.45
    eye_y, eye_dx, eye_r = size * 0.38, size * 0.16, size * 0.06
    mouth_y = size * 0.52  # the centre of the circle whose lower rim is the smile
    pixels = 0
    for y in range(size):
        row = _cells(*_disc_span(centre, centre, radius, y), bit=0)
        row |= _cells(*_disc_span(centre, centre, radius, y), bit=1)
        for eye_x in (centre - eye_dx, centre + eye_dx):
            row &= ~_cells(*_disc_span(eye_x, eye_y, eye_r, y), bit=0)
        if y >= mouth_y:
            outer = _cells(*_disc_span(centre, mouth_y, size * 0.28, y), bit=0)
            inner = _cells(*_disc_span(centre, mouth_y, size * 0.22, y), bit=0)
            row &= ~(outer & ~inner)
        pixels |= row << (2 * size * y)
    return pixels


def _disc_span(cx: float, cy: float, radius: float, y: int) -> tuple[int, int]:
    dy = y + 0.5 - cy
    if abs(dy) >= radius:
        return 0, 0
    half = (radius**2 - dy**2) ** 0.5
    return round(cx - half), round(cx + half)


def _cells(start: int, end: int, bit: int) -> int:
    """Bit `bit` of each 2-bit pixel cell from column `start` up to `end`."""
    if end <= start:
        return 0
    # (4**n - 1) // 3 is binary 0101...01: one set bit in each of n cells.
    return (((1 << 2 * (end - start)) - 1) // 3) << (2 * start + bit)
