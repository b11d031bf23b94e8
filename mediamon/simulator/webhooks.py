"""W-API webhooks about the simulated phones' messages, and a firer that posts them.

`WebhookMaker` writes bodies with the shape W-API really sends: the message protobuf
as JSON (base64 keys and hashes, 64-bit numbers as strings), push names and numbers of
made-up Brazilians, and a `url` on `mmg.whatsapp.net` that mediamon must never call.
Each media it names is first hosted on the `Simulator`, so the webhook's keys, hashes
and directPath lead to a real file. Its mix of messages is what a busy business number
sees: all five kinds, voice notes, wrappers, text, group chats, media the phone itself
sent (`webhookDelivery`) and, now and then, the same message delivered twice.

`WebhookFirer` posts those bodies to one URL at a given average rate, with the random
gaps of real traffic.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import logging
import random
import time
from typing import Any, Final

import aiohttp

from mediamon.core.models import MediaKind
from mediamon.simulator.catalog import HostedMedia
from mediamon.simulator.media import make_media
from mediamon.simulator.people import Contact, contact, group_id
from mediamon.simulator.server import SimulatedInstance, Simulator

logger = logging.getLogger(__name__)

WRAPPERS: Final = ("ephemeralMessage", "viewOnceMessageV2", "documentWithCaptionMessage")
MESSAGE_KEYS: Final = {
    MediaKind.IMAGE: "imageMessage",
    MediaKind.VIDEO: "videoMessage",
    MediaKind.AUDIO: "audioMessage",
    MediaKind.DOCUMENT: "documentMessage",
    MediaKind.STICKER: "stickerMessage",
}
_KIND_WEIGHTS: Final = {
    MediaKind.IMAGE: 34,
    MediaKind.AUDIO: 26,
    MediaKind.DOCUMENT: 14,
    MediaKind.VIDEO: 12,
    MediaKind.STICKER: 14,
}
_BUSINESSES: Final = ("Padaria Pão Dourado", "Oficina do Zé", "Clínica Sorriso", "Loja da Bia")
_TEXTS: Final = (
    "Bom dia!",
    "Vocês abrem no sábado?",
    "Pode me mandar o orçamento?",
    "Já fiz o Pix, segue o comprovante",
    "Obrigado 🙏",
    "Qual o endereço de vocês?",
    "Tá bom, combinado",
    "👍",
)
_CAPTIONS: Final = ("Olha isso", "Segue a foto", "Chegou hoje", "O que acha?", "Bom dia ☀️")
_PICTURE: Final = "https://pps.whatsapp.net/v/t61.24694-24/{n}_n.jpg?ccb=11-4&oh=01_Q5Aa&oe=0"


class WebhookMaker:
    """Makes webhook bodies for the simulator's instances; one thread at a time."""

    def __init__(
        self,
        simulator: Simulator,
        rng: random.Random,
        *,
        text_share: float = 0.12,
        duplicate_share: float = 0.05,
        from_me_share: float = 0.1,
    ) -> None:
        self._simulator = simulator
        self._rng = rng
        self._text_share = text_share
        self._duplicate_share = duplicate_share
        self._from_me_share = from_me_share
        instances = list(simulator.instances.values())
        self._instances = instances
        self._contacts = {inst.id: [contact(rng) for _ in range(12)] for inst in instances}
        self._groups = {inst.id: group_id(rng) for inst in instances}
        self._businesses = {
            inst.id: _BUSINESSES[n % len(_BUSINESSES)] for n, inst in enumerate(instances)
        }
        self._last_media: dict[str, Any] | None = None

    def next(self) -> dict[str, Any]:
        """The next webhook of a realistic mix."""
        rng = self._rng
        roll = rng.random()
        if roll < self._duplicate_share and self._last_media is not None:
            return copy.deepcopy(self._last_media)
        if roll < self._duplicate_share + self._text_share:
            return self.text_message()

        kind = rng.choices(list(_KIND_WEIGHTS), list(_KIND_WEIGHTS.values()))[0]
        wrapper = self._wrapper_for(kind)
        return self.media_message(
            kind,
            from_me=rng.random() < self._from_me_share,
            ptt=kind is MediaKind.AUDIO and rng.random() < 0.7,
            wrapper=wrapper,
            in_group=rng.random() < 0.1,
        )

    def media_message(
        self,
        kind: MediaKind,
        *,
        instance: SimulatedInstance | None = None,
        from_me: bool = False,
        ptt: bool = False,
        wrapper: str | None = None,
        in_group: bool = False,
    ) -> dict[str, Any]:
        """A webhook for a new media message, its file hosted on the simulator."""
        hosted = self._simulator.host_media(make_media(kind, self._rng, ptt=ptt))
        caption = self._rng.choice(_CAPTIONS) if self._rng.random() < 0.3 else None
        if wrapper == "documentWithCaptionMessage":
            caption = caption or "Segue o documento"
        content: dict[str, Any] = {MESSAGE_KEYS[kind]: self.media_block(hosted, caption)}
        if wrapper is not None:
            content = {wrapper: {"message": content}}
        body = self._envelope(instance, content, from_me=from_me, in_group=in_group)
        self._last_media = body
        return copy.deepcopy(body)

    def text_message(self, *, instance: SimulatedInstance | None = None) -> dict[str, Any]:
        text = self._rng.choice(_TEXTS)
        if self._rng.random() < 0.5:
            content: dict[str, Any] = {"conversation": text}
        else:
            content = {"extendedTextMessage": {"text": text}}
        return self._envelope(instance, content, from_me=False, in_group=False)

    def media_block(self, hosted: HostedMedia, caption: str | None = None) -> dict[str, Any]:
        """The `...Message` object describing one hosted file, as WhatsApp writes it."""
        file = hosted.file
        block: dict[str, Any] = {
            "url": f"https://mmg.whatsapp.net{hosted.direct_path}&mms3=true",
            "mimetype": file.mimetype,
            "fileSha256": hosted.file_sha256_b64,
            "fileLength": str(len(file.data)),
            "mediaKey": hosted.media_key_b64,
            "fileEncSha256": hosted.file_enc_sha256_b64,
            "directPath": hosted.direct_path,
            "mediaKeyTimestamp": str(int(time.time()) - self._rng.randint(0, 20)),
        }
        if file.width is not None and file.height is not None:
            block |= {"width": file.width, "height": file.height}
        if file.thumbnail is not None:
            block["jpegThumbnail"] = _b64(file.thumbnail)
        if file.seconds is not None:
            block["seconds"] = file.seconds
        if file.kind is MediaKind.VIDEO:
            block["gifPlayback"] = False
        if file.kind is MediaKind.AUDIO:
            block["ptt"] = file.ptt
            if file.ptt:
                block["waveform"] = _b64(bytes(self._rng.randint(0, 100) for _ in range(64)))
        if file.kind is MediaKind.DOCUMENT:
            block |= {"fileName": file.file_name, "title": file.title, "pageCount": file.page_count}
        if file.kind is MediaKind.STICKER:
            block["isAnimated"] = False
        if caption is not None and file.kind is not MediaKind.STICKER:
            block["caption"] = caption
        return block

    def _wrapper_for(self, kind: MediaKind) -> str | None:
        roll = self._rng.random()
        if kind is MediaKind.DOCUMENT and roll < 0.3:
            return "documentWithCaptionMessage"
        if kind in (MediaKind.IMAGE, MediaKind.VIDEO) and roll < 0.1:
            return "viewOnceMessageV2"
        return "ephemeralMessage" if roll > 0.85 else None

    def _envelope(
        self,
        instance: SimulatedInstance | None,
        content: dict[str, Any],
        *,
        from_me: bool,
        in_group: bool,
    ) -> dict[str, Any]:
        rng = self._rng
        instance = instance or rng.choice(self._instances)
        person = rng.choice(self._contacts[instance.id])
        # The phone's own messages come from the business behind the number.
        sender = Contact(instance.phone, self._businesses[instance.id]) if from_me else person
        chat_id = self._groups[instance.id] if in_group and not from_me else person.phone
        return {
            "event": "webhookDelivery" if from_me else "webhookReceived",
            "instanceId": instance.id,
            "connectedPhone": instance.phone,
            "isGroup": chat_id.endswith("@g.us"),
            "messageId": self._message_id(from_me),
            "fromMe": from_me,
            "chat": {"id": chat_id, "profilePicture": self._picture()},
            "sender": {
                "id": sender.phone,
                "profilePicture": self._picture(),
                "pushName": sender.push_name,
                "verifiedBizName": "",
            },
            "moment": int(time.time()),
            "msgContent": content,
        }

    def _message_id(self, from_me: bool) -> str:
        # Phones write 32 hex digits; WhatsApp Web and APIs (what sends from_me) 3EB0...
        if from_me:
            return "3EB0" + f"{self._rng.getrandbits(72):018X}"
        return f"{self._rng.getrandbits(128):032X}"

    def _picture(self) -> str:
        return _PICTURE.format(n=self._rng.randrange(10**9))


class WebhookFirer:
    """Posts the maker's webhooks to `url`, `rate` a second on average, until cancelled."""

    def __init__(self, simulator: Simulator, url: str, *, rate: float = 2.0, seed: int = 0) -> None:
        if rate <= 0:
            raise ValueError("rate is webhooks a second and must be above 0")
        self.maker = WebhookMaker(simulator, random.Random(seed))
        self.url = url
        self.rate = rate
        self.sent = 0
        self.answers: collections.Counter[str] = collections.Counter()
        """How the receiver answered, by HTTP status, or "unreachable"."""
        self._gaps = random.Random(seed + 1)

    async def run(self, count: int | None = None) -> None:
        """Post `count` webhooks, or keep posting until cancelled."""
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            due = loop.time()
            while count is None or self.sent < count:
                await asyncio.sleep(max(due - loop.time(), 0.0))
                # Drawing a picture takes up to a tenth of a second: keep it off the
                # loop that also runs the simulator and, in the demo, mediamon.
                body = await asyncio.to_thread(self.maker.next)
                await self._post(session, body)
                due = max(due, loop.time()) + self._gaps.expovariate(self.rate)

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        self.sent += 1
        try:
            async with session.post(self.url, json=body) as response:
                self.answers[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            self.answers["unreachable"] += 1
            reason = str(error) or type(error).__name__
            logger.warning("webhook not delivered to %s: %s", self.url, reason)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
