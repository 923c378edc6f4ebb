"""`pip install` of Cabine's wheel gives working programs: the wheel is built from the checkout, installed in a fresh
virtual environment, run from another directory with a clean environment, and every page and asset the installed
demo serves is fetched and compared byte for byte with the source tree.

Needs the package index (or pip's cache) for the dependencies; with CI=true an unreachable index is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cabine", "gateway", "signaling", "webclient")
# Files of the package folders that stay out of the wheel: the benchmarks' bare pages, served by bench/ from the
# checkout.
NOT_SHIPPED = ("webclient/bench/",)
NEVER_SHIPPED = re.compile(r"(^|/)(tests?|bench)/|\.(pem|key|crt|sqlite3?|db)$")
# What pip prints when it cannot reach the package index.
OFFLINE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Network is unreachable"
    r"|Could not resolve host|\(from versions: none\)"
)
# Media types browsers insist on (a module script served as text/plain is refused).
MEDIA_TYPES = {
    ".html": {"text/html"},
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".svg": {"image/svg+xml"},
    ".json": {"application/json"},
}


@dataclass(frozen=True, slots=True)
class Installed:
    """A wheel built from a copy of the checkout, installed in a fresh virtual environment."""

    source: Path  # the copy of the checkout the wheel was built from
    files: frozenset[str]  # the checkout's files (tracked, or new and not ignored), relative paths
    wheel: Path
    venv: Path
    site_packages: Path
    work: Path  # an empty working directory, not the checkout
    home: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cabine(self) -> Path:
        return self.venv / "bin" / "cabine"

    def env(self) -> dict[str, str]:
        """A clean environment for the installed programs: no PYTHONPATH, nothing pointing at the checkout."""
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}

    def shipped(self) -> set[str]:
        """The checkout's files that the wheel must hold."""
        return {name for name in self.files if name.split("/", 1)[0] in PACKAGES and not name.startswith(NOT_SHIPPED)}


def unavailable(message: str) -> NoReturn:
    """A missing prerequisite: skipped locally, a failure under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this is a failure)")
    pytest.skip(message)


def pip_env() -> dict[str, str]:
    """This machine's environment (pip's configuration, proxy, cache) without anything that redirects Python."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {name: value for name, value in os.environ.items() if name not in drop}


def run_pip(what: str, command: list[str], timings: dict[str, float]) -> None:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=pip_env(), timeout=600, check=False)
    timings[what] = time.monotonic() - started
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if OFFLINE.search(output):
            unavailable(f"{what}: the package index cannot be reached (pip needs it for the dependencies)")
        pytest.fail(f"{what} failed ({' '.join(command)}):\n{output[-4000:]}")


def checkout_files() -> list[str]:
    git = shutil.which("git") or unavailable("git is not installed (it lists the checkout's files)")
    listing = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    # A copy of the checkout's files, as a fresh clone (plus uncommitted work) would have them: no build/ left over
    # from an earlier build slips into the wheel, and the checkout is left untouched.
    source = base / "source"
    files = checkout_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    timings: dict[str, float] = {}
    dist, venv = base / "dist", base / "venv"
    run_pip(
        "build the wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(source)], timings
    )
    (wheel,) = dist.glob("cabine-*.whl")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    timings["make the virtual environment"] = time.monotonic() - started
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--prefer-binary", "--disable-pip-version-check"]
    run_pip("install the wheel and its dependencies", [*pip, str(wheel)], timings)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (base / "work").mkdir()
    (base / "home").mkdir()
    print("wheel timings: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
    return Installed(source, frozenset(files), wheel, venv, Path(purelib), base / "work", base / "home")


def test_the_wheel_holds_every_package_file_and_nothing_else(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    content = {name for name in names if ".dist-info/" not in name}
    expected = installed.shipped()
    assert not expected - content, f"missing from the wheel: {sorted(expected - content)}"
    assert not content - expected, f"in the wheel but not in the source tree: {sorted(content - expected)}"
    assert not [name for name in content if NEVER_SHIPPED.search(name)]
    # The pages, their vendored library with its licence, and the emulator program shipped as a file.
    for name in (
        "webclient/pro/index.html",
        "webclient/pro/thresholds.json",
        "webclient/vendor/uplot/LICENSE",
        "webclient/cabin/img/thermometer.svg",
        "cabine/demo/emulator/bluezoo_emulator.py",
        "cabine/demo/emulator/README.md",
        "gateway/py.typed",
    ):
        assert name in content
    assert "cabine = cabine.cli:main" in entry_points


def test_the_installed_commands_run_from_another_directory(installed: Installed) -> None:
    for args in (["--help"], ["serve", "--help"], ["gateway", "--help"]):
        result = subprocess.run(
            [str(installed.cabine), *args],
            cwd=installed.work,
            env=installed.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"cabine {' '.join(args)}: {result.stderr}"
        assert result.stdout.startswith("usage: cabine"), result.stdout
    probe = "import json, cabine, gateway, signaling, webclient; print(json.dumps({m.__name__: m.__file__ for m in "
    probe += "(cabine, gateway, signaling, webclient)}))"
    result = subprocess.run(
        [str(installed.python), "-c", probe],
        cwd=installed.work,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for module, origin in json.loads(result.stdout).items():
        assert Path(origin).is_relative_to(installed.site_packages), f"{module} comes from {origin}"
    # Installed files are the source's, byte for byte (the emulator program, the cards, the pages...).
    differing = [
        name
        for name in sorted(installed.shipped())
        if (installed.site_packages / name).read_bytes() != (installed.source / name).read_bytes()
    ]
    assert not differing, f"installed files differ from the source: {differing}"


def references(name: str, text: str) -> set[str]:
    """What a page, module or style sheet (by its file name) asks the browser to fetch."""
    found: list[str] = []
    if name.endswith(".css"):
        found += re.findall(r"url\(\s*[\"']?([^\"')]+?)[\"']?\s*\)", text)
        found += re.findall(r"@import\s+[\"']([^\"']+)[\"']", text)
    elif name.endswith(".js"):
        found += re.findall(r"\b(?:import|export)\s[^\"';()]*?\bfrom\s*[\"']([^\"']+)[\"']", text)
        found += re.findall(r"\bimport\s*[\"']([^\"']+)[\"']", text)
        found += re.findall(r"\bimport\(\s*[\"']([^\"']+)[\"']\s*\)", text)
        # Assets a module fetches itself, such as the thresholds' JSON.
        found += re.findall(r"[\"'`](/static/[^\"'`\s$]+\.[a-z0-9]+)[\"'`]", text)
    else:
        found += re.findall(r"\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", text)
    return {ref for ref in found if not ref.startswith(("data:", "blob:", "#", "mailto:", "javascript:"))}


async def crawl(
    session: aiohttp.ClientSession,
    origin: str,
    start: dict[str, Path | None],
    source: Path,
    tls: ssl.SSLContext | None,
) -> set[str]:
    """Fetch the `start` pages and everything they reference on `origin`, recursively; return the paths fetched.

    `start` maps each page to its file in the source tree (None: a page the server makes itself). Everything
    under /static/ must be the matching file of webclient/, byte for byte, with the media type browsers expect.
    """
    pages = dict(start)
    todo, seen = list(start), set[str]()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        async with session.get(origin + path, ssl=tls if tls is not None else True, allow_redirects=False) as response:
            body = await response.read()
            assert response.status == 200, f"{origin}{path}: HTTP {response.status}"
            media_type = response.content_type
        if path.startswith("/static/"):
            expected: Path | None = source / "webclient" / path.removeprefix("/static/")
        else:
            assert path in pages, f"{origin}{path}: referenced, but not a page this test knows"
            expected = pages[path]
        if expected is not None:
            assert body == expected.read_bytes(), f"{origin}{path} is not {expected.relative_to(source)}"
            suffix = expected.suffix
            if suffix in MEDIA_TYPES:
                assert media_type in MEDIA_TYPES[suffix], f"{origin}{path} served as {media_type}"
        name = expected.name if expected is not None else "page.html"
        if not name.endswith((".html", ".js", ".css")):
            continue
        for ref in references(name, body.decode()):
            target = urlsplit(urljoin(origin + path, ref))
            if f"{target.scheme}://{target.netloc}" == origin:
                todo.append(target.path)
    return seen


async def read_until_link(stdout: asyncio.StreamReader) -> list[str]:
    """The demo's lines up to its doctor link; fewer if it exits before."""
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Doctor link: "):
        raw = await asyncio.wait_for(stdout.readline(), timeout=60)
        if not raw:
            break
        lines.append(raw.decode().rstrip())
    return lines


async def test_the_installed_demo_serves_every_page_and_asset(installed: Installed, tmp_path: Path) -> None:
    port, kiosk_port, data = free_port(), free_port(), tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        str(installed.cabine), "demo", "--port", str(port), "--kiosk-port", str(kiosk_port),
        "--data-dir", str(data), "--ice-address", "127.0.0.1", "--devices", "direct",
        cwd=installed.work, env=installed.env(), start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.create_task(process.stderr.read())  # drained all along, so the demo never blocks on it
    web = installed.source / "webclient"
    try:
        lines = await read_until_link(process.stdout)
        if not lines or not lines[-1].startswith("Doctor link: "):
            await asyncio.wait_for(process.wait(), timeout=30)
            pytest.fail(f"the installed demo exited before its doctor link: {lines}\n{(await errors).decode()}")
        link = urlsplit(lines[-1].removeprefix("Doctor link: "))
        signaling = f"https://127.0.0.1:{port}"
        assert f"{link.scheme}://{link.netloc}" == signaling
        tls = ssl.create_default_context(cafile=data / "certs" / "ca.crt")
        async with aiohttp.ClientSession() as session:
            fetched = await crawl(
                session,
                signaling,
                {
                    "/": None,
                    link.path: web / "pro" / "index.html",
                    "/operator/": web / "operator" / "index.html",
                    "/favicon.ico": web / "shared" / "favicon.svg",
                },
                installed.source,
                tls,
            )
            # Everything the pages reference was found, and every asset of the package is served, including those
            # a script names at run time (the cabin screen's pictograms).
            assets = {
                "/static/" + name.removeprefix("webclient/")
                for name in installed.shipped()
                if name.startswith("webclient/") and name.count("/") > 1
            }
            assert "/static/pro/thresholds.json" in fetched and "/static/vendor/uplot/uPlot.esm.js" in fetched
            served_by_signaling = {path for path in assets if not path.startswith("/static/cabin/")}
            await crawl(session, signaling, dict.fromkeys(served_by_signaling - fetched), installed.source, tls)
            # Signaling serves its pages and what they use, not the package's own files nor the cabin screen.
            for path in ("/static/__init__.py", "/static/py.typed", "/static/cabin/cabin.js", "/static/bench/"):
                async with session.get(signaling + path, ssl=tls) as response:
                    assert response.status == 404, path

            screen = f"http://127.0.0.1:{kiosk_port}"
            fetched = await crawl(session, screen, {"/": web / "cabin" / "index.html"}, installed.source, None)
            assert "/static/cabin/cabin.js" in fetched and "/static/shared/vitals.js" in fetched
            own = {path for path in assets if path.startswith(("/static/cabin/", "/static/shared/"))}
            await crawl(session, screen, dict.fromkeys(own - fetched), installed.source, None)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        finally:
            stderr = await errors
            await process.stdout.read()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
