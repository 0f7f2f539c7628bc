"""Logging state for tests that run the operator's logging setup in the test process.

:func:`kept_logging` restores what the setup changes (the root logger's handlers and level,
the level, propagation and handlers of the loggers it touches), so one test's kopf handler
or capped levels do not leak into the next. :class:`Capture` is a handler that keeps records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["Capture", "kept_logging"]


class Capture(logging.Handler):
    """Keeps every record it is handed (at any level) and its formatted text."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@contextmanager
def kept_logging(names: Iterable[str] = ()) -> Iterator[None]:
    """Restore the root logger and the loggers ``names`` (plus kopf's and asyncio's) on exit."""
    loggers = [logging.getLogger()] + [
        logging.getLogger(n) for n in {*names, "kopf", "kopf.objects", "asyncio"}
    ]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    try:
        yield
    finally:
        for lg, level, propagate, handlers in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers[:] = handlers
