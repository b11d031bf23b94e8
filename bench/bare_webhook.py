"""The bare stack for the ingest benchmark: an aiohttp handler that parses the JSON and answers.

Nothing is recorded and nothing is checked beyond the JSON parse; this is the ceiling
that `mediamon serve` is compared with. Usage: `bare_webhook.py PORT`.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    return web.json_response({"ok": True, "messageId": body.get("messageId")})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> None:
    app = web.Application()
    app.router.add_post("/webhook", receive)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
