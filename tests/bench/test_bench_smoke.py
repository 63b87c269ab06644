"""Smoke runs of `workshop bench`: one stage, a scenario or two, a few seconds, into tmp_path.

They check that the bench runs end to end and reports, never how fast a stage is. The one
time they look at is the latency knob's fixed delay: fan-out's stages start with it, and
the other scenarios' stages without it.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]
STAGE = "01-monolith"
ASYNC_STAGE = "04-async"
DURATION = 3


def test_bench_runs_one_scenario_on_one_stage(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", STAGE, "--scenario", "reads", "--duration", str(DURATION),
               "--users", "2", "--repeat", "1", "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(120)
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    report = (tmp_path / "RESULTS.md").read_text()
    assert "| reads | 01-monolith |" in finished.stdout
    plot = (tmp_path / "bench.png").read_bytes()
    assert plot.startswith(b"\x89PNG") and len(plot) > 1000

    row = next(line for line in report.splitlines() if line.startswith(f"| reads | {STAGE} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    requests_per_second = float(cells[2].split()[0].replace(",", ""))
    errors = int(cells[8])
    assert requests_per_second > 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert errors == 0, runs
    # The measured window is the run's duration, not what is left after locust started.
    assert runs[0]["seconds"] >= DURATION - 0.5, runs


def test_fan_out_runs_with_the_latency_knob_and_the_other_scenarios_without(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", ASYNC_STAGE, "--scenario", "keyed-direct",
               "--scenario", "fan-out", "--duration", "2", "--users", "2", "--repeat", "1",
               "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(400)
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    runs = {run["scenario"]: run for run in results["runs"]}
    assert set(runs) == {"keyed-direct", "fan-out"}
    assert all(run["errors"] == 0 and run["requests"] > 0 for run in runs.values()), runs
    # fan-out's stage starts with 50 ms added to each upstream: nothing it asks is faster...
    fan_out = runs["fan-out"]
    assert set(fan_out["by_name"]) == {"/", "/posts/[id]"}
    assert min(fan_out["at_rest"].values()) >= 50, fan_out["at_rest"]
    # ... and the other scenarios' stages start without it: a keyed read takes far less.
    assert runs["keyed-direct"]["p50"] < 50, runs["keyed-direct"]
    report = (tmp_path / "RESULTS.md").read_text()
    assert f"| fan-out | {ASYNC_STAGE} |" in report
    assert "WORKSHOP_LATENCY_MS" in report


def test_traced_runs_on_a_traced_twin_taking_turns_with_the_untraced_stage(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", "01-monolith", "03-services", "--scenario", "reads",
               "--scenario", "traced", "--duration", "2", "--users", "2", "--repeat", "1",
               "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(400)
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    # Only the stages that trace have a traced twin; the twins' runs come after the others'.
    assert [(run["scenario"], run["stage"]) for run in runs] == [
        ("reads", "01-monolith"), ("reads", "03-services"), ("traced", "03-services"),
    ]  # fmt: skip
    assert all(run["errors"] == 0 and run["requests"] > 0 for run in runs), runs
    # The twin traced the requests it served, the untraced stage did not.
    spans = [json.loads(line) for line in
             (tmp_path / "raw" / "traced" / "traces.jsonl").read_text().splitlines()]  # fmt: skip
    assert any(span["service"] == "gateway" and span["kind"] == "SERVER" for span in spans)
    assert not (tmp_path / "raw" / "traces.jsonl").exists()
    report = (tmp_path / "RESULTS.md").read_text()
    assert "Tracing overhead" in report
    assert "| 03-services |" in report.split("Tracing overhead", 1)[1]


def test_scale_runs_reads_on_a_twin_with_ten_times_the_posts(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", STAGE, "--scenario", "reads", "--scenario", "scale",
               "--duration", "2", "--users", "2", "--repeat", "1",
               "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(400)
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    runs = {r["scenario"]: r for r in json.loads((tmp_path / "results.json").read_text())["runs"]}
    assert set(runs) == {"reads", "scale"} and all(r["errors"] == 0 for r in runs.values()), runs
    assert (tmp_path / "raw" / "scale" / f"{STAGE}.log").exists()  # the twin, with its log
    report = (tmp_path / "RESULTS.md").read_text()
    assert "Scale: `reads` on each stage" in report and f"| {STAGE} |" in report


def test_crowd_registers_at_once_and_checks_every_acknowledged_tagging(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", "03-services", "--scenario", "crowd", "--duration", "3",
               "--users", "6", "--repeat", "1", "--cpu-hog", "1",
               "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=scaled(400)
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    (run,) = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert run["errors"] == 0, run["error_examples"]
    assert run["tagged"] > 0 and run["miscounted"] == 0, run
    report = (tmp_path / "RESULTS.md").read_text()
    assert "Crowd: 6 users at once" in report and "1 busy processes" in report
