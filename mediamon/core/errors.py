"""The errors mediamon raises on purpose.

Each carries text a person can act on: it names what failed and, where it helps,
what to do. The command line prints `title: message` and exits; it never shows a
traceback for one of these.
"""


class MediamonError(Exception):
    """Base of every error mediamon raises for a reason it understands."""

    title = "mediamon"


class ConfigError(MediamonError):
    """The config file is missing, unreadable or holds a wrong key or value."""

    title = "config"


class PayloadError(MediamonError):
    """A webhook body does not have the shape of a W-API delivery."""

    title = "webhook"


class StoreError(MediamonError):
    """The database cannot be opened or is not one of ours."""

    title = "database"


class UnsafePathError(MediamonError):
    """A value from a payload would make a path leave the media tree."""

    title = "path"
