"""When a batch stops waiting for more requests, and how big it may grow.

Batching multiplies throughput because a forest or a PyCaret pipeline predicts 8 rows for
about the cost of one. The batcher (`batching.py`) asks this policy each time it could wait:

- A lone sequential caller never waits: its latency stays at the model's own cost.
- While load is concurrent (the last batch held several requests), a batch waits up to
  `max_wait_s`, but only until it holds as many requests as the last one (8 callers in
  lockstep get batches of 8 without waiting out the window each time), and never longer than
  the last model call took: merging two groups that would take turns pays only while the wait
  is shorter than the model call it saves.
- Requests queued before the last batch was answered come from other callers than that
  batch's, whose next calls come a round trip later: the batch then expects both groups, so
  two groups taking turns merge into one model call.
- Waiting only for as many calls as the last batch held would keep groups that take turns
  apart for good, so now and then a concurrent batch is *stretched*: it waits out its whole
  window and whoever comes back meanwhile joins it.
- With the model on the loop's thread, calls that arrive during a model call are still in
  gRPC's hands when it ends (its poller needs the GIL, which it gets while the loop sleeps).
  When every recent batch held one request, the batcher cannot tell a lone caller from such
  callers, so now and then it *probes*: it sleeps a short arrival window before cutting.
- A model call shorter than the arrival window leaves no time for calls to pile up: after
  one, a single-request batch does not probe. (A compiled model's requests never reach the
  batcher: see `AdaptiveBatcher.predict`.)

Probes and stretches that find nobody more double the interval to the next one (up to every
`MOST_BATCHES_BETWEEN_PROBES` batches), so a lone caller almost never pays for them; load that
turns concurrent resets it. bench/PREDICTOR.md has the measurements behind each rule.
"""

from __future__ import annotations

#: How long a probe lets the event loop wait for calls that arrived during an on-thread model
#: call (epoll rounds the wait up to its own resolution).
ARRIVAL_WINDOW_S = 0.0003
#: Most batches between two probes (or two stretches) once they keep finding nobody more.
MOST_BATCHES_BETWEEN_PROBES = 64


class _Backoff:
    """Every how many batches something is tried: reset by success, doubled by failure."""

    def __init__(self) -> None:
        self.interval = 1
        self.since = 0
        self.made = 0

    def due(self) -> bool:
        self.since += 1
        if self.since < self.interval:
            return False
        self.made += 1
        return True

    def outcome(self, found_calls: bool) -> None:
        self.since = 0
        self.interval = 1 if found_calls else min(2 * self.interval, MOST_BATCHES_BETWEEN_PROBES)


class BatchPolicy:
    """The batcher's decisions and what they are based on: the last batches and model calls."""

    def __init__(self, max_batch_size: int, max_wait_s: float, enabled: bool = True) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.enabled = enabled
        self.last_batch_requests = 1
        #: When the last batch's callers got their answers (perf_counter seconds).
        self.last_answered_at = 0.0
        #: How long the last model call took, batch hand-over included.
        self.last_call_s = 0.0
        self._probes = _Backoff()
        self._stretches = _Backoff()

    @property
    def probes_made(self) -> int:
        return self._probes.made

    @property
    def stretches_made(self) -> int:
        return self._stretches.made

    def takes_more(self, rows: int) -> bool:
        """Whether a batch of `rows` rows may take another request at all."""
        return self.enabled and rows < self.max_batch_size

    def fits(self, rows: int, more_rows: int) -> bool:
        """Whether `more_rows` join a batch of `rows` within `max_batch_size`."""
        return rows + more_rows <= self.max_batch_size

    def wait_s(self) -> float:
        """How long a concurrent batch may wait to fill: `max_wait_s`, at most one model call."""
        return min(self.max_wait_s, self.last_call_s)

    def expected_requests(self, queued_through_last: int) -> int:
        """Requests a batch expects: the last batch's, plus those queued while it ran."""
        return self.last_batch_requests + queued_through_last

    def keeps_waiting(self, requests: int, expected: int, stretch: bool) -> bool:
        """Whether a batch of `requests`, the queue empty, waits for more (until its window
        ends)."""
        return expected > 1 and self.wait_s() > 0 and (requests < expected or stretch)

    def stretch_is_due(self) -> bool:
        """Whether this batch waits its whole window for calls beyond the expected ones."""
        if not self.enabled or self.last_batch_requests < 2 or self.wait_s() <= 0:
            return False
        return self._stretches.due()

    def probe_is_due(self) -> bool:
        """Whether this single-request batch first waits the arrival window."""
        if self.last_call_s < ARRIVAL_WINDOW_S:
            return False  # a model call this short leaves no time for calls to pile up
        return self._probes.due()

    def probed(self, found_calls: bool) -> None:
        self._probes.outcome(found_calls)

    def batch_cut(self, requests: int, stretched: bool) -> None:
        """Learn from a batch just cut: `requests` it holds (the one left for the next batch
        included), and whether it was stretched."""
        if stretched:
            self._stretches.outcome(found_calls=requests > self.last_batch_requests)
        elif requests > 1 and self.last_batch_requests == 1:
            self._stretches.outcome(found_calls=True)  # load just became concurrent: look soon
        self.last_batch_requests = requests
        if requests > 1:
            self._probes.outcome(found_calls=True)
