"""`workshop bench`: the same load against every stage in one run, reported side by side.

Each stage starts as a user starts it (`workshop up STAGE --port P` in a subprocess, on
free loopback ports), loads its sample data, is seeded with a few tags and warmed up.
Then every scenario of bench/locustfile.py runs against every stage, interleaved
(for each repeat, for each scenario, for each stage), so drift on a shared machine hits
all stages alike. While a run goes, psutil samples the stage's process tree and the
load generator's every ~0.5 s. The figures go to RESULTS.md, bench.png and results.json.
"""

import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import requests

from workshop import config
from workshop.tools import stages
from workshop.tools.launcher import LaunchedStage, StageDidNotStart, process_tree

LOCUSTFILE = config.ROOT / "bench" / "locustfile.py"
SCENARIOS = ("reads", "logged-in", "home", "lag")
DEFAULT_DURATION = 20
# Two cores run the stage and the load generator both: a few users already saturate the
# single-worker stages (no think time), more would only queue and starve the generator.
DEFAULT_USERS = 8
DEFAULT_REPEAT = 3
DEFAULT_OUT = config.ROOT / "bench" / "results"
SAMPLE_INTERVAL = 0.5
# A locust run gets its duration plus this much to start, stop and write its figures.
LOCUST_SLACK = 60.0
SEEDED_TAGS = {"bench-async": "asyncio", "bench-web": "django", "bench-data": "pandas",
               "bench-testing": "pytest", "bench-ml": "numpy"}  # fmt: skip
WARM_UP_PATHS = ["/", "/api/tags", "/api/recommendations", "/search?q=flask",
                 "/tags/bench-web", "/api/search?q=web+performance&page=2"]  # fmt: skip
MB = 1024 * 1024
# What the bench needs beyond `workshop up`: the `bench` extra in pyproject.toml.
BENCH_EXTRA = ("locust", "matplotlib", "psutil")
INSTALL_BENCH_EXTRA = "pip install -e '.[bench]'"


def missing_bench_modules() -> list[str]:
    """Return the modules of the bench extra that this interpreter cannot import."""
    # Tried in a child: importing locust monkey-patches the whole process (gevent).
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        print(name)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, *BENCH_EXTRA], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


# --- Starting and stopping stages -------------------------------------------------------


def seed_and_warm_up(url: str) -> None:
    """Tag a few posts (so tag pages have posts), then request each kind of page once."""
    http = requests.Session()
    credentials = {"username": f"bench_seed_{uuid.uuid4().hex[:8]}",
                   "password": f"pw-{uuid.uuid4().hex}"}  # fmt: skip
    http.post(f"{url}/api/users", json=credentials, timeout=30).raise_for_status()
    answer = http.post(f"{url}/api/tokens", json=credentials, timeout=30)
    auth = {"Authorization": f"Bearer {answer.json()['token']}"}
    for tag, query in SEEDED_TAGS.items():
        found = http.get(f"{url}/api/search", params={"q": query, "per_page": 5}, timeout=30)
        for post in found.json()["items"]:
            http.post(f"{url}/api/posts/{post['id']}/tags", json={"tag": tag},
                      headers=auth, timeout=30).raise_for_status()  # fmt: skip
    for path in WARM_UP_PATHS:
        http.get(url + path, timeout=30).raise_for_status()


# --- Sampling a process tree --------------------------------------------------------------


@dataclass
class TreeSample:
    """One look at a process tree: when, its total CPU seconds so far, its total RSS."""

    at: float
    cpu_seconds: float
    rss_bytes: int


class TreeSampler:
    """Sample a process tree's CPU time and resident memory every SAMPLE_INTERVAL seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[TreeSample] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        known: dict[int, Any] = {}
        while True:
            cpu, rss = 0.0, 0
            for process in process_tree(self.pid):
                process = known.setdefault(process.pid, process)  # keep one handle per pid
                try:
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    rss += process.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append(TreeSample(time.time(), cpu, rss))
            if self._done.wait(SAMPLE_INTERVAL):
                return

    def figures(self, start: float, stop: float) -> tuple[float, float]:
        """Return (peak RSS in MB, CPU as % of one core) over a wall-clock window."""
        inside = [s for s in self.samples if start <= s.at <= stop] or self.samples[-2:]
        if not inside:
            return 0.0, 0.0
        peak = max(s.rss_bytes for s in inside) / MB
        first, last = inside[0], inside[-1]
        seconds = last.at - first.at
        cpu = 100 * (last.cpu_seconds - first.cpu_seconds) / seconds if seconds > 0 else 0.0
        return peak, cpu


# --- One run: one scenario against one stage ---------------------------------------------


@dataclass
class RunResult:
    """The figures of one locust run of one scenario against one stage."""

    stage: str
    scenario: str
    repeat: int
    requests: int
    seconds: float
    rps: float
    p50: float
    p95: float
    p99: float
    errors: int
    stage_peak_rss_mb: float
    stage_cpu_pct: float
    locust_cpu_pct: float
    lag_p50: float | None = None
    lag_p99: float | None = None
    lag_count: int = 0
    error_examples: dict[str, str] = field(default_factory=dict)


def percentile(values: Sequence[float], p: float) -> float:
    """Return the nearest-rank p-th percentile of values (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def locust_command(url: str, users: int, duration: int, csv_prefix: Path) -> list[str]:
    """Return the headless locust command line for one run."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--stop-timeout", "0",
            "--csv", str(csv_prefix), "--host", url, "--only-summary"]  # fmt: skip


@contextmanager
def own_process_group(command: list[str], env: dict[str, str], log: Path) -> Iterator[Any]:
    """Run a command in its own process group; kill the group on the way out, whatever happens."""
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=config.ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_scenario(
    stage: LaunchedStage, stage_pid: int, scenario: str, options: "BenchOptions", repeat: int
) -> RunResult:
    """Run one scenario against one stage with locust, sampling both process trees."""
    name = f"{scenario}.{stage.name}.{repeat}"
    raw = options.out / "raw"
    samples_path = raw / f"{name}.json"
    env = {**os.environ, "BENCH_SCENARIO": scenario, "BENCH_SAMPLES": str(samples_path)}
    command = locust_command(stage.url, options.users, options.duration, raw / name)
    with (
        own_process_group(command, env, raw / f"{name}.log") as locust,
        TreeSampler(stage_pid) as stage_sampler,
        TreeSampler(locust.pid) as locust_sampler,
    ):
        try:
            locust.wait(timeout=options.duration + LOCUST_SLACK)
        except subprocess.TimeoutExpired:
            raise click.ClickException(f"locust did not finish: {raw / name}.log") from None
    # Locust exits 1 when some requests failed: the errors are counted, the run stands.
    if locust.returncode not in (0, 1) or not samples_path.exists():
        raise click.ClickException(f"locust failed ({locust.returncode}): see {raw / name}.log")
    figures = json.loads(samples_path.read_text())
    start, stop = figures["window"]
    stage_rss, stage_cpu = stage_sampler.figures(start, stop)
    _, locust_cpu = locust_sampler.figures(start, stop)
    return summarize_run(stage.name, scenario, repeat, figures, stage_rss, stage_cpu, locust_cpu)


def summarize_run(stage: str, scenario: str, repeat: int, figures: dict[str, Any],
                  stage_rss: float, stage_cpu: float, locust_cpu: float) -> RunResult:  # fmt: skip
    """Turn a run's raw samples into its figures."""
    start, stop = figures["window"]
    seconds = max(stop - start, 1e-9)
    latencies = [ms for _, ms, _ in figures["requests"]]
    lags = figures["lag_ms"]
    return RunResult(
        stage=stage, scenario=scenario, repeat=repeat,
        requests=len(latencies), seconds=round(seconds, 2), rps=len(latencies) / seconds,
        p50=percentile(latencies, 50), p95=percentile(latencies, 95),
        p99=percentile(latencies, 99), errors=sum(figures["errors"].values()),
        stage_peak_rss_mb=stage_rss, stage_cpu_pct=stage_cpu, locust_cpu_pct=locust_cpu,
        lag_p50=percentile(lags, 50) if scenario == "lag" else None,
        lag_p99=percentile(lags, 99) if scenario == "lag" else None,
        lag_count=len(lags), error_examples=figures["error_examples"],
    )  # fmt: skip


# --- The whole bench ---------------------------------------------------------------------


@dataclass
class BenchOptions:
    """What to run: which stages and scenarios, for how long, with how many users."""

    stages: list[str]
    scenarios: list[str]
    duration: int
    users: int
    repeat: int
    out: Path
    command: str


def start_stages(names: Sequence[str], log_dir: Path, running: list[LaunchedStage]) -> None:
    """Start each stage in turn (appending it to `running` first, so it is always stopped)."""
    for name in names:
        stage = LaunchedStage(name, log_dir)
        running.append(stage)
        click.echo(f"bench: starting {name} ...", err=True)
        try:
            stage.start()
        except StageDidNotStart:
            raise click.ClickException(f"{name} did not start; see {stage.log_path}") from None
        seed_and_warm_up(stage.url)
        click.echo(f"bench: {name} is up at {stage.url} (seeded and warmed up)", err=True)


def run_all(options: BenchOptions) -> list[RunResult]:
    """Start every stage, run every scenario round-robin, and stop every stage."""
    # All stages stay up for the whole run: starting one loads its sample data (seconds of
    # CPU), which per run would cost minutes and measure cold stages; an idle gunicorn costs
    # next to nothing of the 2 cores, and interleaving gives every stage the same history.
    (options.out / "raw").mkdir(parents=True, exist_ok=True)
    running: list[LaunchedStage] = []
    results: list[RunResult] = []
    try:
        start_stages(options.stages, options.out / "raw", running)
        total = options.repeat * len(options.scenarios) * len(running)
        for repeat in range(1, options.repeat + 1):
            for scenario in options.scenarios:
                for stage in running:
                    assert stage.process is not None
                    click.echo(f"bench: [{len(results) + 1}/{total}] {scenario} on "
                               f"{stage.name} (repeat {repeat})", err=True)  # fmt: skip
                    result = run_scenario(stage, stage.process.pid, scenario, options, repeat)
                    click.echo(f"bench:   {result.rps:.1f} req/s, p50 {result.p50:.0f} ms, "
                               f"{result.errors} errors", err=True)  # fmt: skip
                    results.append(result)
    finally:
        for stage in running:
            stage.stop()
    return results


# --- Summaries, ratios, the report --------------------------------------------------------

FIGURES = ("rps", "p50", "p95", "p99", "stage_peak_rss_mb", "stage_cpu_pct", "locust_cpu_pct",
           "lag_p50", "lag_p99")  # fmt: skip


def summarize(results: list[RunResult]) -> list[dict[str, Any]]:
    """Return one summary per (scenario, stage): medians, spreads, error totals."""
    summaries = []
    keys = dict.fromkeys((r.scenario, r.stage) for r in results)
    for scenario, stage in keys:
        runs = [r for r in results if (r.scenario, r.stage) == (scenario, stage)]
        summary: dict[str, Any] = {"scenario": scenario, "stage": stage, "runs": len(runs),
                                   "errors": sum(r.errors for r in runs)}  # fmt: skip
        for name in FIGURES:
            values = [getattr(r, name) for r in runs if getattr(r, name) is not None]
            if values:
                summary[name] = statistics.median(values)
                summary[f"{name}_min"], summary[f"{name}_max"] = min(values), max(values)
        summaries.append(summary)
    return summaries


def add_ratios(summaries: list[dict[str, Any]], baseline: str) -> None:
    """Add each figure's ratio to the baseline stage's, in the same scenario."""
    base = {s["scenario"]: s for s in summaries if s["stage"] == baseline}
    for summary in summaries:
        reference = base.get(summary["scenario"], {})
        for name in (*FIGURES, "errors"):
            value, ref = summary.get(name), reference.get(name)
            if value is not None and ref:
                summary[f"{name}_ratio"] = value / ref


def baseline_stage(names: Sequence[str]) -> str:
    """Return the stage the ratios refer to: 01-monolith if measured, else the first."""
    first = stages.all_stages()[0].name
    return first if first in names else names[0]


def cell(summary: dict[str, Any], name: str, digits: int = 0) -> str:
    """Format a median with its ratio to the baseline, e.g. `41 ×0.48`."""
    value = summary.get(name)
    if value is None:
        return "–"
    ratio = summary.get(f"{name}_ratio")
    return f"{value:,.{digits}f}" + (f" ×{ratio:.2f}" if ratio is not None else "")


def spread(summary: dict[str, Any], name: str, digits: int = 0) -> str:
    """Format the min–max of a figure over the repeats."""
    if f"{name}_min" not in summary:
        return "–"
    return f"{summary[f'{name}_min']:,.{digits}f}–{summary[f'{name}_max']:,.{digits}f}"


def figures_table(summaries: list[dict[str, Any]]) -> str:
    """Return the main table: one row per scenario and stage."""
    lines = [
        "| scenario | stage | req/s | req/s min–max | p50 ms | p50 min–max | p95 ms | p99 ms "
        "| errors | stage peak RSS MB | stage CPU % | locust CPU % |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['scenario']} | {s['stage']} | {cell(s, 'rps', 1)} | {spread(s, 'rps', 1)} "
            f"| {cell(s, 'p50')} | {spread(s, 'p50')} | {cell(s, 'p95')} | {cell(s, 'p99')} "
            f"| {s['errors']} | {cell(s, 'stage_peak_rss_mb')} | {cell(s, 'stage_cpu_pct')} "
            f"| {cell(s, 'locust_cpu_pct')} |"
        )
    return "\n".join(lines)


def lag_table(summaries: list[dict[str, Any]]) -> str:
    """Return the write-to-visible lag table (empty if the lag scenario did not run)."""
    rows = [s for s in summaries if s["scenario"] == "lag" and "lag_p50" in s]
    if not rows:
        return ""
    lines = [
        "| stage | lag p50 ms | lag p50 min–max | lag p99 ms | errors (incl. not visible in 5 s) |",
        "|---|--:|--:|--:|--:|",
    ]
    for s in rows:
        lines.append(f"| {s['stage']} | {cell(s, 'lag_p50', 1)} | {spread(s, 'lag_p50', 1)} "
                     f"| {cell(s, 'lag_p99', 1)} | {s['errors']} |")  # fmt: skip
    return "\n".join(lines)


def store_description() -> str:
    """Say which store the stages used (never printing the URL: it may hold a password)."""
    if config.env("MONGO_URL"):
        return "a MongoDB server (MONGO_URL set)"
    return "the embedded, in-process MongoDB emulation (mongomock; MONGO_URL unset)"


def run_description(options: BenchOptions, elapsed: float, load: Sequence[float]) -> str:
    """Return the report's opening list: command, date, machine, load, store."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    return "\n".join([
        f"- command: `{options.command}`",
        f"- date: {date}; the whole run took {elapsed / 60:.1f} min",
        f"- machine: {os.cpu_count()} cores ({machine}), shared by the stages and locust;"
        f" 1-min load average {load[0]:.1f} before the run, {load[1]:.1f} after"
        " (above the core count: other programs competed for the cores)",
        f"- load: {options.users} locust users with no think time, {options.duration} s per run,"
        f" {options.repeat} repeat(s), interleaved round-robin over the stages",
        f"- store: {store_description()}",
    ])  # fmt: skip


def lag_section(summaries: list[dict[str, Any]]) -> str:
    """Return the lag table with its heading line, or nothing if lag did not run."""
    table = lag_table(summaries)
    if not table:
        return ""
    return (
        "Write-to-visible lag (tag a post through the front door, poll `GET /api/posts/<id>`"
        " until the tag shows; from the 201 to the end of the first read that shows it):"
        f"\n\n{table}\n\n"
    )


def render_report(
    summaries: list[dict[str, Any]], options: BenchOptions, elapsed: float, load: Sequence[float]
) -> str:
    """Return RESULTS.md: how it was measured, the tables, and how to read them."""
    base = baseline_stage(options.stages)
    return f"""# Benchmark: every stage under the same load

{run_description(options, elapsed, load)}

{figures_table(summaries)}

{lag_section(summaries)}![requests/s and p99 per scenario and stage](bench.png)

## How to read this

- Each figure is the median over the repeats; `×r` is its ratio to **{base}** in the same
  scenario and the same run (×0.50 on req/s: half the throughput; ×2.00 on p50: twice
  the latency). The min–max columns show the spread over the repeats: differences smaller
  than the spread are noise.
- Latencies are exact percentiles of every request in the measured window (from the
  moment every user has registered, for the scenarios that log in, to the end). Errors count
  every non-2xx answer, timeout (10 s) and failed task, set-up included, over all repeats.
- Memory is the peak of the summed resident memory of the stage's whole process tree
  (`workshop up` and every server it runs; pages shared between a gunicorn master and its
  worker count twice). CPU is averaged over the run, in % of one core (200 % = both cores).
- The load generator runs on the same {os.cpu_count()} cores: its own CPU share (locust CPU %) is
  CPU the stage could not use. Compare stages with each other, not with other machines.
- The store here was {store_description()}.
  On that embedded default every query scans and copies the collection in Python inside the
  serving process, so store-bound numbers (search, recommendations, tag pages) measure the
  emulation, not MongoDB. With `MONGO_URL` set, the same command measures a real server.
"""


def write_plot(summaries: list[dict[str, Any]], path: Path) -> None:
    """Write grouped bars of requests/s and p99 per scenario and stage, with min–max bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(s["scenario"] for s in summaries))
    stage_names = list(dict.fromkeys(s["stage"] for s in summaries))
    width = 0.8 / len(stage_names)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, name, label in ((axes[0], "rps", "requests/s"), (axes[1], "p99", "p99 latency (ms)")):
        for i, stage in enumerate(stage_names):
            rows = [next((s for s in summaries if s["scenario"] == sc and s["stage"] == stage), {})
                    for sc in scenarios]  # fmt: skip
            values = [r.get(name, 0) for r in rows]
            low = [v - r.get(f"{name}_min", v) for v, r in zip(values, rows, strict=True)]
            high = [r.get(f"{name}_max", v) - v for v, r in zip(values, rows, strict=True)]
            positions = [
                x + (i - (len(stage_names) - 1) / 2) * width for x in range(len(scenarios))
            ]
            axis.bar(positions, values, width, yerr=[low, high], capsize=3, label=stage)
        axis.set_xticks(range(len(scenarios)), scenarios)
        axis.set_ylabel(label)
        axis.set_title(f"{label} (median, bars: min–max)")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(
    results: list[RunResult], options: BenchOptions, elapsed: float, load: Sequence[float]
) -> str:
    """Write RESULTS.md, bench.png and results.json into options.out; return the report."""
    summaries = summarize(results)
    add_ratios(summaries, baseline_stage(options.stages))
    report = render_report(summaries, options, elapsed, load)
    (options.out / "RESULTS.md").write_text(report)
    write_plot(summaries, options.out / "bench.png")
    raw = {"options": {**asdict(options), "out": str(options.out)}, "cores": os.cpu_count(),
           "store": store_description(), "elapsed_seconds": elapsed, "load_average": list(load),
           "summaries": summaries, "runs": [asdict(r) for r in results]}  # fmt: skip
    (options.out / "results.json").write_text(json.dumps(raw, indent=2))
    return report


def run_bench(options: BenchOptions) -> str:
    """Run the whole bench and write its results; return the report."""
    began, load_before = time.monotonic(), os.getloadavg()[0]
    results = run_all(options)
    load = (load_before, os.getloadavg()[0])
    return write_results(results, options, time.monotonic() - began, load)


def command_line(options: BenchOptions) -> str:
    """Return the `workshop bench` command that repeats this run."""
    words = ["workshop", "bench", *options.stages, "--duration", str(options.duration),
             "--users", str(options.users), "--repeat", str(options.repeat)]  # fmt: skip
    if options.scenarios != list(SCENARIOS):
        words += [f"--scenario={name}" for name in options.scenarios]
    if options.out != DEFAULT_OUT.resolve():
        words += ["--out", str(options.out)]
    return shlex.join(words)


def _stop_on_sigterm(*_: object) -> None:
    raise SystemExit(143)  # unwinds through every `finally`: the stages stop


@click.command("bench")
@click.argument("stage_names", metavar="[STAGE ...]", nargs=-1)
@click.option("--duration", default=DEFAULT_DURATION, show_default=True,
              type=click.IntRange(1, 600), help="Seconds per run.")  # fmt: skip
@click.option("--users", default=DEFAULT_USERS, show_default=True,
              type=click.IntRange(1, 64), help="Simulated users per run.")  # fmt: skip
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(SCENARIOS),
              help="A scenario to run (repeatable; default: all).")  # fmt: skip
@click.option("--repeat", default=DEFAULT_REPEAT, show_default=True,
              type=click.IntRange(1, 20), help="Runs of each scenario on each stage.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Where RESULTS.md, bench.png, results.json go.")  # fmt: skip
def bench(stage_names: tuple[str, ...], duration: int, users: int, scenarios: tuple[str, ...],
          repeat: int, out: Path) -> None:  # fmt: skip
    """Run the same load against every STAGE (default: all) and report them side by side."""
    missing = missing_bench_modules()
    if missing:  # say so before any stage starts, not with a traceback minutes later
        raise click.ClickException(
            f"workshop bench needs the bench extra (missing: {', '.join(missing)}):"
            f" {INSTALL_BENCH_EXTRA}"
        )
    try:
        names = [stages.get_stage(n).name for n in stage_names] or [
            s.name for s in stages.all_stages()
        ]
    except KeyError as error:
        raise click.ClickException(f"no stage {error.args[0]!r}") from None
    options = BenchOptions(
        stages=list(dict.fromkeys(names)), scenarios=list(scenarios or SCENARIOS),
        duration=duration, users=users, repeat=repeat, out=out.resolve(), command="",
    )  # fmt: skip
    options.command = command_line(options)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    report = run_bench(options)
    click.echo(report)
    click.echo(f"results: {options.out}/RESULTS.md, bench.png, results.json")
