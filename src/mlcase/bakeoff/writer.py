"""The bake-off's MLflow runs, written from a background thread so the search never waits on the store."""

from __future__ import annotations

import queue
import threading

from ..case import Case


class TrackingWriter:
    """Writes the bake-off's MLflow runs from a background thread.

    The parent run is created by the thread (after MLflow's import and store setup,
    which can take seconds on a fresh store), then children are logged as they
    arrive. :meth:`close` waits for the queue to drain.
    """

    def __init__(self, case: Case, name: str, tags: dict, params: dict, parent_of: str | None):
        self.case, self.error, self.run_id = case, None, None
        self._q: queue.Queue = queue.Queue()
        # not a daemon: a process that ends right after the bake-off still writes every run
        self._thread = threading.Thread(target=self._work, args=(name, tags, params, parent_of), daemon=False,
                                        name="mlcase-tracking")
        self._thread.start()

    def _work(self, name, tags, params, parent_of):
        from .. import tracking

        try:
            self.run_id = tracking.start_run_id(self.case, name, tags, parent_run_id=parent_of)
            tracking.log_run_data(self.case, self.run_id, params=params)
        except Exception as exc:  # the store is unreachable or broken: the bake-off goes on, the note says so
            self.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            return
        while True:
            item = self._q.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "child":
                    tracking.log_child_run(self.case, self.run_id, **payload)
                elif kind == "final":
                    tracking.log_run_data(self.case, self.run_id, **payload["data"])
                    for fname, text in payload.get("texts", {}).items():
                        tracking.log_run_text(self.case, self.run_id, text, fname)
                    tracking.end_run_id(self.case, self.run_id, payload.get("status", "FINISHED"))
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {str(exc)[:300]}"

    def child(self, name: str, params: dict, metrics: dict, tags: dict, start: float, end: float,
              status: str = "FINISHED", steps: dict | None = None) -> None:
        self._q.put(("child", {"name": name, "params": params, "metrics": metrics, "tags": tags,
                               "start_time": start, "end_time": end, "status": status, "steps": steps or {}}))

    def close(self, data: dict, texts: dict, status: str, timeout: float) -> None:
        """Queue the parent run's final data and wait up to ``timeout`` s for the queue to drain."""
        self._q.put(("final", {"data": data, "texts": texts, "status": status}))
        self._q.put(None)
        self.wait(timeout)

    def abort(self) -> None:
        """End the parent run as FAILED without waiting (the thread writes what is queued, then stops)."""
        self._q.put(("final", {"data": {}, "texts": {}, "status": "FAILED"}))
        self._q.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every run is written; True when done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
