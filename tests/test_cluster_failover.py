"""Three signaling nodes for real: `cabine serve --redis` processes on one PostgreSQL and one Redis, behind Debian's
HAProxy configured with deploy/haproxy/cabine.cfg, a real gateway and the doctor's page in headless Chromium
(tests/cluster_rig.py).

The node that runs the rooms is killed with SIGKILL in the middle of a call: the page and the gateway reconnect
through HAProxy to the nodes left, the call's media never stop (the same peer connection all along), the citizen
stays admitted, and another node runs the rooms. The README's three-node commands start as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import wait_js
from tests.cluster_rig import BACK_IN_THE_ROOM_JS, ROOT, accepts, cluster_call, haproxy_binary, until
from tests.postgres import PrivatePostgres
from tests.redis_server import PrivateRedis

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


async def test_the_room_node_killed_mid_call(tmp_path: Path, postgres: PrivatePostgres) -> None:
    with PrivateRedis() as redis:
        async with cluster_call(tmp_path, postgres.database(), redis.url) as call:
            page, gateway = call.page, call.gateway
            await page.evaluate("window.cabine.pc.__first = true")
            session = gateway.sessions["apt_cluster"]
            welcome = gateway.welcome
            victim, killed = await call.kill_room_node()

            # The media go on while signaling changes hands (peer to peer, loopback).
            await call.video_flows(what="video during failover")
            elected = await until(lambda: len(call.room_nodes()) == 1, timeout=30, what="another room node")
            # Both ends are back on signaling, in the same room: the cabin welcomed anew, the page told by the new
            # room node that the cabin is online, the citizen admitted and itself present.
            await until(
                lambda: gateway.connected.is_set() and gateway.welcome is not welcome,
                timeout=30,
                what="the cabin back on signaling",
            )
            cabin_back = time.monotonic() - killed
            await wait_js(page, BACK_IN_THE_ROOM_JS, timeout=30, what="the page back in the room")
            found = time.monotonic() - killed
            await call.video_flows(what="video after failover")
            assert await page.evaluate("window.cabine.pc.__first") is True, "the same peer connection all along"
            assert gateway.sessions.get("apt_cluster") is session, "the gateway kept its call"
            assert await page.locator("body").get_attribute("data-state") == "inCall"
            assert await page.locator("#admit").is_hidden(), "the citizen stayed admitted"
            [room_node] = call.room_nodes()
            assert room_node is not victim and all(n.proc.returncode is None for n in call.nodes if n is not victim)
            print(
                f"room node killed: another elected after {elected:.1f} s, the cabin back after "
                f"{cabin_back:.1f} s, the page back in the room after {found:.1f} s"
            )


README = ROOT / "README.md"
README_PORTS = (8081, 8082, 8083, 8443)


def readme_cluster_block() -> str:
    """The README's "three nodes on one machine" commands, as written."""
    text = README.read_text()
    start = text.index("Three nodes on one machine")
    block = text[text.index("```sh\n", start) + len("```sh\n") :]
    return block[: block.index("```")]


async def test_the_readmes_three_nodes_start_from_its_commands(tmp_path: Path, postgres: PrivatePostgres) -> None:
    """The README's commands, run by bash as written, except the two that install and create the system's database
    (here: a private PostgreSQL and Redis, given through the variables the README exports)."""
    lines = readme_cluster_block().splitlines()
    assert lines[0].startswith("sudo apt-get install postgresql redis-server haproxy"), lines[0]
    assert lines[1].startswith("sudo -u postgres createuser"), lines[1]
    assert lines[2].startswith("export CABINE_DB="), lines[2]
    busy = [port for port in README_PORTS if accepts(port)]
    if busy:
        pytest.fail(f"the README's ports {busy} are in use on this machine: stop what listens there")
    haproxy_binary()
    with PrivateRedis() as redis:
        script = "\n".join(["set -e", f"export CABINE_DB='{postgres.database()}' CABINE_REDIS={redis.url}", *lines[3:]])
        (tmp_path / "deploy").symlink_to(ROOT / "deploy")
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        env.pop("CABINE_SERVER", None)
        output = tmp_path / "readme.out"
        with output.open("wb") as out:  # a file, not a pipe: the nodes started with & keep it open
            shell = await asyncio.create_subprocess_exec(
                "bash", "-c", script, cwd=tmp_path, env=env, start_new_session=True,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        try:
            await asyncio.wait_for(shell.wait(), timeout=90)
            said = output.read_bytes().decode(errors="replace")
            assert shell.returncode == 0, said[-3000:]
            assert "enrollment code" in said.lower(), said[-3000:]
            # Through HAProxy: the cabin the README registered is listed by whichever node runs the rooms.
            listed = await asyncio.create_subprocess_exec(
                "cabine", "cabin", "list", cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            listing, _ = await asyncio.wait_for(listed.communicate(), timeout=60)
            assert listed.returncode == 0 and "mairie-pq" in listing.decode(), listing.decode()
        finally:
            pid_file = tmp_path / ".cabine" / "haproxy.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            # The nodes were started in the background by the script's shell: its whole session goes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGINT)
            await until(lambda: not any(accepts(port) for port in README_PORTS), timeout=30, what="the nodes to stop")
