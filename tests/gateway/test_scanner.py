"""Scanning through SANE's own `test` backend (the one SANE ships for frontends): a page in memory as a PNG the
cabin accepts, and plain reasons when there is no scanner."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.documents.check import check_document
from gateway.documents.scanner import SaneScanner, ScanError, ScanProblem
from tests.conftest import need_tool

pytestmark = pytest.mark.timeout(90)


def files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.fixture
def sane_test_backend(tmp_path: Path) -> Path:
    """A SANE configuration that loads only the `test` backend (the system's stays as it is)."""
    need_tool("scanimage", "sane-utils")
    config = tmp_path / "sane.d"
    config.mkdir()
    (config / "dll.conf").write_text("test\n")
    return config


async def test_a_page_is_scanned_into_memory(sane_test_backend: Path, tmp_path: Path) -> None:
    scanner = SaneScanner("test:0", resolution=75, config_dir=sane_test_backend, options=("--test-picture=Grid",))
    before = files(tmp_path)
    scan = await scanner.scan()
    checked = check_document(scan.png, "image/png")
    # The test backend's default area is 80 x 100 mm: 236 x 295 pixels at 75 dpi.
    assert (checked.width, checked.height) == (236, 295)
    assert files(tmp_path) == before, "nothing written to disk"


async def test_no_scanner_says_so(sane_test_backend: Path) -> None:
    with pytest.raises(ScanError) as missing:
        await SaneScanner("test:9", resolution=75, config_dir=sane_test_backend).scan()
    assert missing.value.problem is ScanProblem.NO_SCANNER
    empty = sane_test_backend.parent / "none.d"
    empty.mkdir()
    (empty / "dll.conf").write_text("")
    with pytest.raises(ScanError) as none:
        await SaneScanner(resolution=75, config_dir=empty).scan()
    assert none.value.problem is ScanProblem.NO_SCANNER


async def test_a_jam_mid_scan_says_so_and_leaves_nothing(sane_test_backend: Path, tmp_path: Path) -> None:
    """The test backend's own failure modes: the page starts coming, then the feeder jams or the cover opens."""
    before = files(tmp_path)
    for status, words in (("SANE_STATUS_JAMMED", "jammed"), ("SANE_STATUS_COVER_OPEN", "cover")):
        scanner = SaneScanner(
            "test:0", resolution=75, config_dir=sane_test_backend, options=(f"--read-return-value={status}",)
        )
        with pytest.raises(ScanError) as failed:
            await scanner.scan()
        assert failed.value.problem is ScanProblem.FAILED and words in failed.value.detail.lower()
    assert files(tmp_path) == before
