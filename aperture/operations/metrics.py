"""`--metrics`: the observer that turns the server's hooks into Prometheus metrics, and the scrape.

`MetricsObserver` makes its metric families when the server starts (`server_started`), never
earlier: a `--num-procs` supervisor builds a `Server` before forking and must hold no metric. Hooks
that arrive before that (a `/healthz` during start-up) are ignored. Each hook is one dict lookup
of the app's pre-bound children plus an `inc`/`observe`; unknown apps and label values fall into
fixed buckets (see `metrics_families`).

A scrape (`exposition`) shows, in a single process, a private registry: Aperture's families plus
prometheus-client's process collector (`process_*`); with `--num-procs`, every worker's figures
read from the multiprocess files (see `metrics_multiprocess`; no `process_*` there, the
per-worker `aperture_process_*` gauges instead). Both add `aperture_info`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bokeh
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from aperture import __version__
from aperture.operations import metrics_multiprocess
from aperture.operations.metrics_families import OTHER, Families
from aperture.operations.metrics_sampler import Sampler
from aperture.operations.observer import Observer, WebsocketEnd


class _InfoCollector(Collector):
    """`aperture_info{version, bokeh_version} 1`."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "aperture_info", "Aperture's and Bokeh's versions.", labels=["version", "bokeh_version"]
        )
        info.add_metric([__version__, bokeh.__version__], 1.0)
        yield info


class MetricsObserver(Observer):
    """Counts what the server reports; `exposition` renders it for a scraper."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._families: Families | None = None
        self._sampler: Sampler | None = None
        self._registry: CollectorRegistry | None = None  # single process: what a scrape reads

    # -- life cycle ----------------------------------------------------------------

    def server_started(self, core: Any) -> None:
        if self._families is not None:
            return
        multiprocess = metrics_multiprocess.active_directory() is not None
        families = Families(core.apps.keys(), multiprocess=multiprocess)
        if families.registry is not None:
            ProcessCollector(registry=families.registry)
            families.registry.register(_InfoCollector())
            self._registry = families.registry
        self._families = families
        self._sampler = Sampler(core, families)
        self._sampler.start()

    def server_stopping(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()

    # -- the scrape ----------------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape's body and content type (OpenMetrics when the scraper asks for it)."""
        if self._sampler is not None:
            self._sampler.refresh()
        registry = self._registry
        if registry is None:
            registry = (
                metrics_multiprocess.scrape_registry()
                if metrics_multiprocess.active_directory() is not None
                else CollectorRegistry()
            )
            registry.register(_InfoCollector())
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type

    # -- hooks ---------------------------------------------------------------------

    def session_created(self, app: str, seconds: float) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.created.inc()
            series.build_seconds.observe(seconds)

    def session_build_failed(self, app: str) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.build_failed.inc()

    def session_destroyed(self, app: str) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.destroyed.inc()

    def document_pulled(self, app: str, seconds: float, nbytes: int) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.pull_seconds.observe(seconds)
            series.pull_bytes.inc(nbytes)

    def message_handled(self, app: str, msgtype: str, seconds: float) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.messages.get(msgtype, series.messages[OTHER]).observe(seconds)

    def callback_ran(self, app: str, session_id: str, kind: str, seconds: float) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.callbacks.get(kind, series.callbacks[OTHER]).observe(seconds)

    def slow_callback(self, app: str, session_id: str, what: str, seconds: float) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.slow.inc()

    def websocket_opened(self, app: str, relayed: bool) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            (series.relayed if relayed else series.websockets).inc()

    def websocket_closed(self, end: WebsocketEnd) -> None:
        # Only websockets that `websocket_opened` reported carry a session id.
        if (
            end.session_id
            and self._families is not None
            and (series := self._families.apps.get(end.app)) is not None
        ):
            (series.relayed if end.relayed else series.websockets).dec()

    def bytes_sent(self, app: str, nbytes: int) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            series.sent.inc(nbytes)

    def request_finished(self, handler: Any) -> None:
        if self._families is None:
            return
        counter, duration = self._families.request(
            type(handler), getattr(handler, "route", ""), handler.get_status()
        )
        counter.inc()
        duration.observe(handler.request.request_time())

    def error(self, kind: str) -> None:
        if self._families is not None:
            self._families.error(kind).inc()

    def admission_refused(self, app: str, scope: str) -> None:
        if self._families is not None and (series := self._families.apps.get(app)) is not None:
            child = series.refused.get(scope)
            if child is not None:
                child.inc()
