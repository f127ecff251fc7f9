"""Watch an online-training study live: Start and Stop in JupyterLab, or a figure redrawn in place headless."""

from __future__ import annotations

import io
import threading

import ipywidgets as widgets
from IPython.display import display

from kit.plots import study_monitor
from kit.widgets.live import LiveFigure


class StudyMonitor:
    """Run an :class:`kit.online.OnlineStudy` and redraw :func:`kit.plots.study_monitor` every ``every`` batches.

    Headless (papermill, nbval), :meth:`run` runs the study here and redraws one display in place, so the
    executed notebook keeps the last frame. Interactive, the widget's Start button runs the study in a
    background thread (the kernel stays free) and Stop ends it at the next batch, cancelling running
    simulations; either way ``result`` holds the :class:`~kit.online.results.StudyResult` and ``figure``
    the last frame. :meth:`start`, :meth:`stop` and :meth:`wait` do what the buttons do.
    """

    def __init__(self, study, *, every: int = 10):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1 (batches between redraws), got {every!r}")
        self.study, self.every = study, every
        self.result = self.figure = self.error = None
        self.frames, self.stopped = 0, False
        self._thread: threading.Thread | None = None
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.status = widgets.Label(f"ready: Start runs {study.n_simulations} simulations, Stop ends the study sooner")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = widgets.VBox([widgets.HBox([self.start_button, self.stop_button, self.status]), self.image])

    def _draw(self, result):
        self.figure = study_monitor(result.metrics, result.validation, result.simulations)
        self.frames += 1
        return self.figure

    def run(self, *, progress: bool = True):
        """Run the study to the end here, redrawing one display in place; returns its result."""
        live = LiveFigure(self._draw)
        self.result = self.study.run(progress=progress, callback=live, callback_every=self.every)
        live(self.result)
        return self.result

    def start(self) -> None:
        """Run the study in a background thread, redrawing the widget's image; a second call is an error."""
        if self._thread is not None:
            raise RuntimeError("this monitor's study was already started; make a new OnlineStudy to run again")
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "running"
        self._thread = threading.Thread(target=self._background, name="kit-study-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the study at its next batch: running simulations are cancelled, the result is kept."""
        if self._thread is None:
            raise RuntimeError("the study was not started: call start() (or press Start) first")
        self.stopped = True
        self.study.stop()
        self.stop_button.disabled = True
        self.status.value = "stopping at the next batch"

    def wait(self, timeout: float | None = None):
        """Wait for a started study to end; returns its result (None if still running after ``timeout``)."""
        if self._thread is None:
            raise RuntimeError("the study was not started: call start() (or press Start) first")
        self._thread.join(timeout)
        return self.result

    def _background(self) -> None:
        try:
            result = self.study.run(progress=False, callback=self._show, callback_every=self.every)
            self._show(result)
            self.result = result
            ended = "stopped" if self.stopped else "finished"
            self.status.value = f"{ended}: {result.metrics.sizes.get('batch', 0)} batches"
        except Exception as exc:  # shown in the widget: a background thread has no cell to report to
            self.error = exc
            self.status.value = f"failed: {type(exc).__name__}: {exc}"
        finally:
            self.start_button.disabled = self.stop_button.disabled = True

    def _show(self, result) -> None:
        buffer = io.BytesIO()
        self._draw(result).savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        self.image.layout.display = None
        self.status.value = f"running: batch {result.metrics.sizes.get('batch', 0)}"

    def _ipython_display_(self) -> None:
        display(self.widget)
