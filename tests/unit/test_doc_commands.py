"""The docs test points each command at the test's own stage: its ports, its scratch
folder for the doc's /tmp, and its data folder for the reader's .workshop/data."""

from pathlib import Path

from tests.acceptance.doc_commands import localize


def test_a_command_gets_the_tests_ports_scratch_and_data_folder():
    text = (
        "WORKSHOP_DATA_DIR=$PWD/.workshop/data/02-rest-api PORT=8100 "
        "gunicorn --bind 127.0.0.1:8100 'restapi:create_app()' > /tmp/api.log"
    )
    scratch, data = Path("/tmp/pytest-1/scratch"), Path("/tmp/pytest-1/02-rest-api-data")
    localized = localize(text, "02-rest-api", 9000, scratch, data)
    assert localized == (
        "WORKSHOP_DATA_DIR=/tmp/pytest-1/02-rest-api-data PORT=9100 "
        "gunicorn --bind 127.0.0.1:9100 'restapi:create_app()' > /tmp/pytest-1/scratch/api.log"
    )
