"""What guardreasoner sent to OpenTelemetry during one test: a real SDK tracer and meter provider with an
in-memory span exporter and metric reader, which :func:`guardreasoner.telemetry.set_providers` hands the guard
(the ``otel`` fixture of ``tests/conftest.py``). Needs ``opentelemetry-sdk`` (CI's full install)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class CapturedTelemetry:
    """The finished spans and the metrics; ``tracer`` makes the test's own (caller) spans."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans in the order they ended, those called ``name`` when given."""
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` so far (cumulative since the test began); [] when none was recorded."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for recorded in scope.metrics
            if recorded.name == metric
            for point in recorded.data.data_points
        ]

    def metric_names(self) -> dict[str, tuple[str, str]]:
        """Every recorded metric's name: its unit and its instrumentation scope."""
        data = self.reader.get_metrics_data()
        return {
            recorded.name: (recorded.unit, scope.scope.name)
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for recorded in scope.metrics
        }

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
