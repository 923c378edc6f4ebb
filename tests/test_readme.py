"""The README's two commands are the ones CI and new users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^TEST_COMMAND="(.+)"$', ci, re.MULTILINE)
    assert match is not None, ".ci/run must define TEST_COMMAND"
    readme = (ROOT / "README.md").read_text()
    assert f"\n{match.group(1)}\n" in readme, "README must show .ci/run's test command on its own line"


def test_readme_shows_the_demo_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "\npip install -e '.[dev]' && cabine demo\n" in readme
