"""The sync engine: full and delta sync of a connected system (see processor.py)."""

from metaverse.sync.processor import run_delta_sync, run_full_sync

__all__ = ["run_delta_sync", "run_full_sync"]
