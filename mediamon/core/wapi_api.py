"""W-API's REST calls for setting up an instance: its status, and where its webhooks go.

Downloads have their own client (`mediamon.core.sources.wapi`); this one serves the
developer's commands (`doctor`, `webhook set`). Every call carries the instance's id
in the query and its token as a bearer header. W-API sometimes answers HTTP 200 with
`"error": true`, so the flag is checked in every answer, never just the status.

No error text from here ever contains a token: messages are worded from the instance
id and W-API's answer, and that answer is scrubbed of the token in case it echoes it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp

from mediamon.core.config import Instance, WapiConfig
from mediamon.core.errors import MediamonError

logger = logging.getLogger(__name__)

WebhookKind = Literal["received", "delivery"]
WEBHOOK_KINDS: Final[tuple[WebhookKind, ...]] = ("received", "delivery")
REDACTED: Final = "***"


class WapiApiError(MediamonError):
    """A W-API call did not do what was asked; the text names the instance and why."""

    title = "W-API"


class WapiUnreachable(WapiApiError):
    """No answer: connection refused, DNS, TLS or a timeout."""


class WapiRefused(WapiApiError):
    """W-API answered, but with an error: a status other than 200, or `"error": true`."""


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """What status-instance says about one instance."""

    token_accepted: bool
    connected: bool
    phone: str | None
    """The connected WhatsApp number, when W-API names it."""
    error: str | None = None
    """W-API's reason when it refused the token (401, 403 or `"error": true`)."""


class WapiApi:
    """W-API's instance and webhook calls over a session the caller owns."""

    def __init__(
        self, session: aiohttp.ClientSession, config: WapiConfig, timeout: float | None = None
    ) -> None:
        self._session = session
        self._base_url = config.base_url.rstrip("/")
        self._timeout = timeout if timeout is not None else config.timeout

    async def instance_status(self, instance: Instance) -> InstanceStatus:
        """Whether W-API takes the token, and whether the phone is connected.

        A refused token is an answer, not an error: it comes back with
        `token_accepted=False`. W-API being unreachable or broken raises `WapiApiError`.
        """
        status, answer = await self._call("GET", "/instance/status-instance", instance)
        reason = _scrub(_message(answer), instance.token)
        if status in (401, 403):
            return InstanceStatus(False, False, None, f"HTTP {status}: {reason or 'refused'}")
        if status != 200:
            raise WapiRefused(_failure(instance, f"status-instance answered {status}", reason))
        if not isinstance(answer, dict):
            raise WapiRefused(_not_json(instance, "status-instance"))
        if answer.get("error") is True:
            return InstanceStatus(False, False, None, f'"error": true: {reason or "no message"}')

        phone = answer.get("connectedPhone")
        return InstanceStatus(
            token_accepted=True,
            connected=answer.get("connected") is True,
            phone=str(phone) if isinstance(phone, str | int) and phone != "" else None,
        )

    async def set_webhook(self, instance: Instance, which: WebhookKind, url: str) -> None:
        """Point the instance's "received" or "delivery" webhook at `url`."""
        if which not in WEBHOOK_KINDS:
            raise ValueError(f"which must be one of {WEBHOOK_KINDS}, got {which!r}")
        call = f"update-webhook-{which}"
        status, answer = await self._call("PUT", f"/webhook/{call}", instance, {"value": url})
        reason = _scrub(_message(answer), instance.token)
        if status in (401, 403):
            raise WapiRefused(_failure(instance, f"{call} refused the token ({status})", reason))
        if status != 200:
            raise WapiRefused(_failure(instance, f"{call} answered {status}", reason))
        if not isinstance(answer, dict):
            raise WapiRefused(_not_json(instance, call))
        if answer.get("error") is True:
            raise WapiRefused(_failure(instance, f'{call} answered 200 with "error": true', reason))
        logger.info("instance %s: %s webhook set", instance.id, which)

    async def _call(
        self, method: str, path: str, instance: Instance, body: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        try:
            async with self._session.request(
                method,
                f"{self._base_url}{path}",
                params={"instanceId": instance.id},
                json=body,
                headers={"Authorization": f"Bearer {instance.token}"},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                return response.status, await _json_or_none(response)
        except TimeoutError as error:
            raise WapiUnreachable(
                f"instance {instance.id}: W-API at {self._base_url} did not answer "
                f"within {self._timeout:g} s"
            ) from error
        except aiohttp.ClientError as error:
            reason = _scrub(_connection_problem(error), instance.token)
            raise WapiUnreachable(
                f"instance {instance.id}: cannot reach W-API at {self._base_url}: {reason}"
            ) from error


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, UnicodeDecodeError, aiohttp.ClientPayloadError):
        return None


def _connection_problem(error: aiohttp.ClientError) -> str:
    """The reason in a few words: "Connection refused" rather than aiohttp's whole story."""
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve {error.host} ({cause.strerror})"
        if cause.errno and cause.errno > 0:
            return os.strerror(cause.errno)
    return str(error) or type(error).__name__


def _message(answer: Any, depth: int = 0) -> str | None:
    """W-API's error text, which it may nest a few levels down under message/data."""
    if depth > 4 or not isinstance(answer, dict):
        return None
    message = answer.get("message")
    if isinstance(message, str) and message:
        return message[:200]
    inner = message.get("data") if isinstance(message, dict) else None
    return _message(inner, depth + 1) or _message(message, depth + 1)


def _scrub(text: str | None, token: str) -> str | None:
    if text is None or not token:
        return text
    return text.replace(token, REDACTED)


def _failure(instance: Instance, what: str, reason: str | None) -> str:
    return f"instance {instance.id}: {what}" + (f": {reason}" if reason else "")


def _not_json(instance: Instance, call: str) -> str:
    return (
        f"instance {instance.id}: {call} answered 200 without a JSON object; "
        "is [wapi] base_url W-API's API address?"
    )
