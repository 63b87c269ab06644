"""`workshop bench`: the same load against every stage in one run, reported side by side.

Each stage starts as a user starts it (`workshop up STAGE --port P` in a subprocess, on
free loopback ports), loads its sample data, is seeded with a few tags and warmed up.
Then every scenario of bench/locustfile.py runs against every stage it applies to,
interleaved (for each repeat, for each scenario, for each stage), so drift on a shared
machine hits all stages alike. While a run goes, psutil samples the stage's process tree
and the load generator's every ~0.5 s. The figures go to RESULTS.md, bench.png and
results.json.

A scenario may need its stages started differently: `fan-out` measures pages composed
from several services with 50 ms added to each of them (WORKSHOP_LATENCY_MS). Stages are
therefore started per environment: the scenarios with no setting of their own run first,
on stages started without the knob; then the stages are stopped, started again with the
knob, and only fan-out runs on them. No scenario ever runs on a stage started for
another's environment, and the two sets never run at the same time (they would share the
2 cores). A scenario runs only on the stages that have what it needs: fan-out on those
with the services the knob delays (03 on), `keyed-direct` on those with a search service.

A twin is the same stage started alongside with one setting of its own, taking its turns
between the other stages' runs, so a comparison with it is a ratio measured in one run,
with the same drift on both. `traced` is `reads` on a traced twin of each stage that
traces (03 on: WORKSHOP_TRACE_FILE set, spans to raw/traced/traces.jsonl); `scale` is
`reads` on a twin loaded with 30,000 posts instead of 3,000 (WORKSHOP_SAMPLE_POSTS).

`crowd` is 50 users at once with no think time (03 on): all register at the same moment,
then search, read, tag and change preferences; every tagging the stage acknowledged is
checked afterwards, each post showing each tag with the exact number of users who gave it.
With --cpu-hog N, N busy processes run beside the stages for the whole bench (a laptop
whose other programs keep the cores busy).
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

from tooling import stages
from tooling.launcher import LaunchedStage, StageDidNotStart, process_tree
from workshop import config, tracing
from workshop.platform import latency

LOCUSTFILE = config.ROOT / "bench" / "locustfile.py"
DEFAULT_DURATION = 20
# Two cores run the stage and the load generator both: a few users already saturate the
# single-worker stages (no think time), more would only queue and starve the generator.
DEFAULT_USERS = 8
DEFAULT_REPEAT = 3
DEFAULT_OUT = config.ROOT / "bench" / "results"
SAMPLE_INTERVAL = 0.5
# A run's users get this long to set up (register, log in) before its measured seconds
# start (the locustfile starts them once every user is ready); locust stops at the latest
# then, measured or not, and gets LOCUST_SLACK more to start, stop and write its figures.
SETUP_SECONDS = 60
LOCUST_SLACK = 60.0
SEEDED_TAGS = {"bench-async": "asyncio", "bench-web": "django", "bench-data": "pandas",
               "bench-testing": "pytest", "bench-ml": "numpy"}  # fmt: skip
WARM_UP_PATHS = ["/", "/api/tags", "/api/recommendations", "/search?q=flask",
                 "/tags/bench-web", "/api/search?q=web+performance&page=2"]  # fmt: skip
MB = 1024 * 1024
# fan-out: many people at once on pages that wait on their services, each service made
# 50 ms slower by the latency knob; the home page's own calls are also timed directly.
FAN_OUT_USERS = 64
FAN_OUT_LATENCY = "search=50,recommend=50,tag=50"
HOME_UPSTREAMS = (("recommend_v1", "/api/recommendations?limit=12"), ("tag", "/api/tags"))
# Sequential requests per figure when the bench times pages and services at rest, and how
# long it waits for them to answer whole first.
AT_REST_REQUESTS = 15
SETTLE_SECONDS = 30
# After the crowd: how long its last taggings may take to show everywhere (the contract:
# 2 s through the front door; more on a busy machine).
VISIBLE_WITHIN = 10.0
# What a composed page says when a part's service did not answer (bench/locustfile.py).
DEGRADED_PAGE = "unavailable right now"


@dataclass(frozen=True)
class Scenario:
    """How the bench runs one scenario of bench/locustfile.py."""

    name: str
    locust_scenario: str = ""  # the locustfile's scenario (default: the same name)
    users: int | None = None  # its own number of users (None: --users)
    env: tuple[tuple[str, str], ...] = ()  # what its stages start with
    target: str = ""  # the process that takes the load ("": the stage's front door)
    # (process, path): timed directly while the load runs, and at rest after it.
    probes: tuple[tuple[str, str], ...] = ()
    needs: tuple[str, ...] = ()  # services the stage must run
    twin: str = ""  # runs on the stage's twin of this name (TWINS), not on the stage

    def runs_on(self, stage: stages.Stage) -> bool:
        """Tell whether the stage has every service this scenario needs."""
        wanted = [*self.needs, *([self.target] if self.target else [])]
        return all(has_service(stage, name) for name in wanted)


def has_service(stage: stages.Stage, service: str) -> bool:
    """Tell whether a stage runs a service (`recommend` matches recommend_v1 and _v2)."""
    names = [process.name for process in stage.processes()]
    return any(name == service or name.startswith(service + "_") for name in names)


# The twins: a stage started alongside the others with a setting of its own (a function of
# the twin's log folder, where a traced twin writes its spans).
SCALE_POSTS = 30_000
TWINS = {
    "traced": lambda folder: {tracing.TRACE_FILE_ENV: str(folder / "traces.jsonl")},
    "scale": lambda folder: {config.SAMPLE_POSTS_ENV: str(SCALE_POSTS)},
}
CROWD_USERS = 50

SCENARIO_TABLE = (
    Scenario("reads"),
    Scenario("logged-in"),
    Scenario("home"),
    Scenario("lag"),
    # The same keyed read through the front door and straight at the service that owns it.
    Scenario("keyed", needs=("search",)),
    Scenario("keyed-direct", locust_scenario="keyed", target="search"),
    # `reads` with every request traced; only the stages with services trace (03 on).
    Scenario("traced", locust_scenario="reads", twin="traced", needs=("sync",)),
    # `reads` on a twin with ten times the posts: what the data's size costs each stage.
    Scenario("scale", locust_scenario="reads", twin="scale"),
    # Many people at once on the stages with services: registrations, reads and writes.
    Scenario("crowd", users=CROWD_USERS, needs=("sync",)),
    Scenario(
        "fan-out",
        users=FAN_OUT_USERS,
        env=((latency.SETTING, FAN_OUT_LATENCY),),
        probes=HOME_UPSTREAMS,
        needs=tuple(latency.parse(FAN_OUT_LATENCY)),
    ),
)
SCENARIOS = tuple(scenario.name for scenario in SCENARIO_TABLE)


def get_scenario(name: str) -> Scenario:
    """Return a scenario by name."""
    return next(scenario for scenario in SCENARIO_TABLE if scenario.name == name)


# What the bench needs beyond `workshop up`: the `bench` extra in pyproject.toml, locked in
# requirements/bench.txt (`make run` installs the runtime lock only).
BENCH_EXTRA = ("locust", "matplotlib", "psutil")
INSTALL_BENCH_EXTRA = (
    "`make bench` installs them, or `pip install --require-hashes --no-deps -r "
    "requirements/bench.txt` in the repository"
)


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
    error_counts: dict[str, int] = field(default_factory=dict)  # per request name
    users: int = 0
    # Per request name: its requests/s, p50 and p99 (a scenario mixing pages tells them apart).
    by_name: dict[str, dict[str, float]] = field(default_factory=dict)
    # The scenario's probes, timed directly at the service while the load ran: p50 in ms.
    probes_p50: dict[str, float] = field(default_factory=dict)
    # The front door's page and the probes, each timed alone right after the run: p50 in ms.
    at_rest: dict[str, float] = field(default_factory=dict)
    # crowd: the (post, tag) pairs tagged with a 201, and how many of them the stage then
    # showed with another count than the number of users who gave the tag.
    tagged: int = 0
    miscounted: int = 0


def percentile(values: Sequence[float], p: float) -> float:
    """Return the nearest-rank p-th percentile of values (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def locust_command(url: str, users: int, duration: int, csv_prefix: Path) -> list[str]:
    """Return the headless locust command line for one run."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{duration + SETUP_SECONDS}s",
            "--stop-timeout", "0",
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


def process_url(stage: LaunchedStage, process: str) -> str:
    """Return where one of a running stage's processes listens ("": its front door)."""
    if not process:
        return stage.url
    return f"http://127.0.0.1:{stages.get_stage(stage.name).ports(stage.port)[process]}"


def timed_get(http: requests.Session, url: str) -> tuple[float, bool]:
    """GET a URL; return (milliseconds, whether it answered 200 with every part)."""
    began = time.perf_counter()
    try:
        answer = http.get(url, timeout=10)
        ok = answer.status_code == 200 and DEGRADED_PAGE not in answer.text
    except requests.RequestException:
        ok = False
    return (time.perf_counter() - began) * 1000, ok


class Prober:
    """Time GETs of a few URLs, one at a time in a thread, while a run loads the stage.

    One request in flight at most, next to the run's dozens: it measures the load (what
    a call to that service waits meanwhile) without adding much of its own.
    """

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.samples: list[tuple[float, str, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Prober":
        if self.urls:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        http = requests.Session()
        while not self._done.is_set():
            for label, url in self.urls.items():
                ms, ok = timed_get(http, url)
                if ok:
                    self.samples.append((time.time(), label, ms))
            self._done.wait(SAMPLE_INTERVAL / 5)

    def p50s(self, start: float, stop: float) -> dict[str, float]:
        """Return each URL's p50 over a wall-clock window."""
        return {
            label: percentile([ms for at, name, ms in self.samples
                               if name == label and start <= at <= stop], 50)
            for label in self.urls
        }  # fmt: skip


def at_rest(urls: dict[str, str]) -> dict[str, float]:
    """Time each URL alone, AT_REST_REQUESTS times one after the other; return p50s in ms.

    First wait until each answers whole: right after a run, a service may still be busy
    with the run's backlog, and the gateway's circuit breaker may still be open.
    """
    http = requests.Session()
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline and not all(timed_get(http, u)[1] for u in urls.values()):
        time.sleep(SAMPLE_INTERVAL)
    figures = {}
    for label, url in urls.items():
        timings = [timed_get(http, url) for _ in range(AT_REST_REQUESTS)]
        figures[label] = percentile([ms for ms, ok in timings if ok], 50)
    return figures


def run_scenario(
    stage: LaunchedStage, scenario: Scenario, options: "BenchOptions", repeat: int
) -> RunResult:
    """Run one scenario against one stage with locust, sampling both process trees."""
    assert stage.process is not None
    name = f"{scenario.name}.{stage.name}.{repeat}"
    raw = options.out / "raw"
    samples_path = raw / f"{name}.json"
    acknowledged = raw / f"{name}.acknowledged.json"
    env = {**os.environ, "BENCH_SCENARIO": scenario.locust_scenario or scenario.name,
           "BENCH_SAMPLES": str(samples_path), "BENCH_DURATION": str(options.duration),
           "BENCH_ACKNOWLEDGED": str(acknowledged),
           "BENCH_RUN": f"{repeat}{uuid.uuid4().hex[:6]}"}  # fmt: skip
    users = options.users_for(scenario)
    url = process_url(stage, scenario.target)
    command = locust_command(url, users, options.duration, raw / name)
    probes = {f"{process} {path}": process_url(stage, process) + path
              for process, path in scenario.probes}  # fmt: skip
    with (
        own_process_group(command, env, raw / f"{name}.log") as locust,
        TreeSampler(stage.process.pid) as stage_sampler,
        TreeSampler(locust.pid) as locust_sampler,
        Prober(probes) as prober,
    ):
        try:
            locust.wait(timeout=options.duration + SETUP_SECONDS + LOCUST_SLACK)
        except subprocess.TimeoutExpired:
            raise click.ClickException(f"locust did not finish: {raw / name}.log") from None
    # Locust exits 1 when some requests failed: the errors are counted, the run stands.
    if locust.returncode not in (0, 1) or not samples_path.exists():
        raise click.ClickException(f"locust failed ({locust.returncode}): see {raw / name}.log")
    figures = json.loads(samples_path.read_text())
    start, stop = figures["window"]
    stage_rss, stage_cpu = stage_sampler.figures(start, stop)
    _, locust_cpu = locust_sampler.figures(start, stop)
    result = summarize_run(stage.name, scenario.name, repeat, figures, stage_rss, stage_cpu,
                           locust_cpu)  # fmt: skip
    result.users = users
    if probes:
        result.probes_p50 = prober.p50s(start, stop)
        result.at_rest = at_rest({"/": stage.url + "/", **probes})
    if acknowledged.exists():
        result.tagged, result.miscounted = check_taggings(stage.url, acknowledged)
    return result


def check_taggings(url: str, acknowledged: Path) -> tuple[int, int]:
    """Return how many (post, tag) pairs were tagged with a 201, and how many of them the
    stage shows, once settled, with a count it cannot have: fewer than the users whose
    tagging it acknowledged, or more than those and the users whose tagging went unanswered
    (in flight when the run ended: stored or not, both are right)."""
    taggings = json.loads(acknowledged.read_text())
    given: dict[tuple[str, str], set[str]] = {}
    for post_id, tag, user in taggings["acknowledged"]:
        given.setdefault((post_id, tag), set()).add(user)
    sent: dict[tuple[str, str], set[str]] = {}
    for post_id, tag, user in taggings["attempted"]:
        sent.setdefault((post_id, tag), set()).add(user)
    http = requests.Session()
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:  # the copies catch up first (03 on: eventually)
        try:
            ready = http.get(f"{url}/readyz", timeout=5)
            if ready.status_code == 200 and ready.json().get("settled", True):
                break
        except (requests.RequestException, ValueError):
            pass
        time.sleep(SAMPLE_INTERVAL)

    def miscounted() -> int:
        wrong = 0
        for post_id in {post_id for post_id, _ in given}:
            try:
                answer = http.get(f"{url}/api/posts/{post_id}", timeout=10)
                shown = {t["tag"]: t["count"] for t in answer.json()["tags"]}
            except (requests.RequestException, ValueError, KeyError):
                shown = {}  # not answering (yet): none of its tags shown
            wrong += sum(
                not len(users) <= (shown.get(tag) or 0) <= len(sent.get((post, tag), users))
                for (post, tag), users in given.items()
                if post == post_id
            )
        return wrong

    # Writes are visible within seconds (03 on: through the broker), not at once.
    deadline = time.monotonic() + VISIBLE_WITHIN
    while (wrong := miscounted()) and time.monotonic() < deadline:
        time.sleep(SAMPLE_INTERVAL)
    return len(given), wrong


def name_figures(answers: list[tuple[float, bool]], seconds: float) -> dict[str, float]:
    """Return one request name's figures: all answers and whole ones per second, p50, p99."""
    latencies = [ms for ms, _ in answers]
    whole = sum(ok for _, ok in answers)
    return {"rps": len(answers) / seconds, "ok_rps": whole / seconds,
            "errors": len(answers) - whole, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99)}  # fmt: skip


def summarize_run(stage: str, scenario: str, repeat: int, figures: dict[str, Any],
                  stage_rss: float, stage_cpu: float, locust_cpu: float) -> RunResult:  # fmt: skip
    """Turn a run's raw samples into its figures."""
    start, stop = figures["window"]
    seconds = max(stop - start, 1e-9)
    latencies = [ms for _, ms, _ in figures["requests"]]
    lags = figures["lag_ms"]
    by_name: dict[str, list[tuple[float, bool]]] = {}
    for request_name, ms, ok in figures["requests"]:
        by_name.setdefault(request_name, []).append((ms, ok))
    return RunResult(
        stage=stage, scenario=scenario, repeat=repeat,
        requests=len(latencies), seconds=round(seconds, 2), rps=len(latencies) / seconds,
        p50=percentile(latencies, 50), p95=percentile(latencies, 95),
        p99=percentile(latencies, 99), errors=sum(figures["errors"].values()),
        stage_peak_rss_mb=stage_rss, stage_cpu_pct=stage_cpu, locust_cpu_pct=locust_cpu,
        lag_p50=percentile(lags, 50) if scenario == "lag" else None,
        lag_p99=percentile(lags, 99) if scenario == "lag" else None,
        lag_count=len(lags), error_examples=figures["error_examples"],
        error_counts=figures["errors"],
        by_name={name: name_figures(answers, seconds) for name, answers in by_name.items()},
    )  # fmt: skip


# --- The whole bench ---------------------------------------------------------------------


@dataclass
class BenchOptions:
    """What to run: which stages and scenarios, for how long, with how many users."""

    stages: list[str]
    scenarios: list[str]
    duration: int
    users: int | None  # None: each scenario's own (DEFAULT_USERS unless it says otherwise)
    repeat: int
    out: Path
    command: str
    cpu_hog: int = 0  # busy processes run beside the stages for the whole bench

    def users_for(self, scenario: Scenario) -> int:
        """Return how many users a scenario runs with: --users if given, else its own."""
        return self.users or scenario.users or DEFAULT_USERS


def start_stages(
    instances: Sequence[tuple[str, bool]],
    log_dir: Path,
    running: list[LaunchedStage],
    env: dict[str, str],
) -> None:
    """Start each (stage, twin) in turn (appending it to `running` first, so it is always
    stopped); a twin writes its log (and a traced one its spans) under log_dir/TWIN."""
    for name, twin in instances:
        folder = log_dir / twin if twin else log_dir
        folder.mkdir(parents=True, exist_ok=True)
        own_env = {**env, **TWINS[twin](folder)} if twin else env
        stage = LaunchedStage(name, folder, own_env)
        running.append(stage)
        setting = " ".join(f"{key}={value!r}" for key, value in own_env.items())
        click.echo(f"bench: starting {name} {setting}...", err=True)
        try:
            stage.start()
        except StageDidNotStart:
            raise click.ClickException(f"{name} did not start; see {stage.log_path}") from None
        seed_and_warm_up(stage.url)
        click.echo(f"bench: {name} is up at {stage.url} (seeded and warmed up)", err=True)


@dataclass
class Phase:
    """Scenarios whose stages start with the same environment, and the stages they run on
    (each as (name, twin): a twin is a stage of its own)."""

    env: dict[str, str]
    scenarios: list[Scenario]
    instances: list[tuple[str, bool]]

    def pairs(self) -> list[tuple[Scenario, str]]:
        """Return (scenario, stage) for every run of one repeat, in running order."""
        return [(scenario, name) for scenario in self.scenarios
                for name in dict.fromkeys(name for name, _ in self.instances)
                if scenario.runs_on(stages.get_stage(name))]  # fmt: skip


def plan(options: BenchOptions) -> list[Phase]:
    """Group the chosen scenarios by the environment their stages start with (none first)."""
    phases: dict[tuple[tuple[str, str], ...], Phase] = {}
    for scenario in sorted(map(get_scenario, options.scenarios), key=lambda s: bool(s.env)):
        phase = phases.setdefault(scenario.env, Phase(dict(scenario.env), [], []))
        phase.scenarios.append(scenario)
        for name in options.stages:
            instance = (name, scenario.twin)
            if scenario.runs_on(stages.get_stage(name)) and instance not in phase.instances:
                phase.instances.append(instance)
    return [phase for phase in phases.values() if phase.pairs()]


def run_all(options: BenchOptions) -> list[RunResult]:
    """Run every phase: start its stages, run its scenarios round-robin, stop its stages."""
    # A phase's stages stay up for the whole phase: starting one loads its sample data
    # (seconds of CPU), which per run would cost minutes and measure cold stages; an idle
    # stage costs next to nothing of the 2 cores, and interleaving gives every stage the
    # same history. Stages of different phases never run at the same time.
    phases = plan(options)
    if not phases:
        raise click.ClickException("no chosen scenario applies to the chosen stages")
    total = options.repeat * sum(len(phase.pairs()) for phase in phases)
    results: list[RunResult] = []
    for number, phase in enumerate(phases):
        running: list[LaunchedStage] = []
        try:
            log_dir = options.out / "raw" / (f"stages-{number}" if number else "")
            start_stages(phase.instances, log_dir, running, phase.env)
            by_name = dict(zip(phase.instances, running, strict=True))
            for repeat in range(1, options.repeat + 1):
                for scenario, name in phase.pairs():
                    click.echo(f"bench: [{len(results) + 1}/{total}] {scenario.name} on "
                               f"{name} (repeat {repeat})", err=True)  # fmt: skip
                    stage = by_name[(name, scenario.twin)]
                    result = run_scenario(stage, scenario, options, repeat)
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
        summary["users"] = runs[0].users
        summary["by_name"] = median_tables([r.by_name for r in runs])
        for name in ("probes_p50", "at_rest"):
            medians = median_tables([{"p50": getattr(r, name)} for r in runs])
            if medians:
                summary[name] = medians["p50"]
        summaries.append(summary)
    return summaries


def median_tables(tables: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Return the median of each figure of each row over several runs' tables."""
    rows = dict.fromkeys(row for table in tables for row in table)
    return {
        row: {figure: statistics.median(t[row][figure] for t in tables if figure in t.get(row, {}))
              for figure in dict.fromkeys(f for t in tables for f in t.get(row, {}))}
        for row in rows
    }  # fmt: skip


def add_ratios(summaries: list[dict[str, Any]], baseline: str) -> None:
    """Add each figure's ratio to the baseline stage's in the same scenario (in a scenario
    the baseline stage did not run, to the first stage that ran it)."""
    base: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        if summary["stage"] == baseline or summary["scenario"] not in base:
            base[summary["scenario"]] = summary
    for summary in summaries:
        reference = base.get(summary["scenario"], {})
        summary["baseline"] = reference.get("stage", summary["stage"])
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


def fan_out_section(summaries: list[dict[str, Any]]) -> str:
    """Return the fan-out table with its heading line, or nothing if fan-out did not run."""
    rows = [s for s in summaries if s["scenario"] == "fan-out"]
    if not rows:
        return ""
    base = rows[0]["by_name"].get("/", {}).get("ok_rps") or 0
    lines = [
        "| stage | home pages/s | home p50 ms | home p99 ms | home failed | post pages/s "
        "| post p50 ms | post failed | recommend p50 ms | tag p50 ms "
        "| at rest: home | recommend | tag |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in rows:
        home, post = s["by_name"].get("/", {}), s["by_name"].get("/posts/[id]", {})
        probes, rest = s.get("probes_p50", {}), s.get("at_rest", {})
        upstream = [next((v for k, v in table.items() if k.startswith(process + " ")), None)
                    for table in (probes, rest) for process, _ in HOME_UPSTREAMS]  # fmt: skip
        ratio = f" ×{home['ok_rps'] / base:.2f}" if base and "ok_rps" in home else ""
        lines.append(
            f"| {s['stage']} | {number(home.get('ok_rps'), 1)}{ratio} "
            f"| {number(home.get('p50'))} | {number(home.get('p99'))} "
            f"| {number(home.get('errors'))} | {number(post.get('ok_rps'), 1)} "
            f"| {number(post.get('p50'))} | {number(post.get('errors'))} "
            f"| {number(upstream[0])} | {number(upstream[1])} | {number(rest.get('/'))} "
            f"| {number(upstream[2])} | {number(upstream[3])} |"
        )
    setting = f"`{latency.SETTING}={FAN_OUT_LATENCY}`"
    return (
        f"Fan-out (pages composed from several services, {setting}: 50 ms added to each"
        f" service's answers; {rows[0]['users']} users logged in on the pages, half of them"
        " loading the home page, half post pages). The home page asks recommend and tag; a"
        " post page asks search and tag. Pages/s count the pages answered whole; failed, per"
        " run, those that were not (an error, or a part missing because its service did not"
        " answer in time); latencies cover all of them. `recommend` and `tag` are the home"
        " page's two calls timed straight at those services, one at a time, while the load"
        " ran; `at rest`, each timed alone once the stage answered whole again after the run"
        f" ({AT_REST_REQUESTS} requests each, p50). Ratios: to {rows[0]['stage']}.\n\n"
        + "\n".join(lines)
        + "\n\n"
    )


def paired(
    summaries: list[dict[str, Any]], first: str, second: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (first's summary, second's) for each stage that ran both scenarios."""
    found = {(s["scenario"], s["stage"]): s for s in summaries}
    return [(found[(first, stage)], other) for (scenario, stage), other in found.items()
            if scenario == second and (first, stage) in found]  # fmt: skip


def gateway_cost_section(summaries: list[dict[str, Any]]) -> str:
    """Return the keyed read through the front door against straight at the service."""
    pairs = paired(summaries, "keyed", "keyed-direct")
    if not pairs:
        return ""
    lines = [
        "| stage | front door req/s | p50 ms | search service req/s | p50 ms "
        "| front door / service req/s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for front, direct in pairs:
        share = front["rps"] / direct["rps"] if direct.get("rps") else 0.0
        lines.append(f"| {front['stage']} | {number(front['rps'], 1)} | {number(front['p50'], 1)}"
                     f" | {number(direct['rps'], 1)} | {number(direct['p50'], 1)}"
                     f" | {share:.2f} |")  # fmt: skip
    return (
        "The hop through the gateway: the same keyed read (`GET /api/posts/<id>`, `keyed`)"
        " through the front door and straight at the search service that answers it"
        " (`keyed-direct`):\n\n" + "\n".join(lines) + "\n\n"
    )


# Tracing on should cost less than this share of a stage's throughput.
TRACING_BUDGET = 0.10


def tracing_section(summaries: list[dict[str, Any]]) -> str:
    """Return `reads` against `traced` per stage (the tracing overhead), or nothing."""
    pairs = paired(summaries, "reads", "traced")
    if not pairs:
        return ""
    lines = [
        "| stage | untraced req/s | traced req/s | traced / untraced req/s | untraced p50 ms "
        "| traced p50 ms | untraced p99 ms | traced p99 ms | within budget |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--|",
    ]
    for plain, traced in pairs:
        share = traced["rps"] / plain["rps"] if plain.get("rps") else 0.0
        lines.append(
            f"| {plain['stage']} | {number(plain['rps'], 1)} | {number(traced['rps'], 1)}"
            f" | {share:.2f} | {number(plain['p50'])} | {number(traced['p50'])}"
            f" | {number(plain['p99'])} | {number(traced['p99'])}"
            f" | {'yes' if share >= 1 - TRACING_BUDGET else 'no'} |"
        )
    return (
        "Tracing overhead: `reads` on each stage and on its traced twin (the same stage"
        " started alongside with every request traced, spans written to a file), their runs"
        f" taking turns. Budget: under {TRACING_BUDGET:.0%} of the throughput; compare the"
        " ratio with the req/s min–max spread above before reading much into it.\n\n"
        + "\n".join(lines)
        + "\n\n"
    )


SEARCH = "/api/search?q=[q]&page=[n]"
# What ten times the posts may cost a search: its p50 at 30,000 posts, against 3,000.
SCALE_BUDGET = 1.5


def scale_section(summaries: list[dict[str, Any]]) -> str:
    """Return `reads` at 3,000 posts against `scale` (30,000) per stage, or nothing."""
    pairs = paired(summaries, "reads", "scale")
    if not pairs:
        return ""
    lines = [
        "| stage | req/s 3k | req/s 30k | 30k / 3k req/s | search p50 ms 3k | 30k "
        "| 30k / 3k search p50 | within budget | p99 ms 3k | 30k |",
        "|---|--:|--:|--:|--:|--:|--:|--|--:|--:|",
    ]
    for small, large in pairs:
        rps = large["rps"] / small["rps"] if small.get("rps") else 0.0
        small_search = small["by_name"].get(SEARCH, {}).get("p50")
        large_search = large["by_name"].get(SEARCH, {}).get("p50")
        growth = large_search / small_search if small_search and large_search else None
        within = "–" if growth is None else ("yes" if growth <= SCALE_BUDGET else "no")
        lines.append(
            f"| {small['stage']} | {number(small['rps'], 1)} | {number(large['rps'], 1)}"
            f" | {rps:.2f} | {number(small_search, 1)} | {number(large_search, 1)}"
            f" | {'–' if growth is None else f'×{growth:.2f}'} | {within}"
            f" | {number(small['p99'])} | {number(large['p99'])} |"
        )
    return (
        f"Scale: `reads` on each stage (the 3,000-post sample) and on its twin loaded with"
        f" {SCALE_POSTS:,} posts (`{config.SAMPLE_POSTS_ENV}`), their runs taking turns."
        f" Budget: a search's p50 at {SCALE_POSTS:,} posts at most ×{SCALE_BUDGET} of its p50"
        " at 3,000 (its cost should follow what it returns, not the collection).\n\n"
        + "\n".join(lines)
        + "\n\n"
    )


def crowd_section(summaries: list[dict[str, Any]], results: list[RunResult]) -> str:
    """Return the crowd's errors and the taggings checked afterwards, or nothing."""
    rows = [s for s in summaries if s["scenario"] == "crowd"]
    if not rows:
        return ""
    lines = [
        "| stage | users | req/s | p50 ms | p99 ms | errors (set-up included) "
        "| of which registering or logging in | tagged (post, tag) | shown with a wrong count |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in rows:
        runs = [r for r in results if r.scenario == "crowd" and r.stage == s["stage"]]
        set_up = sum(
            count
            for r in runs
            for name, count in r.error_counts.items()
            if name.startswith("setup: register") or name.startswith("setup: token")
        )
        lines.append(
            f"| {s['stage']} | {s['users']} | {number(s['rps'], 1)} | {number(s['p50'])}"
            f" | {number(s['p99'])} | {s['errors']} | {set_up}"
            f" | {sum(r.tagged for r in runs)} | {sum(r.miscounted for r in runs)} |"
        )
    return (
        f"Crowd: {rows[0]['users']} users at once with no think time: every one registers"
        " and logs in at the same moment, then searches, reads posts, tags (a few tags on a"
        " few posts, so many users tag the same post at once) and changes preferences."
        " Afterwards, once the stage has settled, each tagged post must show each tag with"
        " the exact number of users whose tagging was acknowledged (201). Over all repeats.\n\n"
        + "\n".join(lines)
        + "\n\n"
    )


def number(value: float | None, digits: int = 0) -> str:
    """Format a figure, or a dash when it was not measured."""
    return "–" if value is None else f"{value:,.{digits}f}"


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
        + (" (above the core count: other programs competed for the cores)"
           if max(load) > (os.cpu_count() or 1) else ""),
        f"- load: {users_description(options)} with no think time, measured for"
        f" {options.duration} s per run once every user has set up (registered, logged in),"
        f" {options.repeat} repeat(s), interleaved round-robin over the stages",
        *knob_description(options),
        f"- store: {store_description()}",
        *([f"- beside it: {options.cpu_hog} busy processes (`python -c '{HOG}'`, --cpu-hog),"
           " as other programs on a laptop"] if options.cpu_hog else []),
    ])  # fmt: skip


def users_description(options: BenchOptions) -> str:
    """Say how many users the scenarios ran with, e.g. `8 locust users (fan-out: 64)`."""
    chosen = [get_scenario(name) for name in options.scenarios]
    own = [f"{s.name}: {s.users}" for s in chosen if s.users and not options.users]
    users = options.users or DEFAULT_USERS
    return f"{users} locust users" + (f" ({', '.join(own)})" if own else "")


def knob_description(options: BenchOptions) -> list[str]:
    """Say which scenarios' stages started with a setting of their own, and which without."""
    chosen = [get_scenario(name) for name in options.scenarios]
    return [
        f"- {s.name}: its stages started with "
        + ", ".join(f"`{key}={value}`" for key, value in s.env)
        + " (stages started for it alone; every other scenario's stages started without)"
        for s in chosen
        if s.env
    ]


def baseline_note(summaries: list[dict[str, Any]], base: str) -> str:
    """Name the scenarios whose ratios refer to another stage than the baseline."""
    others: dict[str, list[str]] = {}
    for s in summaries:
        if s.get("baseline", base) != base and s["stage"] == s["baseline"]:
            others.setdefault(s["baseline"], []).append(s["scenario"])
    if not others:
        return ""
    named = "; ".join(f"{', '.join(scenarios)}: to {stage}" for stage, scenarios in others.items())
    return f" (in a scenario without it, to the first stage that ran it: {named})"


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
    summaries: list[dict[str, Any]],
    options: BenchOptions,
    elapsed: float,
    load: Sequence[float],
    results: list[RunResult],
) -> str:
    """Return RESULTS.md: how it was measured, the tables, and how to read them."""
    base = baseline_stage(options.stages)
    return f"""# Benchmark: every stage under the same load

{run_description(options, elapsed, load)}

{figures_table(summaries)}

{lag_section(summaries)}{fan_out_section(summaries)}{gateway_cost_section(summaries)}\
{tracing_section(summaries)}{scale_section(summaries)}{crowd_section(summaries, results)}\
![requests/s and p99 per scenario and stage](bench.png)

## How to read this

- Each figure is the median over the repeats; `×r` is its ratio to **{base}** in the same
  scenario and the same run{baseline_note(summaries, base)} (×0.50 on req/s: half the
  throughput; ×2.00 on p50: twice the latency). The min–max columns show the spread over
  the repeats: differences smaller than the spread are noise.
- Latencies are exact percentiles of every request in the measured window (from the
  moment every user has registered, for the scenarios that log in, to the end). Errors count
  every non-2xx answer, timeout (10 s) and failed task, set-up included, over all repeats.
- Memory is the peak of the summed resident memory of the stage's whole process tree
  (`workshop up` and every server it runs; pages shared between a gunicorn master and its
  worker count twice). CPU is averaged over the run, in % of one core (200 % = both cores).
- The load generator runs on the same {os.cpu_count()} cores: its own CPU share (locust CPU %) is
  CPU the stage could not use. Compare stages with each other, not with other machines.
- The store here was {store_description()}.
  On that embedded default a query reads through the indexes the code declares, but it
  matches and copies documents in Python inside the serving process, so store-bound
  numbers measure the emulation, not MongoDB. With `MONGO_URL` set, the same command
  measures a real server.
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
    report = render_report(summaries, options, elapsed, load, results)
    (options.out / "RESULTS.md").write_text(report)
    write_plot(summaries, options.out / "bench.png")
    raw = {"options": {**asdict(options), "out": str(options.out)}, "cores": os.cpu_count(),
           "store": store_description(), "elapsed_seconds": elapsed, "load_average": list(load),
           "summaries": summaries, "runs": [asdict(r) for r in results]}  # fmt: skip
    (options.out / "results.json").write_text(json.dumps(raw, indent=2))
    return report


HOG = "while True: pass"


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """Keep `count` processes busy (another program on the laptop) until the block ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True)
            for _ in range(count)]  # fmt: skip
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run_bench(options: BenchOptions) -> str:
    """Run the whole bench and write its results; return the report."""
    began, load_before = time.monotonic(), os.getloadavg()[0]
    with cpu_hogs(options.cpu_hog):
        results = run_all(options)
    load = (load_before, os.getloadavg()[0])
    return write_results(results, options, time.monotonic() - began, load)


def command_line(options: BenchOptions) -> str:
    """Return the `workshop bench` command that repeats this run."""
    words = ["workshop", "bench", *options.stages, "--duration", str(options.duration),
             "--repeat", str(options.repeat)]  # fmt: skip
    if options.users:
        words += ["--users", str(options.users)]
    if options.scenarios != list(SCENARIOS):
        words += [f"--scenario={name}" for name in options.scenarios]
    if options.out != DEFAULT_OUT.resolve():
        words += ["--out", str(options.out)]
    if options.cpu_hog:
        words += ["--cpu-hog", str(options.cpu_hog)]
    return shlex.join(words)


def _stop_on_sigterm(*_: object) -> None:
    raise SystemExit(143)  # unwinds through every `finally`: the stages stop


@click.command("bench")
@click.argument("stage_names", metavar="[STAGE ...]", nargs=-1)
@click.option("--duration", default=DEFAULT_DURATION, show_default=True,
              type=click.IntRange(1, 600), help="Seconds per run.")  # fmt: skip
@click.option("--users", type=click.IntRange(1, 64),
              help=f"Simulated users per run [default: {DEFAULT_USERS}; fan-out:"
                   f" {FAN_OUT_USERS}].")  # fmt: skip
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(SCENARIOS),
              help="A scenario to run (repeatable; default: all).")  # fmt: skip
@click.option("--repeat", default=DEFAULT_REPEAT, show_default=True,
              type=click.IntRange(1, 20), help="Runs of each scenario on each stage.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Where RESULTS.md, bench.png, results.json go.")  # fmt: skip
@click.option("--cpu-hog", default=0, show_default=True, type=click.IntRange(0, 16),
              help="Busy processes to run beside the stages (a busy laptop).")  # fmt: skip
def bench(stage_names: tuple[str, ...], duration: int, users: int | None,
          scenarios: tuple[str, ...], repeat: int, out: Path, cpu_hog: int) -> None:  # fmt: skip
    """Run the same load against every STAGE (default: all) and report them side by side."""
    missing = missing_bench_modules()
    if missing:  # say so before any stage starts, not with a traceback minutes later
        raise click.ClickException(
            f"workshop bench needs the bench tools (missing: {', '.join(missing)}):"
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
        cpu_hog=cpu_hog,
    )  # fmt: skip
    options.command = command_line(options)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    report = run_bench(options)
    click.echo(report)
    click.echo(f"results: {options.out}/RESULTS.md, bench.png, results.json")
