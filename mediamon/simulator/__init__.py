"""A W-API and WhatsApp CDN simulator, for `mediamon demo` and the tests.

It speaks W-API's and the CDN's real HTTP on a loopback port, hosts real encrypted
media, misbehaves the way W-API does, and posts W-API-shaped webhooks, so the whole
pipeline can run with no account and no network:

    async with Simulator([SimulatedInstance.made_up(rng)]) as sim:
        ...  # point [wapi] base_url at sim.url, [whatsapp] cdn_base_url at sim.cdn_url
        await WebhookFirer(sim, "http://127.0.0.1:8000/webhook").run(count=20)

The modules: `media` and `images` make the files, `catalog` encrypts and hosts them
and plans their trouble, `server` is the HTTP app, `webhooks` writes and posts the
webhooks, `people` makes up who sends them.
"""

from mediamon.simulator.catalog import DEFAULT_FAILURES, Failure, HostedMedia, MediaCatalog
from mediamon.simulator.media import MediaFile, make_media
from mediamon.simulator.server import DOWNLOAD_FAILED, SimulatedInstance, Simulator
from mediamon.simulator.webhooks import WebhookFirer, WebhookMaker

__all__ = [
    "DEFAULT_FAILURES",
    "DOWNLOAD_FAILED",
    "Failure",
    "HostedMedia",
    "MediaCatalog",
    "MediaFile",
    "SimulatedInstance",
    "Simulator",
    "WebhookFirer",
    "WebhookMaker",
    "make_media",
]
