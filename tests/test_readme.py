"""The README's two commands are the ones CI and new users run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install '.[emulation]' && .venv/bin/cabine demo"


def ci_script() -> str:
    return (ROOT / ".ci" / "run").read_text()


def ci_test_command() -> str:
    match = re.search(r'^TEST_COMMAND="(.+)"$', ci_script(), re.MULTILINE)
    assert match is not None, ".ci/run must define TEST_COMMAND"
    return match.group(1)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"\n{ci_test_command()}\n" in readme, "README must show .ci/run's test command on its own line"


def test_the_test_command_uses_its_own_virtual_environment() -> None:
    # Debian's Python refuses `pip install` outside a virtual environment (PEP 668): make one, use only it.
    steps = [shlex.split(step) for step in ci_test_command().split("&&")]
    assert steps[0] == ["python3", "-m", "venv", ".venv"]
    assert steps[1] == [".venv/bin/pip", "install", "-e", ".[dev]"]
    assert steps[2] == [".venv/bin/python", "-m", "pytest"]


def test_readme_shows_the_demo_command_installing_the_wheel() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"\n{DEMO_COMMAND}\n" in readme
    steps = [shlex.split(step) for step in DEMO_COMMAND.split("&&")]
    # A wheel, not an editable checkout, with the Bluetooth emulator; then the installed command.
    assert steps[1] == [".venv/bin/pip", "install", ".[emulation]"]
    assert steps[2] == [".venv/bin/cabine", "demo"]


def test_readme_names_every_debian_package_ci_installs() -> None:
    table = re.search(r"declare -A NEED=\((.*?)\n\)", ci_script(), re.DOTALL)
    assert table is not None, ".ci/run must keep its NEED table"
    packages = set(re.findall(r"\[[\w-]+\]=([\w.+-]+)", table.group(1))) | {"python3-venv"}
    section = (ROOT / "README.md").read_text().split("## Try it: two commands", 1)[1].split("\n## ", 1)[0]
    missing = sorted(package for package in packages if package not in section)
    assert not missing, f"the README's prerequisites should name {missing}"
