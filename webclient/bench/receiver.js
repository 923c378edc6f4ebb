// A minimal doctor-side page for the baselines: camera and microphone out, the peer's video in, nothing else.
// ?peer=aiortc: fetches an offer from the bare aiortc peer that served the page (POST /offer, then POST /answer).
// Otherwise the benchmark hands it an offer through window.bench.answer(sdp) (browser-to-browser).
import { measureGlassToGlass } from "/static/bench/stamp.js";

const params = new URLSearchParams(location.search);
const video = document.getElementById("remote");
const bench = { pc: null, local: null, error: null, vitals: [] };
window.bench = bench;

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

const ready = navigator.mediaDevices
  .getUserMedia({ audio: true, video: { width: 640, height: 480 } })
  .then((stream) => { bench.local = stream; });

bench.answer = async (offerSdp, config = { iceServers: [] }) => {
  await ready;
  const pc = new RTCPeerConnection(config);
  bench.pc = pc;
  // The sender's stamped messages: [seq, milliseconds from sending to arrival] (one clock: the same machine).
  pc.addEventListener("datachannel", ({ channel }) => {
    channel.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      bench.vitals.push([message.seq, Date.now() - message.at]);
    });
  });
  for (const track of bench.local.getTracks()) pc.addTrack(track, bench.local);
  pc.addEventListener("track", (event) => {
    if (event.track.kind !== "video") return;
    video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
    video.play().catch(() => {});
  });
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  return pc.localDescription.sdp;
};

bench.measure = (options) => measureGlassToGlass(video, bench.pc, options);

if (params.get("peer") === "aiortc") {
  (async () => {
    await ready;
    const offer = await (await fetch(`/offer${location.search}`, { method: "POST" })).json();
    const answer = await bench.answer(offer.sdp);
    await fetch(`/answer?id=${encodeURIComponent(offer.id)}`, { method: "POST", body: answer });
  })().catch((err) => { bench.error = String(err); });
}
