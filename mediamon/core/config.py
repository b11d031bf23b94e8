"""Reading mediamon.toml into typed, checked settings.

Guarantees:

- A `Config` only exists if every key in the file is known, of the right type and in range;
  anything else raises `ConfigError` whose message is one line naming the file and the key.
- Every key except `[[instances]]` has a default, so an empty file is a valid config.
- Every path in a `Config` is absolute: relative ones are taken from the config file's folder,
  not from wherever mediamon happened to be started.
- No token or server secret ever appears in an error message or in a `repr`; for a wrong-typed
  one the message gives its type, not its value.

The rules live in one table per section (`_RULES`), so a new key is a field on its dataclass
plus one line there.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from mediamon.core.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

logger = logging.getLogger(__name__)

ENV_VAR: Final = "MEDIAMON_CONFIG"
DEFAULT_PATH: Final = Path("mediamon.toml")
SOURCES: Final = ("wapi", "cdn")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The webhook server W-API posts to."""

    host: str = "127.0.0.1"
    port: int = 8000
    secret: str = field(default="", repr=False)
    max_body: int = 4 * 1024 * 1024
    public_url: str = ""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where media files and the database live; absolute once loaded."""

    media_dir: Path = Path("media_storage")
    database: Path = Path("mediamon.db")
    keep_events_days: int = 30


@dataclass(frozen=True, slots=True)
class WapiConfig:
    base_url: str = "https://api.w-api.app/v1"
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class WhatsAppConfig:
    cdn_base_url: str = "https://mmg.whatsapp.net"


@dataclass(frozen=True, slots=True)
class DownloadsConfig:
    concurrency: int = 8
    max_attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    download_from_me: bool = True
    sources: tuple[str, ...] = SOURCES


@dataclass(frozen=True, slots=True)
class NgrokConfig:
    api_url: str = "http://127.0.0.1:4040"


@dataclass(frozen=True, slots=True)
class Instance:
    """One W-API instance (a WhatsApp number) and the customer its media belongs to."""

    id: str
    token: str = field(repr=False)
    client: str


@dataclass(frozen=True, slots=True)
class Config:
    """Everything mediamon.toml says, checked. `path` is None when built from a dict."""

    path: Path | None
    server: ServerConfig
    storage: StorageConfig
    wapi: WapiConfig
    whatsapp: WhatsAppConfig
    downloads: DownloadsConfig
    ngrok: NgrokConfig
    instances: tuple[Instance, ...]
    _by_id: Mapping[str, Instance] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Webhooks look their instance up on every delivery, so build the index once.
        object.__setattr__(self, "_by_id", {inst.id: inst for inst in self.instances})

    def instance(self, instance_id: str) -> Instance | None:
        return self._by_id.get(instance_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every non-empty token and the server secret, for scrubbing them out of logs."""
        values = [inst.token for inst in self.instances] + [self.server.secret]
        return tuple(dict.fromkeys(value for value in values if value))


class _Problem(Exception):
    """A config mistake, worded without the file name; `_build` adds that."""


class _Invalid(Exception):
    """Raised by a rule; carries what the value should have been, e.g. "an integer"."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


# A rule takes the raw TOML value and returns the value to store, or raises _Invalid.
_Rule = Callable[[Any], Any]


def _text(*, allow_empty: bool) -> _Rule:
    def check(value: Any) -> str:
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise _Invalid("a string" if allow_empty else "a non-empty string")
        return value

    return check


def _integer(low: int, high: int | None = None) -> _Rule:
    expected = (
        f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    )

    def check(value: Any) -> int:
        # bool is a subclass of int, but `port = true` is a mistake, not port 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(expected)
        if value < low or (high is not None and value > high):
            raise _Invalid(expected)
        return value

    return check


def _positive_number(value: Any) -> float:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value <= 0:
        raise _Invalid("a finite number greater than 0")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _url(*, allow_empty: bool) -> _Rule:
    expected = 'an http or https URL, or ""' if allow_empty else "an http or https URL"

    def check(value: Any) -> str:
        if allow_empty and value == "":
            return ""
        if not isinstance(value, str) or not _is_http_url(value):
            raise _Invalid(expected)
        # Callers append "/path" to these; a trailing slash would double it.
        return value.rstrip("/")

    return check


def _is_http_url(text: str) -> bool:
    if any(char.isspace() for char in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _Invalid("a non-empty path")
    return Path(value)


def _sources(value: Any) -> tuple[str, ...]:
    expected = 'a non-empty list of "wapi" and/or "cdn", each at most once'
    if not isinstance(value, list) or not value:
        raise _Invalid(expected)
    if any(item not in SOURCES for item in value) or len(set(value)) != len(value):
        raise _Invalid(expected)
    return tuple(value)


# The client names a folder (cliente_<client>), so it must stay one plain path component.
_CLIENT_PATTERN: Final = re.compile(r"[\w-][\w.-]*")


def _client(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _CLIENT_PATTERN.fullmatch(value):
        raise _Invalid("a number or a name of letters, digits, '-', '_' and '.'")
    return value


_RULES: Final[Mapping[str, Mapping[str, _Rule]]] = {
    "server": {
        "host": _text(allow_empty=False),
        "port": _integer(0, 65535),
        "secret": _text(allow_empty=True),
        "max_body": _integer(1),
        "public_url": _url(allow_empty=True),
    },
    "storage": {
        "media_dir": _path,
        "database": _path,
        "keep_events_days": _integer(0),
    },
    "wapi": {
        "base_url": _url(allow_empty=False),
        "timeout": _positive_number,
    },
    "whatsapp": {
        "cdn_base_url": _url(allow_empty=False),
    },
    "downloads": {
        "concurrency": _integer(1, 256),
        "max_attempts": _integer(1),
        "backoff_initial": _positive_number,
        "backoff_max": _positive_number,
        "download_from_me": _boolean,
        "sources": _sources,
    },
    "ngrok": {
        "api_url": _url(allow_empty=False),
    },
    "instances": {
        "id": _text(allow_empty=False),
        "token": _text(allow_empty=False),
        "client": _client,
    },
}

_SECTIONS: Final[Mapping[str, type[Any]]] = {
    "server": ServerConfig,
    "storage": StorageConfig,
    "wapi": WapiConfig,
    "whatsapp": WhatsAppConfig,
    "downloads": DownloadsConfig,
    "ngrok": NgrokConfig,
}

_T = TypeVar("_T", bound="DataclassInstance")


def find_config_path(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The file to read: `--config PATH` if given, else `$MEDIAMON_CONFIG`, else ./mediamon.toml.

    An empty value counts as not given, so `MEDIAMON_CONFIG=` falls through to the default.
    """
    chosen = explicit or environ.get(ENV_VAR)
    return Path(chosen).expanduser() if chosen else DEFAULT_PATH


def load_config(path: Path) -> Config:
    """Read, parse and check the file at `path`."""
    source = str(path)
    data = _read_toml(path, source)

    config = _build(data, path.parent, source, path.resolve())

    logger.info("Config read from %s: %d instance(s)", source, len(config.instances))
    return config


def parse_config(data: Mapping[str, Any], base_dir: Path, source: str = "<config>") -> Config:
    """Check settings that are already parsed; relative paths are taken from `base_dir`."""
    return _build(data, base_dir, source, None)


def _read_toml(path: Path, source: str) -> Mapping[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: no such file; create one (see mediamon.toml.example) or pass --config PATH"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a file; pass --config PATH") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read it ({exc.strerror or exc})") from None

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(f"{source}: invalid TOML: {_one_line(str(exc))}") from None


def _build(data: Mapping[str, Any], base_dir: Path, source: str, path: Path | None) -> Config:
    try:
        _reject_unknown(data, [*_SECTIONS, "instances"], "")

        sections = {
            name: _read_table(cls, _RULES[name], data.get(name, {}), f"[{name}]", base_dir)
            for name, cls in _SECTIONS.items()
        }
        _check_backoff(sections["downloads"])

        instances = _read_instances(data.get("instances", []), base_dir)
    except _Problem as problem:
        raise ConfigError(f"{source}: {problem}") from None

    return Config(path=path, instances=instances, **sections)


def _read_table(
    cls: type[_T], rules: Mapping[str, _Rule], raw: Any, where: str, base_dir: Path
) -> _T:
    if not isinstance(raw, dict):
        raise _Problem(f"{where} must be a table, got {_describe_type(raw)}")
    _reject_unknown(raw, list(rules), f"{where} ")

    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name in raw:
            values[spec.name] = _apply(rules[spec.name], raw[spec.name], where, spec)
        elif _has_default(spec):
            values[spec.name] = spec.default
        else:
            raise _Problem(f"{where} has no {spec.name}")

    # Paths mean "relative to the config file", defaults included.
    resolved = {name: _absolute(value, base_dir) for name, value in values.items()}
    return cls(**resolved)


def _apply(rule: _Rule, value: Any, where: str, spec: dataclasses.Field[Any]) -> Any:
    try:
        return rule(value)
    except _Invalid as invalid:
        # A field hidden from repr holds a token or secret: never echo its value.
        shown = _describe_type(value) if not spec.repr else _show(value)
        raise _Problem(f"{where} {spec.name} must be {invalid.expected}, got {shown}") from None


def _has_default(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is not dataclasses.MISSING


def _absolute(value: Any, base_dir: Path) -> Any:
    if not isinstance(value, Path):
        return value
    return (base_dir / value.expanduser()).resolve()


def _reject_unknown(raw: Mapping[str, Any], known: list[str], where: str) -> None:
    """Stop at the first key not in `known`; `where` is "" for the top level of the file."""
    for key in raw:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        if not where and isinstance(raw[key], dict):
            raise _Problem(f"unknown table [{key}]{hint}")
        raise _Problem(f"unknown key {where}{key}{hint}")


def _check_backoff(downloads: DownloadsConfig) -> None:
    if downloads.backoff_max < downloads.backoff_initial:
        raise _Problem(
            f"[downloads] backoff_max must be at least backoff_initial "
            f"({downloads.backoff_initial:g}), got {downloads.backoff_max:g}"
        )


def _read_instances(raw: Any, base_dir: Path) -> tuple[Instance, ...]:
    if not isinstance(raw, list):
        raise _Problem(
            f"instances must be an array of [[instances]] tables, got {_describe_type(raw)}"
        )

    instances = tuple(
        _read_table(Instance, _RULES["instances"], item, f"[[instances]] #{number}", base_dir)
        for number, item in enumerate(raw, start=1)
    )

    _reject_duplicate_ids(instances)
    return instances


def _reject_duplicate_ids(instances: tuple[Instance, ...]) -> None:
    first_seen: dict[str, int] = {}
    for number, inst in enumerate(instances, start=1):
        if inst.id in first_seen:
            raise _Problem(
                f"[[instances]] #{number} id {_show(inst.id)} repeats #{first_seen[inst.id]}"
            )
        first_seen[inst.id] = number


_TYPE_NAMES: Final[Mapping[type, str]] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
    datetime.datetime: "a date-time",
    datetime.date: "a date",
    datetime.time: "a time",
}


def _describe_type(value: Any) -> str:
    """The TOML type of a value, for messages that must not show the value itself."""
    if isinstance(value, str) and not value.strip():
        return "an empty string" if value == "" else "a blank string"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value as it would look in TOML, shortened to keep the message on one line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, datetime.date | datetime.time):
        text = value.isoformat()
    else:
        text = repr(value)
    return _shorten(text)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())
