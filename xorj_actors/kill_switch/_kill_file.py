"""The kill file: an operator halts the engine by creating a file, no credentials needed.

The kill switch polls it (``kill_switch.kill_file_poll_s``); its appearance triggers a graceful
halt once, and recovery is refused while it exists.
"""

from __future__ import annotations

from pathlib import Path

from xorj_actors.kill_switch._persistence import read_regular

__all__ = ["KillFile"]


class KillFile:
    """Watches one path for appearing (the first line of the file, if any, goes into the reason)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = False

    def exists(self) -> bool:
        return self.path.exists()

    def poll(self) -> str | None:
        """The halt reason if the file appeared since the last poll, else None."""
        exists = self.path.exists()
        reason = None
        if exists and not self.seen:
            try:
                # Never blocks (a FIFO is not waited on): the halt must not wait for its note.
                note = read_regular(self.path, 4096).decode("utf-8", errors="replace").strip().splitlines()
            except OSError:
                note = []
            reason = f"kill file {self.path}" + (f": {note[0][:200]}" if note else "")
        self.seen = exists
        return reason
