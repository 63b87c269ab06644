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

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import strategies as st

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
    # What the document says is valid is accepted, what it says is not is refused (4xx).
    "positive_data_acceptance",
    "negative_data_rejection",
    # A method a path does not take answers 405 with `Allow`; OPTIONS lists the methods.
    "unsupported_method",
    "allow_header_conformance",
)

# Uploaded JSON lines are text on the wire: send them as schemathesis sends text/plain.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# docs/openapi.yaml's RedditPost, for JSON lines: a schema cannot say what a line holds, so
# the document names the text's format and this says how to write one (the documented rule:
# one post at least; other lines are counted as rejected).
LAST_TIMESTAMP = 253_402_300_799
# Posts the run uploads get ids of their own ("zzz..."): it never overwrites a sample post
# that other tests of the session read.
OWN_ID = "zzz"
POST_ID = re.compile(r"[a-z0-9]{1,16}")
_POST_LINES = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"\A[a-z0-9]{1,13}\Z").map(OWN_ID.__add__),
        "title": st.text(min_size=1).filter(str.strip),
        "subreddit": st.text(min_size=1, max_size=64).filter(str.strip),
        "created_utc": st.integers(0, LAST_TIMESTAMP) | st.floats(0, LAST_TIMESTAMP),
    }
).map(json.dumps)
_OTHER_LINES = st.sampled_from(["{}", "[1, 2]", "not json", '{"id": "Not An Id"}', ""])
schemathesis.openapi.format(
    "json-lines-of-posts",
    st.tuples(st.lists(_POST_LINES, min_size=1, max_size=3), st.lists(_OTHER_LINES, max_size=2))
    .flatmap(lambda lines: st.permutations(lines[0] + lines[1]))
    .map("\n".join),
)


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


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/ingest")
def _posts_of_its_own(context: object, body: object) -> object:
    listings = body if isinstance(body, list) else [body]
    for listing in listings:
        children = listing.get("data", {}).get("children") if isinstance(listing, dict) else None
        for child in children if isinstance(children, list) else []:
            post = child.get("data") if isinstance(child, dict) else None
            post_id = post.get("id") if isinstance(post, dict) else None
            if isinstance(post_id, str) and POST_ID.fullmatch(post_id) and post_id[:3] != OWN_ID:
                post["id"] = OWN_ID + post_id[:13]  # valid still (invalid ones are left as sent)
    return body


def _output(stream: str | bytes | None) -> str:
    if isinstance(stream, bytes):
        return stream.decode("utf-8", errors="replace")
    return stream or ""


def for_stage(document: dict, stage: str) -> dict:
    """Drop the operations an `x-stages` list gives to other stages (a service added to one)."""
    for item in document["paths"].values():
        for method, operation in list(item.items()):
            if isinstance(operation, dict) and stage not in operation.get("x-stages", [stage]):
                del item[method]
    return document


@pytest.mark.fuzz
def test_front_door_conforms_to_openapi(stage, client, tmp_path: Path) -> None:
    from tests.timing import scaled  # here: schemathesis's process imports this module too

    run_within, request_within = scaled(RUN_TIMEOUT), scaled(REQUEST_TIMEOUT)
    _, _, token = client.new_importer()  # so ingest is fuzzed past its 403
    served = tmp_path / "openapi.yaml"  # the document as this stage serves it
    served.write_text(yaml.safe_dump(for_stage(yaml.safe_load(OPENAPI.read_text()), stage.name)))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(served),
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
