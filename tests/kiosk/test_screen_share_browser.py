"""The professional shares their screen with the cabin, in real headless Chromium against the real demo: the doctor
page's "Partager l'écran" (Chromium's fake screen capture), the cabin screen showing it large with the face in a
corner, the voice never interrupted (no renegotiation: the share starts and stops with replaceTrack on a transceiver
the cabin offered), and back to the face when the share stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from cabine.demo.run import run_demo
from tests.browser import chromium, wait_js
from tests.kiosk.conftest import check_state
from tests.kiosk.test_cabin_screen_browser import in_call, options

pytestmark = pytest.mark.timeout(120)

# The shared screen's frames decoded by the cabin screen, its size, and the doctor's voice samples received.
SHARED_JS = """async () => {
  const pc = window.cabine.pc, mids = window.cabine.mids;
  if (!pc || !mids || !mids.professional_screen) return null;
  const byMid = {};
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") byMid[s.mid] = s; });
  const shared = document.getElementById("shared");
  return {
    frames: (byMid[mids.professional_screen] || {}).framesDecoded || 0,
    width: shared.videoWidth,
    shown: !shared.hidden,
    audioSamples: (byMid[mids.professional_audio] || {}).totalSamplesReceived || 0,
    concealed: (byMid[mids.professional_audio] || {}).concealedSamples || 0,
    at: performance.now(),
  };
}"""


async def test_the_professionals_screen_large_in_the_cabin(tmp_path: Path, port: int) -> None:
    async with run_demo(options(tmp_path, port)) as demo, chromium(tmp_path / "profile") as browser:
        cabin, doctor = await in_call(browser, demo)
        await doctor.wait_for_selector("body[data-state=inCall]", timeout=20_000)
        session = demo.gateway.sessions[demo.appointment.id]
        share = doctor.get_by_role("button", name="Partager l'écran")
        await share.wait_for()
        assert not await cabin.locator("#shared").is_visible()

        before = await cabin.evaluate(SHARED_JS)
        await share.click()
        await doctor.get_by_role("button", name="Arrêter le partage").wait_for()
        await doctor.get_by_text("Votre écran s'affiche en grand dans la cabine.").wait_for()
        await cabin.wait_for_selector("#stage.sharing #shared:not([hidden])", timeout=15_000)
        await wait_js(
            cabin,
            f"async () => {{ const m = await ({SHARED_JS})(); return m && m.frames > 10 && m.width >= 1280; }}",
            timeout=20,
            what="the doctor's screen (Chromium's fake 1280x800 capture) decoded in the cabin screen",
        )
        assert session is demo.gateway.sessions[demo.appointment.id], "the call was not renewed"
        assert session.screen_sharing
        # The voice went on through it all: 48,000 samples a second, hardly any concealed.
        after = await cabin.evaluate(SHARED_JS)
        seconds = (after["at"] - before["at"]) / 1000
        assert after["audioSamples"] - before["audioSamples"] >= 0.9 * 48_000 * seconds
        assert after["concealed"] - before["concealed"] < 0.1 * 48_000 * seconds
        await check_state(cabin, "cabin-sharing")
        await check_state(doctor, "doctor-sharing")

        await doctor.get_by_role("button", name="Arrêter le partage").click()
        await cabin.wait_for_selector("#shared[hidden]", state="attached", timeout=15_000)
        assert not await cabin.locator("#stage.sharing").count()
        assert await doctor.get_by_role("button", name="Partager l'écran").is_visible()
        assert not session.screen_sharing
        assert session is demo.gateway.sessions[demo.appointment.id]
