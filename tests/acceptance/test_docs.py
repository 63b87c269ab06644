"""Every command the docs give is run, so the docs cannot drift from the code.

The docs are README.md, each stage's README.md and EXERCISES.md, docker/ and slides/ READMEs
and docs/**/*.md; what counts as a command is said in tests/acceptance/doc_commands.py
(docker/'s need an engine: the static checks of tests/containers stand for them, and
slides/' need npm). Each command runs in a reader's shell (the venv active, the repository
root as the current folder, variables kept from one command to the next of the same doc)
against a running stage of the doc's kind (the stage a command's comment names, else the
doc's stage folder, else 01), moved to that stage's ports (`doc_commands.localize`: 8000
becomes its port, 8100 the next, and a command that would find the stage by itself is given
its address), in the doc's order, as the user `ada` (password `correct horse`) whom the
reader registered on the site. A command must exit 0 unless EXPECTED says otherwise, and
EXPECTED says what its output must show where that matters. A command that starts a server
(gunicorn, as the docs restart a stopped process) must bring the stage back to ready, and
one that starts stage 04's Celery worker must say it is ready; either keeps running until
the stage stops.

What cannot run here, a whole-suite or long-running command, is listed in RUN_ELSEWHERE
with the test that exercises it. A command in neither table is run as it is: a new
command in a doc is checked the day it is written.
"""

import importlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import psutil
import pytest
import requests

from tests.acceptance.doc_commands import ROOT, Command, Shell, all_commands, localize, wait_until
from tests.acceptance.stage import Client, RunningStage
from tests.timing import scaled
from tooling.runner import free_base_port, port_is_free
from tooling.stages import all_stages, get_stage

READER = {"username": "ada", "password": "correct horse"}
CANARY = "tests/integration/test_stage03.py::test_the_version_header_picks_recommend_and_the_canary_splits_traffic"  # noqa: E501
INSTANCES = "tests/integration/test_stage03.py::test_the_gateway_spreads_calls_over_live_instances_and_drops_a_dead_one"  # noqa: E501
HONCHO = "tests/integration/test_honcho.py::test_stage_03_runs_under_honcho_on_redis"
BENCH = "tests/bench/test_bench_smoke.py::test_bench_runs_one_scenario_on_one_stage"
FANOUT_BENCH = "tests/bench/test_bench_smoke.py::test_fan_out_runs_with_the_latency_knob_and_the_other_scenarios_without"  # noqa: E501
TRACED_BENCH = "tests/bench/test_bench_smoke.py::test_traced_runs_on_a_traced_twin_taking_turns_with_the_untraced_stage"  # noqa: E501
UP = "tests/acceptance/conftest.py::stage"  # `workshop up STAGE --port P`, until stopped
# docs/strangler-fig.md: the moves need the stage run as a strangler fig, with traffic.
STRANGLER = "tests/integration/test_strangler.py::test_every_verb_moves_with_traffic_running_and_nothing_fails"  # noqa: E501
MAKE_RUN = "tests/acceptance/test_docs.py::test_make_run_serves_a_stage_until_ctrl_c"
MAKE_TARGETS = "tests/acceptance/test_docs.py::test_the_make_targets_the_docs_name_exist"
MAKE_RUN_TRACE = "tests/acceptance/test_docs.py::test_make_run_with_trace_is_workshop_up_traced"
KEPT = "tests/acceptance/test_cli.py::test_a_stage_keeps_its_data_until_fresh_or_reset"
LAB = "tests/reliability/test_labs.py::test_the_lab_runs_green"
SOLVED = "tests/acceptance/test_solutions.py::test_every_solution_applies_and_comes_back_out"
ADD_A_SERVICE = "tests/acceptance/test_solutions.py::test_03_exercise_6_adds_a_comment_service_the_gateway_routes_to"  # noqa: E501
SUPERVISED = "tests/reliability/test_supervision.py::test_a_process_that_exits_is_started_again_unless_told_not_to"  # noqa: E501
SAMPLE_SIZE = "tests/acceptance/test_cli.py::test_sample_posts_sizes_the_sample_of_an_empty_store"
KNOB = "tests/unit/test_latency.py::test_the_knob_delays_a_flask_service_and_no_other"
FANOUT = "tests/integration/test_fanout.py::test_the_home_page_asks_its_services_at_the_same_time"
# `workshop up STAGE --trace`, a tag click, then `workshop trace`: one trace drawn.
TRACE = "tests/integration/test_tracing.py::test_one_tag_click_is_one_trace_across_the_stage"
OTLP = "tests/integration/test_tracing.py::test_with_an_otlp_endpoint_spans_go_to_the_collector"
LOGS = (
    "tests/integration/test_logs.py::test_every_line_of_a_request_carries_its_request_and_trace_id"  # noqa: E501
)
LOGS_CLI = "tests/integration/test_logs.py::test_workshop_logs_merges_the_processes_and_picks_out_one_click"  # noqa: E501
LOGS_FOLLOW = "tests/integration/test_logs.py::test_workshop_logs_follows_new_lines"
WHEELHOUSE = (
    "tests/install/test_lock.py::test_make_setup_installs_from_a_wheelhouse_with_the_network_off"  # noqa: E501
)
BENCH_LOCK = "tests/unit/test_bench_extra.py::test_the_bench_extra_holds_what_bench_imports_and_dev_includes_it"  # noqa: E501
DOCTOR = "tests/unit/test_doctor.py::test_make_doctor_checks_the_stage_and_port_it_is_given"

# Commands that run for minutes, run the whole suite, start a whole stage in the
# foreground or need a second broker: the test that exercises each instead.
RUN_ELSEWHERE: dict[str, str] = {
    "make run": MAKE_RUN,
    "make run STAGE=02-rest-api": MAKE_RUN,
    "make run STAGE=03-services": MAKE_RUN,
    "make run STAGE=04-async": MAKE_RUN,
    "make test": MAKE_TARGETS,  # the whole suite, this module included
    "make bench": BENCH,
    "workshop bench --duration 10 --repeat 2": BENCH,
    "workshop bench 03-services 04-async --scenario fan-out": FANOUT_BENCH,
    "workshop bench 03-services 04-async --scenario reads --scenario traced --duration 15 "
    "--repeat 3": TRACED_BENCH,
    "workshop bench 01-monolith --scenario reads --duration 5 --repeat 1": BENCH,
    "workshop bench 01-monolith 02-rest-api 03-services 04-async --duration 10 --repeat 2": BENCH,
    "pip install --require-hashes --no-deps -r requirements/bench.txt": BENCH_LOCK,
    "make run WHEELHOUSE=DIR": WHEELHOUSE,
    "make doctor": DOCTOR,  # sets up .venv, then checks the ports of stage 01 on 8000
    "workshop up 01-monolith --port 8000": UP,
    "workshop up 01-monolith": UP,
    "workshop up 02-rest-api": UP,
    "workshop up 03-services": UP,
    "workshop up 04-async --port 8000": UP,
    'WORKSHOP_LATENCY_MS="search=50,recommend=50,tag=50" make run STAGE=03-services': KNOB,
    'WORKSHOP_LATENCY_MS="search=50,recommend=50,tag=50" make run STAGE=04-async': FANOUT,
    "RECOMMEND_CANARY_PERCENT=10 workshop up 03-services": CANARY,
    "REGISTRY_URL=redis://127.0.0.1:6379/1 workshop up 03-services": INSTANCES,
    "INSTANCE=b REGISTRY_URL=redis://127.0.0.1:6379/1 PORT=8800 "
    "WORKSHOP_DATA_DIR=$PWD/.workshop/data/03-services .venv/bin/gunicorn --chdir 03-services "
    "--bind 127.0.0.1:8800 --threads 8 'search:create_app()'": INSTANCES,
    "for i in 1 2 3 4; do curl -si 'localhost:8000/api/search?q=python' | grep X-Served-By; "
    "done": INSTANCES,
    "workshop env 03-services --port 8000 > .env": HONCHO,  # writes the repository's .env
    "echo BROKER_URL=redis://127.0.0.1:6379/0 >> .env": HONCHO,
    "honcho -f 03-services/Procfile -d . start -p 8000": HONCHO,
    "workshop up 03-services --trace": TRACE,
    "make run STAGE=03-services TRACE=1": MAKE_RUN_TRACE,
    "make run FRESH=1": MAKE_RUN_TRACE,  # its dry run is checked with TRACE's
    "make run STAGE=03-services NO_RESTART=1": MAKE_RUN_TRACE,  # and this one's too
    "make run NO_RESTART=1": MAKE_RUN_TRACE,
    "make run STAGE=03-services RELOAD=1": MAKE_RUN_TRACE,  # the option: test_reload.py
    "workshop lab run service-down": LAB,  # starts a stage of its own and breaks it
    "workshop lab run rest-api-down": LAB,
    "workshop lab run worker-killed": LAB,
    "workshop lab run sync-killed": LAB,
    "workshop lab run canary-split": LAB,
    "workshop lab run replay": LAB,
    "workshop lab run broker-outage": LAB,
    "workshop lab run slow-upstream": LAB,
    "workshop lab run message-versions": LAB,
    "workshop solve 01-monolith 2": SOLVED,  # a copy of the repository: never the reader's
    "workshop solve 01-monolith 2 --undo": SOLVED,
    "workshop solve 03-services 2": SOLVED,
    "workshop solve 03-services 2 --undo": SOLVED,
    "workshop solve 03-services 5 --undo": SOLVED,
    "workshop solve 03-services 6": SOLVED,
    "workshop solve 03-services 6 --undo": SOLVED,
    # docs/add-a-service.md, once the service is added: the test that follows the exercise.
    "POST=$(curl -s 'localhost:8000/api/search?q=flask' | python -c 'import json,sys; "
    'print(json.load(sys.stdin)["items"][0]["id"])\')': ADD_A_SERVICE,
    'curl -s -XPOST localhost:8000/api/posts/$POST/comments -H "Authorization: Bearer $TOKEN" '
    "-H 'Content-Type: application/json' -d '{\"text\":\"Worth reading.\"}'": ADD_A_SERVICE,
    "curl -s localhost:8000/api/posts/$POST/comments": ADD_A_SERVICE,
    "curl -s localhost:8000/readyz | python -c 'import json,sys; "
    'print(json.load(sys.stdin)["dependencies"]["comment"]["ok"])\'': ADD_A_SERVICE,
    ".venv/bin/pytest tests/containers -q -k 03-services": ADD_A_SERVICE,  # checks, in a copy
    "workshop solve 04-async 3": SOLVED,
    "workshop solve 04-async 3 --undo": SOLVED,
    "workshop up 02-rest-api --no-restart": SUPERVISED,
    "workshop up 04-async --no-restart": SUPERVISED,
    "workshop reset 01-monolith": KEPT,  # the reader's own data: a test's instead
    "workshop up 03-services --fresh": KEPT,
    "workshop reset 03-services": KEPT,
    "workshop up 03-services --sample-posts 30000 --fresh": SAMPLE_SIZE,
    "workshop up 04-async --trace": TRACE,
    "workshop trace": TRACE,  # draws nothing on a stage that was not started traced
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 workshop up 03-services": OTLP,
    "WORKSHOP_LOG_FORMAT=json workshop up 03-services --trace": LOGS,
    "workshop logs web tag": LOGS_FOLLOW,  # follows until Ctrl-C
    "workshop logs --no-follow --lines -1 --trace-id 4bf92f3577b34da6a3ce929d0e0e4736": LOGS_CLI,
}
# docker/README.md: no Docker engine or cluster runs here; the static checks of the files
# each command reads stand for it (tests/containers/).
FILES = "tests/containers/test_files.py::"
K8S = "tests/containers/test_k8s.py::"
TRUST = "tests/containers/test_trust.py::"
LIVE = "tests/containers/test_live_stack.py::test_the_acceptance_suite_passes_through_the_stage_s_nginx"  # noqa: E501
SLIDES = "tests/unit/test_slides.py::test_make_slides_runs_the_marp_command_the_slides_readme_gives"
RUN_ELSEWHERE.update({
    "workshop up 03-services --strangler": STRANGLER,
    "workshop strangler status": STRANGLER,
    "workshop strangler back search": STRANGLER,
    **{f"workshop strangler move {verb}": STRANGLER
       for verb in ("search", "recommend", "tag", "users", "ingest")},
    "cp docker/.env.example docker/.env": FILES + "test_the_secret_has_no_default",
    # Both write a settings file of the checkout's (git-ignored): not the suite's to make.
    "python3 docker/make-secrets.py docker/.env":
        TRUST + "test_make_secrets_gives_every_secret_its_own_value_and_keeps_what_is_set",
    "python3 docker/make-secrets.py docker/k8s/secret.env":
        TRUST + "test_make_secrets_adds_the_passwords_to_a_kubernetes_secret_file",
    "docker compose -f docker/01-monolith.yaml up --build": FILES + "test_compose_accepts_the_file",
    "docker compose -f docker/01-monolith.yaml down": FILES + "test_compose_accepts_the_file",
    "docker compose -f docker/03-services.yaml --profile observability up --build":
        FILES + "test_the_front_door_is_behind_nginx_the_only_published_port",
    "docker compose -f docker/04-async.yaml build": FILES + "test_dockerfile_passes_hadolint",
    "python3 -c \"import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(32))\" "
    "> docker/k8s/secret.env": K8S + "test_the_secret_comes_from_a_file_that_is_never_committed",
    "kubectl apply -k docker/k8s": K8S + "test_kustomize_renders_valid_kubernetes",
    "kubectl -n workshop rollout status deployment/web":
        K8S + "test_http_processes_have_a_service_and_probes_and_the_worker_a_ping",
    "kubectl -n workshop port-forward service/nginx 8000:8080":
        K8S + "test_two_gateways_behind_nginx",
    "kubectl delete namespace workshop": K8S + "test_kustomize_renders_valid_kubernetes",
    # With an engine these build and run every stage (an hour); here they skip.
    ".venv/bin/pytest tests/containers/test_live_stack.py": LIVE,
    ".venv/bin/pytest tests/containers/test_live_stack.py -k 01": LIVE,
    # slides/README.md: Marp comes from npm, which is not reachable here.
    "npx --yes @marp-team/marp-cli@4 slides/workshop.md -o slides/workshop.html": SLIDES,
    "npx --yes @marp-team/marp-cli@4 --notes slides/workshop.md -o notes.txt": SLIDES,
})  # fmt: skip

# A command of this form must be run elsewhere: here it would never end.
LONG_RUNNING = re.compile(
    r"^(\w+=\S+ )*(make (run|test|bench|slides)\b|workshop (up|bench)\b|honcho\b|npx\b|pip\b)"
)


@dataclass(frozen=True)
class Expect:
    """What a command must do: its exit status (None: any failure) and output."""

    command: str  # a regular expression the command (as the doc gives it) matches
    status: int | None = 0
    output: str | None = None  # a regular expression its stdout (else stderr) matches


EXPECTED = [
    # Offline on purpose (REDDIT_URL is a closed port): it must fail in one clear line.
    Expect(r"^workshop data fetch ", status=None, output=r"\nError: cannot reach [^\n]*\Z"),
    Expect(r"^workshop stages$", output=r"01-monolith.*\n02-rest-api.*\n03-services"),
    Expect(r"^workshop data sample$", output=r"wrote 3000 posts"),
    Expect(r"^workshop data import ", output=r"imported"),
    Expect(r"^workshop sync status$", output=r"^log head: \d+\n\s+\S+\s+checkpoint"),
    Expect(r"^workshop sync replay recommend-v\d$", output=r"^sent \d+ changes to recommend"),
    Expect(r"^workshop env 02-rest-api$", output=r"WORKSHOP_DATA_DIR=/"),
    Expect(r"^(make|workshop) diff ", output=r"\S"),
    Expect(r"posts\?max_results=2' \| python -m json.tool$", output=r'"_items": \['),
    # Only django posts: some, and no other subreddit.
    Expect(
        r'where=\{"subreddit":"django"\}',
        output=r'\A(?!.*"subreddit": ?"(?!django"))(?=.*"subreddit": ?"django")',
    ),
    Expect(r'where=\{"title":\{"\$regex"', output=r'"code": ?400'),
    Expect(r'8100/posts\?where=\{"password_hash"', output=r'"code": ?400'),
    Expect(r'8100/users\?where=\{"password_hash"', output=r'"code": ?405'),
    Expect(r"^curl -s -XPOST localhost:8000/api/tokens ", output=r'"token"'),
    Expect(r"^curl -s localhost:8000/readyz$", output=r'"ok": ?false'),  # a process was killed
    Expect(r"recommendations -H 'X-Recommend-Version: 2'$", output=r'"items"'),
    Expect(r"recommendations\?limit=3' .*\| grep \^X-$", output=r"X-Recommend-Version: 2"),
    Expect(r"/api/posts/\$POST_ID +#|/api/posts/\$POST_ID$", output=r"stale-first.*stale-second"),
    Expect(r"/api/ingest .*@/tmp/\S+$", output=r'"job_id"'),
    # Stage 04 with its worker stopped: the job waits, and the stage says it is not ready.
    Expect(r"^curl -s localhost:8000/api/jobs/\$JOB$", output=r'"state": ?"pending"'),
    Expect(r"-w '%\{http_code\}\\n' localhost:8000/readyz$", output=r"^503$"),
    # ... and once a worker is back, the job is done with every post new.
    Expect(r"api/jobs/\$JOB \| tee ", output=r'"new": ?4000,[^\n]*"state": ?"done"'),
]


def key(command: Command) -> str:
    """Return a command as one line, as RUN_ELSEWHERE keys it."""
    return " ".join(command.text.replace("\\\n", " ").split())


def runs_here(command: Command) -> bool:
    return key(command) not in RUN_ELSEWHERE


def expectation(text: str) -> Expect:
    return next((e for e in EXPECTED if re.search(e.command, text)), Expect(".*"))


# --- the reader -------------------------------------------------------------------------

SERVER = re.compile(r"^(\w+=\S+\s+)*(\S*/)?(gunicorn|celery)\b")
BIND = re.compile(r"--bind 127\.0\.0\.1:(\d+)")
WORKER = re.compile(r"\bcelery\b.* worker\b")
KILLED = re.compile(r"^kill \$\(pgrep -of (\S+)\)$")
# A process found by a pgrep pipeline (stage 04's worker: a child of `workshop up`).
KILLED_FOUND = re.compile(r"^kill \$\((pgrep .+)\)$")
PACE = 5.0  # a reader takes a few seconds between commands: messages arrive meanwhile
RESTART_WITHIN = 150.0


def settled(url: str) -> bool:
    """Tell whether a stage answers ready and has no message in flight."""
    try:
        answer = requests.get(f"{url}/readyz", timeout=scaled(3))
        return answer.status_code == 200 and answer.json().get("settled", True) is True
    except (requests.RequestException, ValueError):
        return False


def processes_with(pattern: str) -> list[psutil.Process]:
    """Return the processes whose command line holds a string (as `pgrep -f` does)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if pattern in " ".join(process.info["cmdline"] or []) and process.pid != os.getpid():
            found.append(process)
    return found


class Reader:
    """A reader working through one doc against a running stage."""

    def __init__(self, stage: RunningStage, scratch: Path, servers: list[subprocess.Popen]):
        self.stage = stage
        self.scratch = scratch
        self.shell = Shell(scratch)
        self.servers = servers
        self.something_down = False

    def do(self, command: Command) -> str | None:
        """Run one command as the doc says; return what went wrong, if anything."""
        if LONG_RUNNING.match(key(command)):
            return "never ends here: list it in RUN_ELSEWHERE with the test that runs it"
        data_dir = Path(self.stage.env["WORKSHOP_DATA_DIR"])
        text = localize(command.text, self.stage.name, self.stage.port, self.scratch, data_dir)
        if SERVER.match(text.replace("\\\n", " ")):
            return self.start_server(text)
        if not self.something_down:
            wait_until(lambda: settled(self.stage.url), within=PACE)
        finished = self.shell.run(text)
        problem = check(text, command.text, finished, self.shell.env)
        killed = KILLED.match(text)
        found = KILLED_FOUND.match(text)
        if killed:  # the reader waits until `workshop up` reports the process exited
            self.something_down = True
            if not wait_until(lambda: not processes_with(killed.group(1)), within=30):
                return problem or f"{killed.group(1)} still runs 30 s after the kill"
        elif found:  # the same, asking the pgrep the command used until it finds nothing
            self.something_down = True
            if not wait_until(lambda: self.shell.run(found.group(1)).returncode != 0, 30):
                return problem or f"{found.group(1)} still finds a process 30 s after the kill"
        return problem

    def start_server(self, text: str) -> str | None:
        bind = BIND.search(text)
        worker = WORKER.search(text)
        assert bind or worker, f"a server command with no --bind 127.0.0.1:PORT: {text}"
        if bind:
            address = f"127.0.0.1:{bind.group(1)}"
            # As the reader does: start it once the stopped one is gone (and saved its store).
            wait_until(lambda: not processes_with(f"--bind {address}"), within=30)
        log = self.scratch / f"server-{bind.group(1) if bind else 'worker'}.log"
        server = self.shell.start(text, log)
        self.servers.append(server)

        def up() -> bool:
            # A Celery worker serves no port: it is up once it says so in its log.
            return "ready." in log.read_text() if worker else settled(self.stage.url)

        if not wait_until(lambda: server.poll() is None and up(),
                          within=RESTART_WITHIN, every=0.5):  # fmt: skip
            return f"the stage was not ready again after starting it:\n{log.read_text()[-2000:]}"
        self.something_down = False
        return None


def check(
    text: str, as_written: str, finished: subprocess.CompletedProcess, env: dict[str, str]
) -> str | None:
    """Return how a finished command differs from what the doc promises, if it does."""
    expected = expectation(as_written)
    output = finished.stdout if finished.stdout.strip() else finished.stderr
    said = f"exit {finished.returncode}\nstdout: {finished.stdout[-1500:]}\nstderr: {finished.stderr[-1500:]}"  # noqa: E501
    if expected.status is None and finished.returncode == 0:
        return f"should have failed:\n{said}"
    if expected.status is not None and finished.returncode != expected.status:
        return f"should exit {expected.status}:\n{said}"
    if "Traceback (most recent call last)" in finished.stdout + finished.stderr:
        return f"crashed:\n{said}"
    if expected.output and not re.search(expected.output, output.strip(), re.DOTALL):
        return f"output should match {expected.output!r}:\n{said}"
    assigned = re.match(r"^(\w+)=\$\(", text)
    if assigned and not env.get(assigned.group(1)):
        return f"{assigned.group(1)} came out empty:\n{said}"
    return None


@dataclass
class DocsStage:
    """A stage for the docs' commands, and the servers they start by hand to serve it."""

    stage: RunningStage
    servers: list[subprocess.Popen]


@pytest.fixture(params=[stage.name for stage in all_stages()])
def docs_stage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocsStage]:
    """A stage of its own: the docs' exercises stop its processes and grow its store by
    thousands of posts, which the rest of the acceptance suite must not inherit."""
    # --no-restart: the exercises stop a process and start it again by hand (their text
    # says to run the stage so), which `workshop up` would otherwise do for them.
    running = DocsStage(RunningStage(request.param, tmp_path, options=["--no-restart"]), [])
    running.stage.start()
    try:
        yield running
    finally:
        for server in running.servers:
            stop_group(server)
        returncode = running.stage.stop()
    assert returncode == 0, (
        f"{running.stage.name} did not stop cleanly:\n{running.stage.log_tail()}"
    )


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process group as Ctrl-C or `kill` would, then make sure it is gone."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=scaled(30))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- the tests --------------------------------------------------------------------------


@pytest.mark.timeout(1800)  # the exercises upload tens of thousands of posts, restart services
def test_the_commands_in_the_docs_work_on_their_stage(docs_stage, tmp_path):
    stage = docs_stage.stage
    commands = [c for c in all_commands() if c.stage == stage.name and runs_here(c)]
    if not commands:
        pytest.skip(f"no doc gives a command for {stage.name}")
    created = Client(stage.url).post("/api/users", json=READER)
    assert created.status_code in (201, 409), created.text
    failures = []
    for path, in_doc in groupby(commands, key=lambda c: c.path):
        scratch = tmp_path / path.relative_to(ROOT).as_posix().replace("/", "_")
        reader = Reader(stage, scratch, docs_stage.servers)
        for command in in_doc:
            problem = reader.do(command)
            if problem:
                failures.append(f"{command.where}: {key(command)}\n{problem}")
    assert not failures, "\n\n".join(failures)


def test_every_command_is_run_here_or_by_the_test_the_table_names():
    commands = all_commands()
    given = {key(c) for c in commands}
    never_ending = [f"{c.where}: {key(c)}" for c in commands
                    if runs_here(c) and LONG_RUNNING.match(key(c))]  # fmt: skip
    assert not never_ending, "add them to RUN_ELSEWHERE with the test that runs them"
    stale = sorted(set(RUN_ELSEWHERE) - given)
    assert not stale, f"RUN_ELSEWHERE lists commands no doc gives any more: {stale}"
    unused = [e.command for e in EXPECTED if not any(re.search(e.command, k) for k in given)]
    assert not unused, f"EXPECTED checks commands no doc gives any more: {unused}"
    for test in set(RUN_ELSEWHERE.values()):
        path, name = test.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, name, None)), f"{test} does not exist"


def test_the_make_targets_the_docs_name_exist():
    for command in sorted({key(c) for c in all_commands() if key(c).startswith("make ")}):
        dry = subprocess.run(["make", "-n", *command.split()[1:]], cwd=ROOT,
                             capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
        assert dry.returncode == 0, f"{command}: {dry.stderr}"


def test_make_run_serves_a_stage_until_ctrl_c(tmp_path):
    # As after a plain `pip install .`: `workshop up` needs nothing from the bench extra.
    shim = tmp_path / "no-bench-extra"
    shim.mkdir()
    for module in ("locust", "matplotlib", "psutil"):
        (shim / f"{module}.py").write_text(f"raise ImportError('no module named {module}')\n")
    stage = get_stage("02-rest-api")
    port = free_base_port(len(stage.processes()))
    log = tmp_path / "make-run.log"
    with log.open("w") as output:
        make = subprocess.Popen(
            ["make", "run", f"STAGE={stage.name}", f"PORT={port}"], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(shim)}, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: make.poll() is None and settled(url), within=600, every=0.5), (
            log.read_text()[-3000:]
        )
        assert requests.get(f"{url}/api/search", params={"q": "flask"}, timeout=scaled(10)).ok
    finally:
        stop_group(make, signal.SIGINT)  # Ctrl-C in the terminal reaches its process group
    stopped = wait_until(lambda: all(port_is_free(p) for p in stage.ports(port).values()), 30)
    assert stopped, f"a process of the stage still holds its port:\n{log.read_text()[-3000:]}"


def test_make_run_with_trace_is_workshop_up_traced():
    """`make run ... TRACE=1` runs the command test_tracing starts its traced stages with,
    and `make run FRESH=1` the one that starts from an empty data folder."""

    def dry_run(*settings: str) -> str:
        command = ["make", "-n", "run", "STAGE=03-services", "PORT=8000", *settings]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
        assert done.returncode == 0, done.stderr
        # Under `make test`, make prints "Entering directory" lines around what it would run.
        (line,) = [line for line in done.stdout.splitlines() if "workshop up" in line]
        return line

    assert dry_run("TRACE=1").split()[-5:] == ["up", "03-services", "--port", "8000", "--trace"]
    assert "--trace" not in dry_run()
    assert "--trace" not in dry_run("TRACE=0")
    # FRESH=1: the same, starting from an empty data folder; NO_RESTART=1 leaving a
    # process that exits down.
    assert dry_run("FRESH=1").split()[-5:] == ["up", "03-services", "--port", "8000", "--fresh"]
    assert "--fresh" not in dry_run()
    assert dry_run("NO_RESTART=1").split()[-1] == "--no-restart"
    assert "--no-restart" not in dry_run()
    assert dry_run("RELOAD=1").split()[-1] == "--reload"  # tests/reliability/test_reload.py
    assert "--reload" not in dry_run()


# --- links and names ----------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
SKIPPED_FOLDERS = {
    ".venv",
    ".venv-floors",
    "wheelhouse",
    ".git",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
    ".workshop",
}


def markdown_files() -> list[Path]:
    """Return every Markdown file of the repository (not the venv's, not generated ones)."""
    return sorted(
        path for path in ROOT.rglob("*.md")
        if not SKIPPED_FOLDERS.intersection(path.relative_to(ROOT).parts)
        and not path.relative_to(ROOT).as_posix().startswith("bench/results/")
    )  # fmt: skip


def without_fences(text: str) -> str:
    """Return Markdown without its fenced blocks."""
    return re.sub(r"(?ms)^\s*(```|~~~).*?^\s*\1", "", text)


def without_code(text: str) -> str:
    """Return Markdown without fenced blocks and code spans (no links live there)."""
    return re.sub(r"`[^`]*`", "", without_fences(text))


def anchors(path: Path) -> set[str]:
    """Return the anchors GitHub makes for a Markdown file's headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in without_fences(path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))  # a link's text
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for path in markdown_files():
        for target in LINK.findall(without_code(path.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:: not a file of ours
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: {target}"
            if not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)


def test_no_file_names_the_design_document_that_is_not_there():
    old_name = "DESIGN" + ".md"  # spelled apart, so this file does not name it
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    naming = []
    for name in listed:
        path = ROOT / name
        if path.is_file() and old_name in path.read_bytes().decode("utf-8", "replace"):
            naming.append(name)
    assert not naming, f"these files name {old_name}, which does not exist: {naming}"
