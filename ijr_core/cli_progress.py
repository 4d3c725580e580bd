"""Progress output of the command line: a one-line bar on a terminal, periodic log lines
otherwise (stderr), for runs and sweeps (steps) and grids (runs)."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time


class Progress:
    """A one-line progress bar with steps/s on stderr, refreshed from a polling thread.
    When stderr is not a terminal (a log file, a pipe) it writes one line every
    ``log_every`` seconds instead, and a last one on :meth:`close`."""

    def __init__(self, total: int, label: str = "", stream=None, interval: float = 0.5,
                 log_every: float = 30.0) -> None:
        self.total, self.label = max(total, 1), label
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.log_every = interval, log_every
        self.value = 0
        self._t0 = self._logged = time.perf_counter()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the poller and print() write from two threads
        self._thread: threading.Thread | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self.value / elapsed if elapsed > 0 else 0.0
        frac = min(self.value / self.total, 1.0)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        eta = (self.total - self.value) / rate if rate > 0 else math.inf
        eta_s = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        return (f"{self.label}[{bar}] {self.value}/{self.total} {100 * frac:3.0f}% "
                f"{rate:7.1f} steps/s  elapsed {elapsed:5.1f}s  eta {eta_s}")

    def start(self, poll) -> Progress:
        def loop():
            while not self._stop.wait(self.interval):
                self.value = poll()
                self._draw()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def print(self, text: str) -> None:
        """Write a line of its own above the bar (the bar is redrawn on the next refresh)."""
        with self._write_lock:
            self.stream.write(("\r\033[K" if self._tty else "") + text + "\n")
            self.stream.flush()

    def _draw(self, final: bool = False) -> None:
        with self._write_lock:
            if self._tty:
                self.stream.write("\r" + self.line() + ("\n" if final else ""))
            elif final or time.perf_counter() - self._logged >= self.log_every:
                self._logged = time.perf_counter()
                self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self, value: int | None = None, clear: bool = False) -> None:
        """Stop refreshing; draw the final bar at ``value``, or with ``clear`` (on an error)
        wipe the bar so that the error message stands alone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if value is not None:
            self.value = value
        if not clear:
            self._draw(final=True)
        elif self._tty:
            with self._write_lock:
                self.stream.write("\r\033[K")
                self.stream.flush()


@contextlib.contextmanager
def progress_bar(quiet: bool, total: int, label: str, poll):
    """A started :class:`Progress` (None when ``quiet``), closed at ``poll()`` on leaving,
    wiped on an exception."""
    progress = None if quiet else Progress(total, label).start(poll)
    try:
        yield progress
    except BaseException:
        if progress is not None:
            progress.close(clear=True)
        raise
    if progress is not None:
        progress.close(poll())


class GridBar(Progress):
    """The progress line of a grid: runs done / total, running, failed, ETA."""

    def __init__(self, tracker, **kw) -> None:
        super().__init__(tracker.total, "grid ", **kw)
        self.tracker = tracker

    def line(self) -> str:
        return self.label + self.tracker.line()
