"""Which processes `workshop up --reload` starts again for a changed file."""

from tooling.reload import affected, describe
from tooling.stages import get_stage
from workshop.config import ROOT


def test_a_change_in_a_services_package_starts_that_service_only():
    stage = get_stage("03-services")
    assert affected(stage, [stage.path / "search" / "service.py"]) == {"search"}
    both = [stage.path / "search" / "store.py", stage.path / "tag" / "store.py"]
    assert affected(stage, both) == {"search", "tag"}


def test_one_package_can_run_in_several_processes():
    stage = get_stage("04-async")
    assert affected(stage, [stage.path / "ingest" / "tasks.py"]) == {"ingest", "worker", "beat"}
    assert affected(stage, [stage.path / "recommend" / "service.py"]) == {
        "recommend_v1",
        "recommend_v2",
    }


def test_a_change_the_processes_share_starts_them_all():
    stage = get_stage("03-services")
    everyone = {p.name for p in stage.processes()}
    assert affected(stage, [stage.path / "chassis" / "service.py"]) == everyone
    assert affected(stage, [ROOT / "workshop" / "domain" / "recommend.py"]) == everyone
    assert affected(stage, [stage.path / "search" / "store.py", ROOT / "workshop" / "db.py"]) == (
        everyone
    )


def test_the_log_names_the_files_from_the_repository():
    stage = get_stage("01-monolith")
    named = describe({stage.path / "front" / "search.py"})
    assert named == "01-monolith/front/search.py"
    assert affected(stage, [stage.path / "front" / "search.py"]) == {"web"}
