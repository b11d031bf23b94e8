"""mediamon: every W-API media file on disk, complete and verified."""

__version__ = "0.1.0"
