"""deploy/: the systemd units pass `systemd-analyze verify`, say what a cabin needs, and the samples match the code.

`systemd-analyze verify` works without a running systemd (it loads the units offline); it refuses an ExecStart=
whose program is missing, so the units are verified as copies whose programs that this machine lacks (/opt/cabine,
cage) point at a stub. Any warning it prints (an unknown key, a bad value) fails the test.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from cabine.cli import build_parser
from tests.conftest import free_port, need_tool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("cabine-gateway.service", "cabine-kiosk.service", "cabine-signaling.service")
# Every key of the cabin's configuration file (gateway/config.py; the spec the lead and helpers share).
CABIN_KEYS = {
    "signaling.server",
    "signaling.ca_file",
    "signaling.key_file",
    "camera.source",
    "camera.width",
    "camera.height",
    "camera.fps",
    "camera.codec",
    "camera.adapt",
    "camera.stamp",
    "microphone.source",
    "microphone.echo_cancellation",
    "microphone.noise_suppression",
    "microphone.gain_control",
    "microphone.loudspeaker",
    "devices.allow",
    "devices.adapter",
    "screen.port",
    "screen.languages",
    "ice.addresses",
    "ice.relay_only",
    "calls.runtime_dir",
    "calls.auto_checkin",
    "thresholds.battery_low",
    "thresholds.microphone_silence",
    "paper.printer",
    "paper.scanner",
}
# What the cabin screen cannot work without (README, "The cabin screen").
KIOSK_FLAGS = ("--kiosk", "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection")
QUIET_FLAGS = (
    "--no-first-run",
    "--noerrdialogs",
    "--hide-crash-restore-bubble",
    "--disable-features=Translate",
    "--disable-background-networking",
)

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """A unit file's sections as (key, value) lists, continuation lines joined, comments dropped."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}: not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= should be set once, found {found}"
    return found[0]


def verifiable_copies(tmp_path: Path, units: dict[str, str]) -> list[Path]:
    """Write `units` (name -> text) to tmp_path, with programs missing on this machine replaced by a stub."""
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    copies = []
    for name, text in units.items():
        lines = []
        for line in text.splitlines():
            key, sep, command = line.partition("=")
            if sep and key.strip().startswith("Exec"):
                program = command.strip().lstrip("-+!@:").split()[0]
                if not Path(program).exists():
                    stub = stub_dir / Path(program).name
                    stub.write_text("#!/bin/sh\nexit 0\n")
                    stub.chmod(0o755)
                    line = line.replace(program, str(stub), 1)
            lines.append(line)
        copy = tmp_path / name
        copy.write_text("\n".join(lines) + "\n")
        copies.append(copy)
    return copies


def verify(tmp_path: Path, units: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = need_tool("systemd-analyze")
    copies = verifiable_copies(tmp_path, units)
    return subprocess.run(
        [tool, "verify", "--man=no", *map(str, copies)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(tmp_path, {name: (DEPLOY / "systemd" / name).read_text() for name in UNITS})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", f"systemd-analyze warns:\n{result.stderr}"


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous here: a misspelt key and a missing program are reported."""
    gateway = (DEPLOY / "systemd" / "cabine-gateway.service").read_text()
    result = verify(tmp_path, {"cabine-gateway.service": gateway.replace("RestartSec=", "RestartSecs=")})
    assert "Unknown key name 'RestartSecs'" in result.stderr or "Unknown key 'RestartSecs'" in result.stderr
    missing = tmp_path / "missing"
    missing.mkdir()
    copy = missing / "cabine-gateway.service"
    copy.write_text(gateway.replace("/opt/cabine/bin/cabine", str(missing / "nowhere")))
    result = subprocess.run(
        [need_tool("systemd-analyze"), "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "is not executable" in result.stderr


def test_the_gateway_unit_runs_the_cabin_as_its_own_user_and_never_gives_up() -> None:
    unit = read_unit(DEPLOY / "systemd" / "cabine-gateway.service")
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command == ["/opt/cabine/bin/cabine", "gateway", "--config", "/etc/cabine/cabin.toml"]
    build_parser().parse_args(command[1:])  # the options exist (argparse exits on an unknown one)
    assert one(unit, "Service", "User") == "cabine"
    groups = one(unit, "Service", "SupplementaryGroups").split()
    assert {"video", "audio", "bluetooth"} <= set(groups)
    assert one(unit, "Service", "RuntimeDirectory") == "cabine"
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Service", "RestartSec") != "0"
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0"
    assert one(unit, "Service", "KillMode") == "control-group"
    # These would hide a hot-plugged camera or the sound card from the gateway.
    for key in ("PrivateDevices", "DeviceAllow", "DevicePolicy", "ProtectClock"):
        assert not values(unit, "Service", key), f"{key}= would cut the gateway off V4L2/ALSA devices"
    assert "AF_UNIX" in one(unit, "Service", "RestrictAddressFamilies")  # D-Bus to BlueZ


def test_the_kiosk_unit_runs_chromium_with_the_cabin_screens_flags_after_the_gateway() -> None:
    unit = read_unit(DEPLOY / "systemd" / "cabine-kiosk.service")
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command[:3] == ["/usr/bin/cage", "--", "/usr/bin/chromium"]
    for flag in KIOSK_FLAGS + QUIET_FLAGS:
        assert flag in command, f"the kiosk's Chromium needs {flag}"
    assert command[-1] == "http://127.0.0.1:${CABINE_SCREEN_PORT}/"
    assert one(unit, "Service", "User") == "cabine-kiosk"
    assert one(unit, "Service", "TTYPath") == "/dev/tty1"
    assert one(unit, "Service", "Restart") == "always"
    assert "cabine-gateway.service" in " ".join(values(unit, "Unit", "After"))
    pam = one(unit, "Service", "PAMName")
    assert "pam_systemd.so" in (DEPLOY / "pam.d" / pam).read_text()
    # The page is served on the configured screen port.
    port = tomllib.loads((DEPLOY / "cabin.toml").read_text())["screen"]["port"]
    assert f"CABINE_SCREEN_PORT={port}" in values(unit, "Service", "Environment")


def test_the_signaling_unit_takes_valid_serve_options() -> None:
    unit = read_unit(DEPLOY / "systemd" / "cabine-signaling.service")
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command[:2] == ["/opt/cabine/bin/cabine", "serve"]
    assert one(unit, "Service", "EnvironmentFile") == "/etc/cabine/signaling.env"
    assert one(unit, "Service", "Restart") == "always"
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "signaling.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    # systemd splits an unbraced $VAR on white space, as shlex does here.
    options = shlex.split(env["CABINE_SERVE_OPTIONS"])
    assert command[-1] == "$CABINE_SERVE_OPTIONS"
    parsed = build_parser().parse_args([*command[1:-1], *options])
    assert parsed.behind_proxy
    assert parsed.port == 8080  # deploy/nginx/cabine.conf's upstream
    assert "server 127.0.0.1:8080;" in (DEPLOY / "nginx" / "cabine.conf").read_text()


def test_the_sample_configuration_has_every_key_each_documented() -> None:
    text = (DEPLOY / "cabin.toml").read_text()
    config = tomllib.loads(text)
    keys = {f"{section}.{key}" for section, table in config.items() for key in table}
    assert keys == CABIN_KEYS, f"missing {CABIN_KEYS - keys}, unknown {keys - CABIN_KEYS}"
    # Each key, or each group of keys (width and height), follows a comment that explains it.
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            above = number - 1
            while "=" in lines[above] and not lines[above].startswith("#"):
                above -= 1
            assert lines[above].startswith("#"), f"deploy/cabin.toml line {number + 1}: {line!r} is not documented"


def test_sysusers_and_tmpfiles_make_the_users_groups_and_directories(tmp_path: Path) -> None:
    sysusers = need_tool("systemd-sysusers")
    tmpfiles = need_tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        message = "systemd-tmpfiles needs root to give files their owners"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        [sysusers, f"--root={root}", str(DEPLOY / "sysusers.d" / "cabine.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc" / "group").read_text().splitlines()}
    assert {"cabine", "cabine-kiosk"} <= passwd.keys()
    for group in ("video", "audio", "bluetooth"):
        assert "cabine" in groups[group][3].split(","), f"cabine is not in {group}"
    subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(DEPLOY / "tmpfiles.d" / "cabine.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    etc = (root / "etc" / "cabine").stat()
    assert (etc.st_uid, etc.st_gid, etc.st_mode & 0o777) == (0, int(groups["cabine"][2]), 0o750)


async def test_the_kiosk_command_shows_the_cabin_screen_under_cage() -> None:
    """The kiosk unit's own command line (cage, then Chromium with every flag) on cage's headless backend opens a
    running demo's cabin screen: the page loads, runs, and connects to the gateway."""
    unit = read_unit(DEPLOY / "systemd" / "cabine-kiosk.service")
    command = shlex.split(one(unit, "Service", "ExecStart"))
    for program, package in ((command[0], "cage"), (command[2], "chromium"), ("Xwayland", "xwayland")):
        need_tool(program, package)  # Debian's cage cannot start without Xwayland
    port, screen_port = free_port(), free_port()
    # Only what this machine cannot give the test changes: the port, and a profile outside /run.
    scratch = Path(tempfile.mkdtemp(prefix="cabine-kiosk-"))  # not under pytest's 0700 tmp: another user runs here
    runtime, home, profile = scratch / "runtime", scratch / "home", scratch / "profile"
    command = [
        arg.replace("${CABINE_SCREEN_PORT}", str(screen_port)).replace("/run/cabine-kiosk/profile", str(profile))
        for arg in command
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "WLR_BACKENDS": "headless",  # no screen here: cage draws into memory
        "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1",
    }
    if os.geteuid() == 0:  # cage refuses to run as root, as the unit's own user does not
        nobody = pwd.getpwnam("nobody")
        command = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *command]
    for directory in (scratch, runtime, home, profile):
        directory.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "-v", "demo", "--port", str(port), "--kiosk-port", str(screen_port),
        "--data-dir", str(scratch / "data"), "--devices", "direct", "--ice-address", "127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert demo.stderr is not None
    log: list[str] = []
    connected = asyncio.Event()

    async def follow(stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            log.append(raw.decode(errors="replace").rstrip())
            if log[-1].endswith("screen: page connected"):
                connected.set()

    follower = asyncio.create_task(follow(demo.stderr))
    kiosk: asyncio.subprocess.Process | None = None
    try:
        kiosk = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(connected.wait(), timeout=60)
        except TimeoutError:
            pytest.fail("the kiosk's Chromium never connected to the cabin screen; demo log:\n" + "\n".join(log[-30:]))
        assert kiosk.returncode is None, "cage exited while showing the cabin screen"
    finally:
        if kiosk is not None:
            if kiosk.returncode is None:
                os.killpg(kiosk.pid, signal.SIGTERM)
            await asyncio.wait_for(kiosk.wait(), timeout=20)
        if demo.returncode is None:
            os.killpg(demo.pid, signal.SIGINT)
        await asyncio.wait_for(demo.wait(), timeout=30)
        await follower
        shutil.rmtree(scratch, ignore_errors=True)
    assert demo.returncode == 0
