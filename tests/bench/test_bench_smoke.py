"""A smoke run of `workshop bench`: one stage, one scenario, a few seconds, into tmp_path.

It checks that the bench runs end to end and reports, never how fast anything is.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = "01-monolith"


def test_bench_runs_one_scenario_on_one_stage(tmp_path: Path) -> None:
    workshop = Path(sys.executable).with_name("workshop")
    command = [str(workshop), "bench", STAGE, "--scenario", "reads", "--duration", "3",
               "--users", "2", "--repeat", "1", "--out", str(tmp_path)]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
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
    assert errors == 0, json.loads((tmp_path / "results.json").read_text())["runs"]
