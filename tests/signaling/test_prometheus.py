"""The sample Prometheus set-up in docs/prometheus, checked by Prometheus's own promtool: the configuration, the
alert rules and their unit tests, and a real /metrics answer linted as Prometheus would read it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.signaling.conftest import OPERATOR_KEY, World, receive_until

pytestmark = pytest.mark.timeout(60)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus"


async def promtool(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        need_tool("promtool", "prometheus"),
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_sample_configuration_and_alert_rules_pass_promtool(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "cabine-alerts.yml", "cabine-alerts.test.yml"):
        shutil.copy(DOCS / name, tmp_path / name)
    # The files the configuration names, where an installation puts them.
    config = (tmp_path / "prometheus.yml").read_text()
    (tmp_path / "key").write_text("operator-key\n")
    (tmp_path / "ca.crt").write_text("")
    config = config.replace("/etc/prometheus/cabine-operator-key", str(tmp_path / "key"))
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/cabine-ca.crt", str(tmp_path / "ca.crt")))

    code, out = await promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert code == 0, out
    assert "SUCCESS: 11 rules found" in out
    code, out = await promtool("test", "rules", "cabine-alerts.test.yml", cwd=tmp_path)
    assert code == 0 and "SUCCESS" in out, out


async def test_the_servers_metrics_read_cleanly(world: World, tmp_path: Path) -> None:
    cabin = await world.cabin("cabin-1")
    await cabin.send_str(
        json.dumps(
            {
                "type": "heartbeat",
                "software": "0.1.0",
                "uptime_s": 5,
                "config_version": "v1",
                "sent_at": "2026-12-02T08:00:00.000Z",
                "camera_present": True,
                "microphone_present": True,
                "devices": [{"address": "CA:B1:0E:00:00:01", "seen": True, "connected": True, "battery": 55}],
                "in_session": False,
            }
        )
    )
    await cabin.send_str(json.dumps({"type": "ping", "id": 1}))
    await receive_until(cabin, "pong")
    async with world.client.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await response.read()
    assert b'cabine_device_battery_percent{cabin="cabin-1",device="CA:B1:0E:00:00:01"} 55.0' in body
    code, out = await promtool("check", "metrics", cwd=tmp_path, stdin=body)
    assert code == 0, out
    await cabin.close()
