"""Fuzz the front door from docs/openapi.yaml: no 5xx, and every answer as documented.

schemathesis reads the document and sends each operation requests built from it, valid ones
and deliberately invalid ones (wrong types, out-of-range numbers, missing fields, other
content types), then follows the document's links (ingest -> job, search -> post). Every
answer is checked: never a server error, only documented status codes, bodies in the
documented schemas. The run is bounded (examples per operation, a fixed seed, no shrinking),
so it takes the same path every time; its time limits only catch a run that hangs, and are
stretched for this machine like every limit in the suite (tests/timing.py).

This module is also the run's schemathesis hooks file (SCHEMATHESIS_HOOKS, below): keep its
imports to what schemathesis's process has, with no project imports.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import schemathesis

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.yaml"
MAX_EXAMPLES = 25
SEED = 2013
# The whole run, from start to report, on a quiet machine (about 16 s there): a deadline for
# a run that hangs, not a stopwatch. Waited for scaled (tests/timing.py).
RUN_TIMEOUT = 85.0
# Generous: a reddit ingest may wait on the network before its job fails. Scaled as well.
REQUEST_TIMEOUT = 20.0
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)

# Uploaded JSON lines are text on the wire: send them as schemathesis sends text/plain.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


# `{"source": "sample"}` reloads 3000 posts, 10-20 s on the embedded store: it would eat the
# time limit. The acceptance tests of ingest load the sample; the fuzz run leaves it out.
def _loads_the_sample(case: schemathesis.Case) -> bool:
    return case.body == {"source": "sample"}


@schemathesis.hook("filter_case").apply_to(method="POST", path="/api/ingest")
def _generated_not_the_sample(context: object, case: schemathesis.Case) -> bool:
    return not _loads_the_sample(case)


@schemathesis.hook("before_add_examples").apply_to(method="POST", path="/api/ingest")
def _documented_not_the_sample(context: object, examples: list[schemathesis.Case]) -> None:
    examples[:] = [case for case in examples if not _loads_the_sample(case)]


def _output(stream: str | bytes | None) -> str:
    if isinstance(stream, bytes):
        return stream.decode("utf-8", errors="replace")
    return stream or ""


@pytest.mark.fuzz
def test_front_door_conforms_to_openapi(stage, client, tmp_path: Path) -> None:
    from tests.timing import scaled  # here: schemathesis's process imports this module too

    run_within, request_within = scaled(RUN_TIMEOUT), scaled(REQUEST_TIMEOUT)
    _, _, token = client.new_importer()  # so ingest is fuzzed past its 403
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(OPENAPI),
        "--url",
        stage.url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--no-shrink",
        "--workers",
        "1",
        "--request-timeout",
        str(request_within),
        "--generation-database",
        "none",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __file__}
    started = time.monotonic()
    try:
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=run_within
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"the fuzz run did not end in {run_within:.0f} s:\n"
            f"{_output(error.stdout)}{_output(error.stderr)}\n{stage.log_tail()}"
        )
    took = time.monotonic() - started
    report = f"{run.stdout}{run.stderr}"
    assert run.returncode == 0, (
        f"schemathesis found problems in {took:.0f} s (exit {run.returncode}):\n{report}"
    )
