"""`mediamon scan`: compare the database with the disk, whether or not a server runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import TextIO

from mediamon.core.config import Config
from mediamon.core.files import LocalFileStore
from mediamon.core.scan import ScanReport, reconcile
from mediamon.core.sqlite_store import SQLiteStore

LISTED: tuple[tuple[str, str], ...] = (
    ("missing", "missing (file not found)"),
    ("changed", "changed on disk (now missing)"),
    ("restored", "back on disk (done again)"),
    ("orphans", "orphans (no row knows them; left alone)"),
    ("temp_removed", "temporary files removed"),
)


def scan(config: Config, *, verify: bool, as_json: bool, out: TextIO = sys.stdout) -> int:
    report = asyncio.run(_scan(config, verify))
    if as_json:
        json.dump(dataclasses.asdict(report), out, indent=2)
        out.write("\n")
        return 0

    out.write(f"scanned {config.storage.media_dir}: {report.summary()}\n")
    for name, title in LISTED:
        paths: list[str] = getattr(report, name)
        if paths:
            out.write(f"\n{title}:\n")
            out.writelines(f"  {path}\n" for path in paths)
    return 0


async def _scan(config: Config, verify: bool) -> ScanReport:
    store = await SQLiteStore.open(config.storage.database)
    try:
        return await reconcile(store, LocalFileStore(config.storage.media_dir), verify=verify)
    finally:
        await store.close()
