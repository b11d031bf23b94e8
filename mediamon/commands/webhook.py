"""`mediamon webhook set`: point W-API's webhooks at this server, and the URLs involved.

W-API posts to one URL per instance for received messages and one for delivered
ones; `webhook set` points both at `<base>/webhook`, where the base is given or is
the public URL of the running ngrok tunnel to our port. With `[server] secret` the
URL carries `?secret=…`; output shows it as `***`, so a screen share or a pasted
terminal never leaks it.

The other developer-loop commands (`send-test`, `replay`) post to our own server;
the URL and the posting they share live here too.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Final, TextIO
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp

from mediamon.core.config import Config, Instance
from mediamon.core.errors import MediamonError
from mediamon.core.ngrok import find_tunnel
from mediamon.core.wapi_api import WEBHOOK_KINDS, WapiApi, WapiApiError, WebhookKind
from mediamon.logs import REDACTED, hide_secrets

SHOWN_SECRET: Final = REDACTED
POST_TIMEOUT: Final = 10.0


class WebhookSetupError(MediamonError):
    title = "webhook"


class NoServer(MediamonError):
    title = "server"


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A webhook URL, and the same URL as it may be printed, with the secret hidden."""

    url: str
    shown: str


def webhook_url(base: str, secret: str) -> WebhookUrl:
    """`<base>/webhook`, with `?secret=` when a secret is set."""
    url = base.rstrip("/")
    if not url.endswith("/webhook"):
        url += "/webhook"
    if not secret:
        return WebhookUrl(url, url)
    joiner = "&" if "?" in url else "?"
    return WebhookUrl(
        f"{url}{joiner}secret={quote(secret, safe='')}", f"{url}{joiner}secret={SHOWN_SECRET}"
    )


def server_webhook_url(config: Config, url: str | None) -> WebhookUrl:
    """The webhook URL of our server: `url` when given (a base or a whole URL), else local.

    The config's secret is added unless `url` already carries a query of its own.
    """
    if url is None:
        return local_webhook_url(config)
    if not _is_http_url(url):
        raise NoServer(f"--url must be an http or https URL, got {url!r}")
    parts = urlsplit(url)
    if not parts.query:
        return webhook_url(url, config.server.secret)
    hidden = [
        (name, SHOWN_SECRET if name == "secret" else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    shown = parts._replace(query=urlencode(hidden, safe="*")).geturl()
    return WebhookUrl(url, shown)


def local_base_url(config: Config) -> str:
    """Where a `mediamon serve` on this config listens, as seen from this machine."""
    server = config.server
    if server.port == 0:
        raise NoServer(
            "[server] port is 0 (any free port), so no fixed URL reaches the server; "
            "set a port or pass --url"
        )
    # A server listening on every address is reached through loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(server.host, server.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{server.port}"


def local_webhook_url(config: Config) -> WebhookUrl:
    return webhook_url(local_base_url(config), config.server.secret)


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    status: int
    reason: str
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def post_webhook(
    session: aiohttp.ClientSession, target: WebhookUrl, body: bytes
) -> ServerAnswer:
    """POST a webhook body to a mediamon server as W-API would."""
    try:
        async with session.post(
            target.url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT),
        ) as response:
            text = await response.text(errors="replace")
            return ServerAnswer(response.status, response.reason or "", text.strip())
    except aiohttp.ClientConnectorError as error:
        raise NoServer(f"no server answers at {target.shown}; start `mediamon serve`") from error
    except TimeoutError as error:
        raise NoServer(f"{target.shown} did not answer within {POST_TIMEOUT:g} s") from error
    except aiohttp.ClientError as error:
        reason = str(error).replace(target.url, target.shown) or type(error).__name__
        raise NoServer(f"posting to {target.shown} failed: {reason}") from error


def set_webhooks(
    config: Config,
    *,
    url: str | None,
    use_ngrok: bool,
    instance_id: str | None,
    out: TextIO = sys.stdout,
) -> int:
    if url is not None and use_ngrok:
        raise WebhookSetupError("give either --url or --ngrok, not both")
    if url is None and not use_ngrok:
        url = config.server.public_url or None
        if url is None:
            raise WebhookSetupError(
                "say where W-API should post: --url BASE, --ngrok, or set [server] public_url"
            )
    if url is not None and not _is_http_url(url):
        raise WebhookSetupError(f"--url must be an http or https URL, got {url!r}")
    instances = _chosen_instances(config, instance_id)
    return asyncio.run(_set_webhooks(config, url, instances, out))


async def _set_webhooks(
    config: Config, base: str | None, instances: list[Instance], out: TextIO
) -> int:
    async with aiohttp.ClientSession() as session:
        if base is None:
            base = await _ngrok_base(session, config)
        target = webhook_url(base, config.server.secret)
        api = WapiApi(session, config.wapi)
        jobs = [(instance, which) for instance in instances for which in WEBHOOK_KINDS]
        errors = await asyncio.gather(
            *(_set_one(api, instance, which, target.url) for instance, which in jobs)
        )

    for (instance, which), error in zip(jobs, errors, strict=True):
        if error is None:
            out.write(f"ok    {which:<8} webhook of {instance.id} -> {target.shown}\n")
        else:
            out.write(f"fail  {which:<8} webhook: {hide_secrets(str(error), config.secrets)}\n")
    failed = sum(error is not None for error in errors)
    if failed:
        out.write(f"{failed} of {len(jobs)} webhooks were not set\n")
    return 1 if failed else 0


async def _set_one(
    api: WapiApi, instance: Instance, which: WebhookKind, url: str
) -> WapiApiError | None:
    try:
        await api.set_webhook(instance, which, url)
    except WapiApiError as error:
        return error
    return None


async def _ngrok_base(session: aiohttp.ClientSession, config: Config) -> str:
    port, api_url = config.server.port, config.ngrok.api_url
    tunnel = await find_tunnel(session, api_url, port)
    if tunnel is None:
        raise WebhookSetupError(
            f"no ngrok tunnel to port {port} (asked the agent at {api_url}); "
            f"start one with `ngrok http {port}`"
        )
    return tunnel.public_url


def _chosen_instances(config: Config, instance_id: str | None) -> list[Instance]:
    if not config.instances:
        raise WebhookSetupError("the config lists no [[instances]]; add one with its id and token")
    if instance_id is None:
        return list(config.instances)
    instance = config.instance(instance_id)
    if instance is None:
        known = ", ".join(inst.id for inst in config.instances)
        raise WebhookSetupError(f"no instance {instance_id} in the config; it lists {known}")
    return [instance]


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
