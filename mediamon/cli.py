"""The `mediamon` command: parse the arguments, load the config, run one command.

Every error mediamon understands ends here as one line on stderr and an exit code
(2 for a bad config or usage, 1 for anything else that failed); a traceback is
only ever shown for a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mediamon import __version__
from mediamon.core.config import Config, find_config_path, load_config
from mediamon.core.errors import ConfigError, MediamonError
from mediamon.core.models import MediaStatus

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except ConfigError as error:
        print(f"mediamon: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MediamonError as error:
        print(f"mediamon: {error.title}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config_path(args.config))


def _serve(args: argparse.Namespace) -> int:
    from mediamon.commands.serve import serve

    return serve(_config(args), verbose=args.verbose)


def _list(args: argparse.Namespace) -> int:
    from mediamon.commands.listing import list_media

    return list_media(
        _config(args), statuses=args.status or [], as_json=args.json, limit=args.limit
    )


def _scan(args: argparse.Namespace) -> int:
    from mediamon.commands.scan import scan

    return scan(_config(args), verify=args.verify, as_json=args.json)


def _reprocess(args: argparse.Namespace) -> int:
    from mediamon.commands.reprocess import reprocess

    statuses = [MediaStatus.FAILED] * args.failed + [MediaStatus.MISSING] * args.missing
    return reprocess(_config(args), statuses=statuses, message_ids=args.message_ids)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediamon",
        description="Every media file that reaches a WhatsApp number through W-API, "
        "on disk and verified.",
    )
    parser.add_argument("--version", action="version", version=f"mediamon {__version__}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        metavar="PATH",
        help="the TOML config (default: $MEDIAMON_CONFIG, else ./mediamon.toml)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", parents=[config], help="run the webhook server and downloads, headless"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log debug lines too")
    serve.set_defaults(run=_serve)

    listing = commands.add_parser("list", parents=[config], help="list media, newest first")
    listing.add_argument(
        "--status",
        action="append",
        type=MediaStatus,
        choices=list(MediaStatus),
        metavar="STATUS",
        help="only this status (repeatable): " + ", ".join(MediaStatus),
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N rows")
    listing.set_defaults(run=_list)

    scan = commands.add_parser(
        "scan", parents=[config], help="compare the database with the files on disk"
    )
    scan.add_argument("--verify", action="store_true", help="also re-hash every stored file")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.set_defaults(run=_scan)

    reprocess = commands.add_parser(
        "reprocess", parents=[config], help="queue failed, missing or named media again"
    )
    reprocess.add_argument("--failed", action="store_true", help="every failed media")
    reprocess.add_argument("--missing", action="store_true", help="every missing media")
    reprocess.add_argument(
        "message_ids", nargs="*", metavar="MESSAGE_ID", help="a message id, or its start"
    )
    reprocess.set_defaults(run=_reprocess)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
