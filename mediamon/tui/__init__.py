"""The Textual monitor: what arrived, what is downloading, retrying, failed or missing."""
