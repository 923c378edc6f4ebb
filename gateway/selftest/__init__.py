"""The cabin's self-test: camera, microphone, Bluetooth adapter and devices, signaling, ICE servers, clock.

`run_selftest(plan)` runs every probe concurrently, each bounded in time and unable to raise, and returns a
`signaling.protocol.SelftestReport`; `render_text` and `render_json` show it to a person or a program.
"""

from gateway.media.meters import AudioLevel, AudioMeter, VideoMeter, VideoStats
from gateway.selftest.plan import SelftestPlan, Timeouts
from gateway.selftest.report import render_json, render_text
from gateway.selftest.run import run_selftest
from gateway.selftest.signaling_link import HasWelcome, SignalingContact
from gateway.selftest.standalone import standalone_plan

__all__ = [
    "AudioLevel",
    "AudioMeter",
    "HasWelcome",
    "SelftestPlan",
    "SignalingContact",
    "Timeouts",
    "VideoMeter",
    "VideoStats",
    "render_json",
    "render_text",
    "run_selftest",
    "standalone_plan",
]
