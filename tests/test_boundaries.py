"""The core stands without a face: it never imports Textual, the TUI or the server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mediamon.core

FORBIDDEN = ("textual", "mediamon.tui", "mediamon.server", "aiohttp.web")


def test_no_core_module_imports_the_tui_or_the_server() -> None:
    core = Path(mediamon.core.__file__).parent
    offenders = []
    for path in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{path.name}: {name}" for name in names if name.startswith(FORBIDDEN)]
    assert offenders == []


def test_importing_the_whole_core_loads_no_textual() -> None:
    modules = [
        f"mediamon.core.{path.relative_to(Path(mediamon.core.__file__).parent).with_suffix('')}".replace(
            "/", "."
        )
        for path in Path(mediamon.core.__file__).parent.rglob("*.py")
        if path.name != "__init__.py"
    ]
    script = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    script += "print(','.join(m for m in sys.modules if m.startswith(('textual', 'mediamon.tui'))))"

    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == ""
