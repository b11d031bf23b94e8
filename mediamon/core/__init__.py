"""The pipeline without a face: config, payloads, the store, sources and downloads.

Nothing in here imports Textual or the aiohttp server, so the same core serves the
headless `serve`, the TUI and the command-line tools.
"""
