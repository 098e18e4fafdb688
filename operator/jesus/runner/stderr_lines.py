"""A stdio tool server's stderr as log lines of the runner: JSON of the one schema, redacted when each
record is created, carrying the run's fields, instead of raw bytes between the runner's JSON lines."""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from typing import TextIO

log = logging.getLogger("jesus.runner.toolserver")

MAX_LINE_CHARACTERS = 2000


class StderrLines:
    """A pipe to give a server process as its stderr; a thread turns each line into a log record."""

    def __init__(self, server: str) -> None:
        self.server = server
        read_fd, write_fd = os.pipe()
        self.file: TextIO = os.fdopen(write_fd, "w", buffering=1)
        # The reader runs in a copy of this context, so its lines carry the run's log fields.
        context = contextvars.copy_context()
        self._reader = threading.Thread(
            target=context.run, args=(self._pump, read_fd), name=f"stderr-{server}", daemon=True
        )
        self._reader.start()

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", errors="replace") as lines:
            for line in lines:
                text = line.rstrip("\n")
                if text:
                    log.info("Tool server wrote server=%s line=%s", self.server, text[:MAX_LINE_CHARACTERS])

    def close(self) -> None:
        """Close this end (the server has exited): the reader drains what is left and ends."""
        self.file.close()
        self._reader.join(timeout=2)
