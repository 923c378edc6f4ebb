"""A bare aiortc peer: the baseline with no Cabine code in the media path except the stamped pattern.

It serves the minimal page webclient/bench/receiver.html and, for each POST /offer, makes one RTCPeerConnection
that sends the stamped pattern and a tone (sendrecv, like the gateway) and drains what the page sends back.
Used in-process by the latency benchmarks, and as a process of its own by the CPU benchmark:

    python bench/bare_peer.py --port 8600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import uuid

import common
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.ice import host_addresses
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack

PEERS: web.AppKey[dict[str, RTCPeerConnection]] = web.AppKey("peers", dict)
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("tasks", set)


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


async def offer(request: web.Request) -> web.Response:
    """POST /offer?codec=vp8|h264&width=W&height=H&fps=F: a new peer's offer, as {id, sdp}."""
    query = request.query
    width, height = int(query.get("width", 640)), int(query.get("height", 480))
    fps = int(query.get("fps", 30))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer_id = uuid.uuid4().hex
    request.app[PEERS][peer_id] = pc
    pc.addTransceiver(ToneAudioTrack(), direction="sendrecv")
    video = pc.addTransceiver(PatternVideoTrack(width, height, fps, stamp=True), direction="sendrecv")
    codec = query.get("codec", "")
    if codec:
        mime = {"vp8": "video/vp8", "h264": "video/h264"}[codec]
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in capabilities if c.mimeType.lower() in (mime, "video/rtx")])
    tasks = request.app[TASKS]

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(_drain(track))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await pc.setLocalDescription(await pc.createOffer())
    return web.json_response({"id": peer_id, "sdp": pc.localDescription.sdp})


async def answer(request: web.Request) -> web.Response:
    """POST /answer?id=ID with the page's answer SDP as the body."""
    pc = request.app[PEERS].get(request.query.get("id", ""))
    if pc is None:
        raise web.HTTPNotFound(text="unknown peer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="answer"))
    return web.Response(text="ok")


async def _close_peers(app: web.Application) -> None:
    for pc in list(app[PEERS].values()):
        for transceiver in pc.getTransceivers():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
        await pc.close()
    app[PEERS].clear()
    for task in list(app[TASKS]):
        task.cancel()
    for task in list(app[TASKS]):
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app() -> web.Application:
    app = web.Application()
    app[PEERS] = {}
    app[TASKS] = set()
    app.router.add_post("/offer", offer)
    app.router.add_post("/answer", answer)
    app.on_shutdown.append(_close_peers)
    return app


@contextlib.asynccontextmanager
async def bare_peer() -> common.AsyncIterator[common.Served]:
    """The bare peer and its page on a free 127.0.0.1 port (aiortc gathers on 127.0.0.1 only)."""
    with host_addresses(common.LOOPBACK):
        async with common.static_server(create_app()) as served:
            yield served


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with host_addresses(common.LOOPBACK):
        app = create_app()
        app.router.add_static("/static/", common.WEBCLIENT, follow_symlinks=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"Bare peer ready: http://127.0.0.1:{port}/static/bench/receiver.html?peer=aiortc", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8600)
    args = parser.parse_args()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
