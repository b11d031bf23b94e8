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
from mediamon.core.models import MediaKind, MediaStatus

EXIT_FAILED = 1
EXIT_USAGE = 2
_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in _TOP_LEVEL_FLAGS):
        words.insert(0, "run")  # `mediamon` alone, or with run's options, is the monitor
    parser = _parser()
    args = parser.parse_args(words)
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


def _run(args: argparse.Namespace) -> int:
    from mediamon.tui.app import run

    return run(_config(args))


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


def _doctor(args: argparse.Namespace) -> int:
    from mediamon.commands.doctor import doctor

    return doctor(find_config_path(args.config))


def _webhook_set(args: argparse.Namespace) -> int:
    from mediamon.commands.webhook import set_webhooks

    return set_webhooks(
        _config(args), url=args.url, use_ngrok=args.ngrok, instance_id=args.instance
    )


def _send_test(args: argparse.Namespace) -> int:
    from mediamon.commands.send_test import send_test

    return send_test(_config(args), kind=args.kind, url=args.url)


def _events(args: argparse.Namespace) -> int:
    from mediamon.commands.events import list_events

    return list_events(_config(args), as_json=args.json, limit=args.limit)


def _replay(args: argparse.Namespace) -> int:
    from mediamon.commands.events import replay

    return replay(_config(args), args.event_id, url=args.url)


def _demo(args: argparse.Namespace) -> int:
    from mediamon.commands.demo import DemoSettings, demo

    settings = DemoSettings(
        seconds=args.seconds, rate=args.rate, failure_rate=args.failure_rate, port=args.port
    )
    return demo(settings, headless=args.headless)


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

    monitor = commands.add_parser(
        "run", parents=[config], help="the live monitor (the default command)"
    )
    monitor.set_defaults(run=_run)

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

    doctor = commands.add_parser(
        "doctor", parents=[config], help="check the config, files, W-API instances and tunnel"
    )
    doctor.set_defaults(run=_doctor)

    webhook = commands.add_parser("webhook", help="where W-API posts its webhooks")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", metavar="COMMAND")
    webhook_commands.required = True
    webhook_set = webhook_commands.add_parser(
        "set", parents=[config], help="point each instance's webhooks at this server"
    )
    where = webhook_set.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="BASE", help="the public base URL; /webhook is added to it")
    where.add_argument(
        "--ngrok", action="store_true", help="use the running ngrok tunnel to [server] port"
    )
    webhook_set.add_argument("--instance", metavar="ID", help="only this instance")
    webhook_set.set_defaults(run=_webhook_set)

    send_test = commands.add_parser(
        "send-test", parents=[config], help="post a sample media webhook to the running server"
    )
    send_test.add_argument(
        "--kind",
        type=MediaKind,
        choices=list(MediaKind),
        default=MediaKind.IMAGE,
        metavar="KIND",
        help="the sample's kind: " + ", ".join(MediaKind) + " (default: image)",
    )
    send_test.add_argument(
        "--url", metavar="URL", help="the webhook URL (default: the config's server)"
    )
    send_test.set_defaults(run=_send_test)

    events = commands.add_parser(
        "events", parents=[config], help="list the webhooks received, newest first"
    )
    events.add_argument("--json", action="store_true", help="print a JSON array, with bodies")
    events.add_argument("--limit", type=int, metavar="N", help="at most N events (default 100)")
    events.set_defaults(run=_events)

    replay = commands.add_parser(
        "replay", parents=[config], help="post a stored webhook to the running server again"
    )
    replay.add_argument("event_id", type=int, metavar="EVENT_ID", help="as `events` lists it")
    replay.add_argument(
        "--url", metavar="URL", help="the webhook URL (default: the config's server)"
    )
    replay.set_defaults(run=_replay)

    demo = commands.add_parser(
        "demo", help="the whole product on a simulated W-API: no account, no network"
    )
    demo.add_argument("--headless", action="store_true", help="log lines instead of the screen")
    demo.add_argument(
        "--seconds", type=float, metavar="N", help="stop after N seconds (default: at Ctrl-C)"
    )
    demo.add_argument(
        "--rate", type=float, default=2.0, metavar="R", help="webhooks a second (default 2)"
    )
    demo.add_argument(
        "--failure-rate",
        type=float,
        default=0.3,
        metavar="F",
        help="share of media W-API fails at first, 0 to 1 (default 0.3)",
    )
    demo.add_argument(
        "--port", type=int, default=0, metavar="P", help="mediamon's port (default: a free one)"
    )
    demo.set_defaults(run=_demo)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
