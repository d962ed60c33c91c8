"""manage.py check --deploy on the example shop with DEBUG off: no error, and no warning printed."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

PROJECT = pathlib.Path(__file__).resolve().parents[1]


def test_check_deploy_finds_no_error_and_python_prints_no_warning(tmp_path: pathlib.Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SHOP_DEBUG")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "SHOP_SECRETS_FILE": str(tmp_path / "s.json"),
    }
    done = subprocess.run(
        [sys.executable, "-W", "error", "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    # drf-spectacular's own deploy check generated the schema of every URL without an error.
    assert "drf_spectacular" not in output, output[-4000:]
    assert "ERRORS:" not in output
