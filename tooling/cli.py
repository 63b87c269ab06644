"""The `workshop` command: run stages and manage the data they serve."""

import ast
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests
from tqdm import tqdm

from tooling import labs, solve, stages
from tooling import strangler as migration
from tooling.bench import bench
from tooling.diff import diff
from tooling.doctor import doctor
from tooling.runner import (
    DataInUse,
    PortInUse,
    StageRunner,
    default_data_dir,
    forget_data,
    stage_environment,
)
from tooling.target import pick, pick_running, pick_sync, stage_options
from tooling.trace import trace
from workshop import config, tracing
from workshop.config import DEFAULT_PORT, ROOT

JOB_TIMEOUT_SECONDS = 600


class WorkshopGroup(click.Group):
    """The command group; a command that needs the stage folders, run where there are none
    (the package installed outside the repository), fails in one line saying so."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except stages.NoStages as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=WorkshopGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run the workshop's stages and manage their data."""


main.add_command(bench)  # `workshop bench`: the same load on every stage (tooling/bench.py)
main.add_command(diff)  # `workshop diff FROM TO`: what a step changed (tooling/diff.py)
main.add_command(trace)  # `workshop trace`: the last traced requests (tooling/trace.py)
main.add_command(doctor)  # `workshop doctor`: is this machine ready? (tooling/doctor.py)


@main.command("stages")
def list_stages() -> None:
    """List the stages, in workshop order."""
    for stage in stages.required_stages():
        names = ", ".join(p.name for p in stage.processes())
        click.echo(f"{stage.name:<14} {stage.summary}  [{names}]")


@main.command()
@click.argument("stage_name", metavar="STAGE")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Front door port.")
@click.option("--no-sample", is_flag=True, help="Load no sample into an empty store.")
@click.option("--sample-posts", type=click.IntRange(0, 1_000_000), default=None,
              help="How many generated posts the sample holds [env WORKSHOP_SAMPLE_POSTS; "
              "default 3000].")  # fmt: skip
@click.option("--fresh", is_flag=True,
              help="Forget what the stage stored in earlier runs (`workshop reset`).")  # fmt: skip
@click.option("--trace", "traced", is_flag=True,
              help="Trace requests into .workshop/traces.jsonl (`workshop trace`).")  # fmt: skip
@click.option("--no-restart", is_flag=True,
              help="Leave a process that exits down (by default it is started again).")  # fmt: skip
@click.option("--reload", "reloading", is_flag=True,
              help="Start a process again when its code changes (the stage's folder, the "
              "shared package).")  # fmt: skip
@click.option("--strangler", is_flag=True,
              help="Run 03-services as a migration: the monolith behind the gateway, its "
              "verbs moved out one at a time (`workshop strangler`).")  # fmt: skip
def up(
    stage_name: str,
    port: int,
    no_sample: bool,
    sample_posts: int | None,
    fresh: bool,
    traced: bool,
    no_restart: bool,
    reloading: bool,
    strangler: bool,
) -> None:
    """Start every process of STAGE in the foreground; Ctrl-C stops them all.

    What the stage stores is kept in .workshop/data/STAGE from one run to the next (the
    sample goes into an empty store only); --fresh starts from nothing.
    """
    stage = _stage_or_fail(stage_name)
    if strangler:
        try:
            stage = stage.in_mode(migration.MODE)
        except KeyError:
            raise click.ClickException(f"{stage.name} has no strangler fig: it is "
                                       "03-services's (Procfile.strangler)") from None  # fmt: skip
    env = {"WORKSHOP_SEED_SAMPLE": "0" if no_sample else "1"}
    if sample_posts is not None:
        env[config.SAMPLE_POSTS_ENV] = str(sample_posts)
    if traced and not tracing.trace_file():  # a file named in WORKSHOP_TRACE_FILE wins
        env[tracing.TRACE_FILE_ENV] = str(tracing.default_trace_file())
    try:
        # Every process gets the checked secret, and the data the stage kept.
        data = Path(config.env(config.DATA_DIR_ENV) or default_data_dir(stage))
        runner = StageRunner(stage, port, env, data_dir=data, fresh=fresh)
        runner.restart = not no_restart
        runner.reload = reloading
    except config.InsecureSecret as error:
        raise click.ClickException(str(error)) from None

    def announce() -> None:
        mode = " as a strangler fig (`workshop strangler status`)" if strangler else ""
        click.secho(f"\n{stage.name} is up{mode}: http://127.0.0.1:{port}/  (Ctrl-C stops it)\n",
                    fg="green", bold=True)  # fmt: skip

    try:
        status = runner.run_foreground(on_ready=announce)
    except (PortInUse, DataInUse) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)


@main.command("reset")
@click.argument("stage_name", metavar="STAGE")
def reset(stage_name: str) -> None:
    """Forget what STAGE stored (its databases, queued messages and jobs): the next
    `workshop up` starts as the first did. Refused while the stage runs."""
    stage = _stage_or_fail(stage_name)
    folder = Path(config.env(config.DATA_DIR_ENV) or default_data_dir(stage)).resolve()
    try:
        forget_data(folder)
    except DataInUse as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{stage.name}: forgot what it stored ({folder})")


@main.group()
def lab() -> None:
    """Failure labs that check themselves: break a stage, watch, repair, verify."""


@lab.command("list")
def lab_list() -> None:
    """Name each lab, its stage, how long it takes and what it breaks."""
    for found in labs.LABS:
        where = "own stage" if found.needs_own_stage else "your stage"
        click.echo(f"{found.name:<20} {found.stage:<12} {found.minutes:>2} min  {where:<10}  "
                   f"{found.summary}")  # fmt: skip


@lab.command("run")
@click.argument("name")
@click.option("--port", type=int, default=None,
              help="Front door port of your running stage, or of the lab's own "
                   "[default: the newest you run, else free ports].")  # fmt: skip
@click.option("--own", is_flag=True, help="Start a stage of the lab's own, even if you run one.")
def lab_run(name: str, port: int | None, own: bool) -> None:
    """Run lab NAME on the stage you run (`workshop up` in another terminal), or on a stage
    of its own; exit 0 when every check held."""
    sys.exit(0 if labs.run(labs.find(name), port, own=own) else 1)


@main.group("strangler")
def strangler_group() -> None:
    """Move verbs from the monolith to their services while `workshop up 03-services
    --strangler` runs (docs/strangler-fig.md)."""


_PORT_OF_MIGRATION = click.option(
    "--port", type=int, default=None,
    help="Front door port of the strangler fig you run [default: the newest].",
)  # fmt: skip


@strangler_group.command("status")
@_PORT_OF_MIGRATION
def strangler_status(port: int | None) -> None:
    """Say who answers each verb now: its service, or the monolith."""
    running = _migration_or_fail(port)
    for verb, answered_by in running.status().items():
        click.echo(f"{verb:<12} {answered_by}")


@strangler_group.command("move")
@click.argument("verb")
@_PORT_OF_MIGRATION
@click.option("--wait", type=float, default=migration.CATCH_UP_SECONDS, show_default=True,
              help="Seconds to wait for the service to catch up before giving up.")  # fmt: skip
def strangler_move(verb: str, port: int | None, wait: float) -> None:
    """Send the gateway's calls for VERB to its service, once it has caught up (and, for a
    verb that owns data, with its data: its calls wait at the gateway meanwhile)."""
    try:
        _migration_or_fail(port).move(verb, click.echo, within=wait)
    except migration.StranglerError as error:
        raise click.ClickException(str(error)) from None


@strangler_group.command("back")
@click.argument("verb")
@_PORT_OF_MIGRATION
def strangler_back(verb: str, port: int | None) -> None:
    """Send the gateway's calls for VERB to the monolith again (the way back)."""
    try:
        _migration_or_fail(port).back(verb, click.echo)
    except migration.StranglerError as error:
        raise click.ClickException(str(error)) from None


def _migration_or_fail(port: int | None) -> migration.Migration:
    try:
        return migration.Migration.running(port)
    except migration.StranglerError as error:
        raise click.ClickException(str(error)) from None


@main.command("solve")
@click.argument("stage_name", metavar="STAGE")
@click.argument("number", metavar="N", type=int, required=False)
@click.option("--undo", is_flag=True, help="Take the solution back out.")
def solve_exercise(stage_name: str, number: int | None, undo: bool) -> None:
    """Apply the reference solution of STAGE's exercise N (without N: list them).

    The solutions are patches in solutions/STAGE/; --undo takes one back out. Both refuse,
    changing nothing, when your own edits are in the way (`git stash` them first).
    """
    stage = _stage_or_fail(stage_name)
    if number is None:
        for found in solve.solutions(stage):
            click.echo(f"{found.number}  {found.summary}")
        return
    try:
        chosen = solve.solution(stage, number)
        changed = solve.apply(chosen, undo=undo)
    except solve.SolveError as error:
        raise click.ClickException(str(error)) from None
    verb = "took out" if undo else "applied"
    click.echo(f"{stage.name}, exercise {number}: {verb} {chosen.patch.name}")
    for path in changed:
        click.echo(f"  {path}")
    click.echo("A running stage picks it up when restarted (or run it with --reload).")


@main.command("env")
@click.argument("stage_name", metavar="STAGE")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Front door port.")
def print_env(stage_name: str, port: int) -> None:
    """Print the addresses `workshop up` would set, as a .env file for honcho.

    The secret is not printed: every process reads the same generated .workshop/secret_key.
    """
    stage = _stage_or_fail(stage_name)
    env = stage_environment(stage, port)
    for name in sorted(env):
        if (
            name.endswith("_URL")
            and name[:-4].lower() in stage.ports(port)
            or name in ("WORKSHOP_STAGE", "WORKSHOP_DATA_DIR")
        ):
            click.echo(f"{name}={env[name]}")


def _stage_or_fail(stage_name: str) -> stages.Stage:
    try:
        return stages.get_stage(stage_name)
    except KeyError:
        known = ", ".join(s.name for s in stages.required_stages())
        raise click.ClickException(f"no stage {stage_name!r} (stages: {known})") from None


@main.group()
def data() -> None:
    """Create, fetch and import post data."""


@data.command("sample")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=ROOT / "data" / "sample.ndjson", show_default=True)  # fmt: skip
@click.option("--count", default=3000, show_default=True, help="How many posts.")
def data_sample(out: Path, count: int) -> None:
    """(Re)create the sample dataset as mongoexport JSON lines."""
    from workshop.data.sample import write_sample

    out.parent.mkdir(parents=True, exist_ok=True)
    written = write_sample(out, count=count)
    click.echo(f"wrote {written} posts to {out}")


@data.command("fetch")
@click.option("--subreddit", required=True, help="Subreddit name, e.g. python.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the posts (default data/<subreddit>.ndjson).")  # fmt: skip
def data_fetch(subreddit: str, limit: int, out: Path | None) -> None:
    """Fetch posts live from reddit's public JSON endpoints into a file to import."""
    import json

    from workshop.data import reddit

    out = out or ROOT / "data" / f"{subreddit}.ndjson"
    with tqdm(total=limit, unit="post", desc=f"r/{subreddit}") as bar:
        try:
            base_url = config.env("REDDIT_URL", reddit.DEFAULT_BASE_URL)
            report = reddit.fetch_subreddit(
                subreddit, limit, base_url=base_url, progress=bar.update
            )
        except (reddit.FetchError, ValueError) as error:
            raise click.ClickException(str(error)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as file:
        for post in report.posts:
            file.write(json.dumps(post) + "\n")
    click.echo(f"wrote {len(report.posts)} posts to {out} ({len(report.rejected)} rejected)")
    click.echo(f"import them with: workshop data import {out}")


@data.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@stage_options
@click.option("--username", envvar="WORKSHOP_USERNAME", help="[env WORKSHOP_USERNAME]")
@click.option("--password", envvar="WORKSHOP_PASSWORD", help="[env WORKSHOP_PASSWORD]")
@click.option("--token", envvar="WORKSHOP_TOKEN", help="An API token instead [env WORKSHOP_TOKEN]")
def data_import(
    path: Path, port: int | None, url: str | None, username: str, password: str, token: str
) -> None:
    """Send a file (mongoexport lines or a reddit listing) to a running stage's ingest API."""
    from workshop.data.importers import ImportFormatError, read_file

    try:
        body, content_type = read_file(path)
    except (ImportFormatError, OSError) as error:
        raise click.ClickException(f"{path}: {error}") from None
    api = pick(port, url).url
    try:
        token = token or _login(api, username, password)
        job_id = _upload(api, token, body, content_type)
        job = _wait_for_job(api, job_id)
    except requests.RequestException as error:
        raise click.ClickException(f"cannot reach {api}: {error.__class__.__name__}") from None
    if job["state"] != "done":
        raise click.ClickException(f"import failed: {job.get('error', job['state'])}")
    click.echo(
        f"imported {job['ingested']} posts: {job['new']} new, {job['updated']} updated, "
        f"{job['unchanged']} unchanged ({job['rejected']} rejected rows)"
    )


@main.command("logs")
@click.argument("processes", nargs=-1)
@stage_options
@click.option("-n", "--lines", type=int, default=10, show_default=True,
              help="How many of each process's last lines to show first (-1: all)")  # fmt: skip
@click.option(
    "--trace-id",
    default=None,
    help="Only the lines of this trace (JSON log lines: WORKSHOP_LOG_FORMAT=json)",
)
@click.option("--request-id", default=None, help="Only the lines of this request (X-Request-ID)")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing new lines until Ctrl-C")  # fmt: skip
def logs(
    processes: tuple[str, ...],
    port: int | None,
    url: str | None,
    lines: int,
    trace_id: str | None,
    request_id: str | None,
    follow: bool,
) -> None:
    """Show the running stage's output merged, a colour a process (PROCESSES: only those)."""
    from tooling import logfiles

    record = pick_running(port, url, LOGS_ELSEWHERE).record
    assert record is not None  # pick_running refuses a stage it has no record of
    run_dir = Path(record["run_dir"])
    known = logfiles.processes(run_dir)
    unknown = sorted(set(processes) - set(known))
    if unknown:
        raise click.ClickException(f"no process {unknown[0]} in {record['stage']}: "
                                   f"pick from {', '.join(known)}")  # fmt: skip
    keep = logfiles.Filter(trace_id, request_id)
    with contextlib.suppress(KeyboardInterrupt):
        for line in logfiles.follow(run_dir, processes or known, lines, keep, follow):
            click.echo(line)


@main.group()
def importers() -> None:
    """Name the users who may ingest (importers) on a running stage."""


# What to do where `workshop up` does not run the stage (its run folder is not here).
IMPORTERS_ELSEWHERE = (
    "importers added here live in the run folder of a stage `workshop up` runs; elsewhere, "
    "name them in WORKSHOP_IMPORTERS before it starts"
)
LOGS_ELSEWHERE = (
    "logs are read from the run folder of a stage `workshop up` runs; in containers: "
    "docker compose logs"
)


def _running_stage(port: int | None, url: str | None) -> dict:
    """Return the record of the stage `workshop up` runs that holds the importers."""
    record = pick_running(port, url, IMPORTERS_ELSEWHERE).record
    assert record is not None  # pick_running refuses a stage it has no record of
    return record


@importers.command("add")
@click.argument("username")
@stage_options
def importers_add(username: str, port: int | None, url: str | None) -> None:
    """Let USERNAME ingest on the running stage (at once, until the stage stops)."""
    from workshop import roles
    from workshop.domain.accounts import username_problem

    problem = username_problem(username)
    if problem:
        raise click.ClickException(problem)
    record = _running_stage(port, url)
    roles.add(username, Path(record["data_dir"]))
    click.echo(f"{username} may ingest on {record['stage']} (port {record['port']})")


@importers.command("list")
@stage_options
def importers_list(port: int | None, url: str | None) -> None:
    """List the importers added on the running stage (WORKSHOP_IMPORTERS names the others)."""
    from workshop import roles

    record = _running_stage(port, url)
    path = roles.importers_file(Path(record["data_dir"]))
    names = path.read_text(encoding="utf-8").split() if path.exists() else []
    if not names:
        click.echo(f"no importers added on {record['stage']} (port {record['port']}): "
                   "`workshop importers add NAME` adds one")  # fmt: skip
    for name in dict.fromkeys(names):
        click.echo(name)


@main.group()
def sync() -> None:
    """Look after the sync service (stage 03 on): subscribers, checkpoints, replays."""


def sync_options(command: Any) -> Any:
    """Add --port and --url to a sync command: --url names the sync service itself."""
    command = click.option(
        "--url", default=None, help="The sync service's own address (on 03: the stage's "
        "port + 500) [default: the newest running stage's]",
    )(command)  # fmt: skip
    return click.option(
        "--port", type=int, default=None,
        help="The running stage's front door port [default: the newest stage with a sync service]",
    )(command)  # fmt: skip


@sync.command("status")
@sync_options
def sync_status(port: int | None, url: str | None) -> None:
    """Show the log's head and each subscriber's checkpoint."""
    url = pick_sync(port, url).url
    try:
        body = requests.get(f"{url}/api/sync/subscribers", timeout=5).json()
    except (requests.RequestException, ValueError) as error:
        raise click.ClickException(f"cannot reach the sync service at {url}: {error}") from None
    click.echo(f"log head: {body['head']}")
    if not body["items"]:
        click.echo("  no subscribers yet")
    for item in body["items"]:
        click.echo(
            f"  {item['queue']:<14} checkpoint {item['checkpoint']:>7}  {', '.join(item['types'])}"
        )


@sync.command("replay")
@click.argument("service")
@sync_options
def sync_replay(service: str, port: int | None, url: str | None) -> None:
    """Re-send SERVICE every change from the start of the log (bootstrap a new version).

    On stage 03 the sync service replays while it answers. On 04 the replay is a Celery
    task (`sync.replay`): queued here, done by the worker asking sync through the broker,
    and followed until sync has sent everything (a stage on Redis: the same BROKER_URL).
    """
    target = pick_sync(port, url)  # --url: over HTTP, whichever stage serves it
    if target.record and _runs_celery(target.record["stage"]):
        _replay_as_task(service, target.record)
        return
    url = target.url
    try:
        answer = requests.post(f"{url}/api/sync/subscribers/{service}/replay", timeout=60)
    except requests.RequestException as error:
        raise click.ClickException(f"cannot reach the sync service at {url}: {error}") from None
    if answer.status_code != 202:
        raise click.ClickException(f"replay refused: {_error_message(answer)}")
    click.echo(f"sent {answer.json()['sent']} changes to {service}")


def _runs_celery(stage_name: str) -> bool:
    """Tell whether a stage's Procfile runs a Celery worker (stage 04)."""
    return any(p.command.startswith("celery") for p in stages.get_stage(stage_name).processes())


def _replay_as_task(service: str, running: dict) -> None:
    """Queue sync's replay as a Celery task on a running stage and wait for its result, with
    the stage's own Celery app, run as its Procfile runs the worker (`celery -A ...`): the
    tooling imports no stage code."""
    stage = stages.get_stage(running["stage"])
    worker = next(p for p in stage.processes() if p.command.startswith("celery"))
    words = shlex.split(worker.command)
    app = next((words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-A", "--app")),
               None)  # fmt: skip
    if app is None:
        raise click.ClickException(f"{stage.name}'s Procfile names no Celery app (-A)")
    celery = [sys.executable, "-m", "celery", "--workdir", str(stage.path), "-A", app]
    env = {**os.environ, "WORKSHOP_DATA_DIR": running["data_dir"]}  # its broker and results

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([*celery, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)  # fmt: skip

    try:
        queued = run("call", "sync.replay", "--args", json.dumps([service]), timeout=60)
    except subprocess.TimeoutExpired:
        raise click.ClickException("could not queue the replay in 60 s") from None
    if queued.returncode != 0:
        raise click.ClickException(f"could not queue the replay: {_last_line(queued.stderr)}")
    task_id = queued.stdout.strip().splitlines()[-1]
    click.echo(f"replay {task_id} queued")
    try:
        done = run("result", task_id, timeout=JOB_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise click.ClickException(
            f"replay {task_id} did not end in {JOB_TIMEOUT_SECONDS} s"
        ) from None
    if done.returncode != 0:
        raise click.ClickException(f"replay failed: {_last_line(done.stderr)}")
    result = ast.literal_eval(done.stdout.strip().splitlines()[-1])  # the task's dict, printed
    click.echo(f"sent {result['sent']} changes to {service}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _login(api: str, username: str | None, password: str | None) -> str:
    if not (username and password):
        raise click.ClickException(
            "give --username and --password (or WORKSHOP_TOKEN): ingest needs an account"
        )
    answer = requests.post(
        f"{api}/api/tokens", json={"username": username, "password": password}, timeout=10
    )
    if answer.status_code != 200:
        raise click.ClickException(f"login failed: {_error_message(answer)}")
    return answer.json()["token"]


class _ProgressReader(io.BytesIO):
    """A body that reports how much of it has been sent (its length is known up front)."""

    def __init__(self, body: bytes, bar: tqdm) -> None:
        super().__init__(body)
        self.bar = bar

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bar.update(len(chunk))
        return chunk


def _upload(api: str, token: str, body: bytes, content_type: str) -> str:
    with tqdm(total=len(body), unit="B", unit_scale=True, desc="upload") as bar:
        answer = requests.post(
            f"{api}/api/ingest",
            data=_ProgressReader(body, bar),
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            timeout=(5, JOB_TIMEOUT_SECONDS),
        )
    if answer.status_code != 202:
        raise click.ClickException(f"ingest refused: {_error_message(answer)}")
    return answer.json()["job_id"]


def _wait_for_job(api: str, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    with tqdm(unit="post", desc="ingest") as bar:
        while time.monotonic() < deadline:
            job = requests.get(f"{api}/api/jobs/{job_id}", timeout=10).json()
            bar.n = job.get("ingested", 0)
            bar.refresh()
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(0.5)
    raise click.ClickException(f"job {job_id} did not finish in {JOB_TIMEOUT_SECONDS} s")


def _error_message(answer: requests.Response) -> str:
    try:
        return answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {answer.status_code}"


if __name__ == "__main__":
    main(prog_name=os.path.basename(sys.argv[0]))
