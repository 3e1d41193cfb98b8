"""Render pipeline events: a rich progress display on a terminal, plain lines in CI, or nothing."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from socikit.cli.console import stderr

if TYPE_CHECKING:
    from rich.progress import Progress

    from socikit.pipeline.events import Event

MODES = ("auto", "plain", "none")


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class ProgressRenderer:
    """Callable event sink; use as a context manager around the pipeline call."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            # Asked of the file, not of a rich Console: creating one imports rich (~20 ms) that
            # plain lines do not need.
            mode = "rich" if sys.stderr.isatty() and not os.environ.get("CI") else "plain"
        self.mode = mode
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressRenderer:
        if self.mode == "rich":
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),  # descriptions hold digests and paths: literal
                TimeElapsedColumn(),
                console=stderr.get(),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        if self.mode == "none":
            return
        with self._lock:
            self._render(event)

    def _render(self, event: Event) -> None:
        from socikit.pipeline.events import LayerFinished, LayerStarted, Message

        if isinstance(event, LayerStarted):
            text = f"layer {_short(event.layer.digest)} ({event.layer.size} bytes)"
            if self._progress is not None:
                self._tasks[event.layer.digest] = self._progress.add_task(text + ": indexing", total=None)
            return
        if isinstance(event, LayerFinished):
            o = event.outcome
            if o.skipped:
                text = f"layer {_short(o.layer.digest)}: skipped, {o.skipped}"
            else:
                how = "from cache" if o.cached else f"in {o.seconds:.2f} s"
                text = f"layer {_short(o.layer.digest)}: ztoc with {o.spans} spans, {o.files} files ({how})"
            if self._progress is not None:
                task = self._tasks.get(o.layer.digest)
                if task is not None:
                    self._progress.update(task, description=text, total=1, completed=1)
            else:
                print(text, file=sys.stderr, flush=True)
            return
        if isinstance(event, Message):
            if self._progress is not None:
                self._progress.console.print(event.text, markup=False, emoji=False, highlight=False)
            else:
                print(event.text, file=sys.stderr, flush=True)
