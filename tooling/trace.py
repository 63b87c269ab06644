"""`workshop trace`: the last requests of a traced stage as text waterfalls, no server needed.

A stage started with `workshop up STAGE --trace` (or with WORKSHOP_TRACE_FILE set) appends
every finished span to one JSON-lines file (workshop/tracing.py). This reads it back,
groups the spans by trace, and draws each trace as a tree: one line per span, indented
under its parent, with the service that made it, a bar placed on the trace's timeline,
and its duration.
"""

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from workshop import tracing

BAR_WIDTH = 40
NAME_WIDTH = 46
SERVICE_COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "red", "bright_cyan",
                   "bright_green", "bright_yellow", "bright_magenta", "bright_blue")  # fmt: skip


@dataclass
class Span:
    """One finished span, as the file exporter wrote it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    kind: str = "INTERNAL"
    status: str = "UNSET"
    attributes: dict[str, Any] = field(default_factory=dict)
    children: list["Span"] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The span's name, and for a call to another service the path it called."""
        url = self.attributes.get("url.full") or self.attributes.get("http.url")
        if self.kind == "CLIENT" and url:
            return f"{self.name} {urlsplit(str(url)).path}"
        return self.name

    @property
    def milliseconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Trace:
    """The spans of one trace, as trees (one root, unless a parent's span is missing)."""

    trace_id: str
    roots: list[Span]
    spans: list[Span]

    @property
    def start_ns(self) -> int:
        return min(span.start_ns for span in self.spans)

    @property
    def end_ns(self) -> int:
        return max(span.end_ns for span in self.spans)

    @property
    def services(self) -> set[str]:
        return {span.service for span in self.spans}


def read_spans(path: Path) -> list[Span]:
    """Read the spans of a trace file; a line cut short (a process still writing) is skipped."""
    spans = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
                spans.append(
                    Span(**{k: record[k] for k in Span.__dataclass_fields__ if k in record})
                )
            except (ValueError, TypeError, KeyError):
                continue
    return spans


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Group spans into traces, children under their parents, oldest trace first."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    traces = []
    for trace_id, members in by_trace.items():
        by_id = {span.span_id: span for span in members}
        roots = []
        for span in sorted(members, key=lambda s: s.start_ns):
            parent = by_id.get(span.parent_id or "")
            (parent.children if parent else roots).append(span)
        traces.append(Trace(trace_id, roots, members))
    return sorted(traces, key=lambda t: t.start_ns)


def render(trace: Trace, colour: bool = True) -> list[str]:
    """Draw one trace: a heading, then a line per span (service, name, bar, duration)."""
    start, total = trace.start_ns, max(trace.end_ns - trace.start_ns, 1)
    services = sorted(trace.services)
    heading = (
        f"trace {trace.trace_id}  {trace.roots[0].name}  {total / 1e6:.1f} ms  "
        f"{len(trace.spans)} spans, {len(services)} services"
    )
    lines = [click.style(heading, bold=True) if colour else heading]
    service_width = max(len(s) for s in services)

    def draw(span: Span, depth: int) -> None:
        left = math.floor((span.start_ns - start) / total * BAR_WIDTH)
        right = max(left + 1, math.ceil((span.end_ns - start) / total * BAR_WIDTH))
        bar = " " * left + "█" * (right - left) + " " * (BAR_WIDTH - right)
        label = ("  " * depth + span.label)[:NAME_WIDTH]
        mark = " !" if span.status == "ERROR" else ""
        service = f"{span.service:<{service_width}}"
        if colour:
            tint = SERVICE_COLOURS[services.index(span.service) % len(SERVICE_COLOURS)]
            service, bar = click.style(service, fg=tint), click.style(bar, fg=tint)
        lines.append(
            f"  {service}  {label:<{NAME_WIDTH}} |{bar}| {span.milliseconds:8.1f} ms{mark}"
        )
        for child in span.children:
            draw(child, depth + 1)

    for root in trace.roots:
        draw(root, 0)
    return lines


@click.command("trace")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The spans [default: WORKSHOP_TRACE_FILE, .workshop/traces.jsonl]")  # fmt: skip
@click.option("--last", default=3, show_default=True, help="How many of the latest traces.")
@click.option("--trace-id", default=None, help="Show this trace only.")
@click.option("--service", default=None, help="Only traces this service took part in.")
def trace(path: Path | None, last: int, trace_id: str | None, service: str | None) -> None:
    """Show the last requests of a traced stage (`workshop up STAGE --trace`) as waterfalls."""
    path = path or tracing.trace_file() or tracing.default_trace_file()
    if not path.exists():
        raise click.ClickException(
            f"no spans in {path}: start a stage with `workshop up STAGE --trace`, use it, retry"
        )
    traces = group_traces(read_spans(path))
    if trace_id:
        traces = [t for t in traces if t.trace_id == trace_id]
    if service:
        traces = [t for t in traces if service in t.services]
    if not traces:
        raise click.ClickException(f"no such trace in {path}")
    for shown in traces[-last:]:
        click.echo("\n".join(render(shown)) + "\n")
