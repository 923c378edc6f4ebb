// The browser-to-browser baseline's cabin side: the stamped test pattern drawn on a canvas at the requested size and
// rate, sent with captureStream() plus a fake microphone; the doctor's camera is received and shown.
// window.bench.offer(codec, config) returns an offer (ICE gathered; `config` an RTCConfiguration, default no ICE
// servers), window.bench.accept(answerSdp) completes it. A "vitals" data channel carries a stamped message every
// 1.5 s, as a cabin's readings would (bench/network_profiles.py reads their latency on the receiver).
import { drawStamp, BLOCKS, ROWS } from "/static/bench/stamp.js";

const params = new URLSearchParams(location.search);
const width = Number(params.get("width") ?? 640);
const height = Number(params.get("height") ?? 480);
const fps = Number(params.get("fps") ?? 30);
const canvas = document.getElementById("pattern");
canvas.width = width;
canvas.height = height;
const ctx = canvas.getContext("2d");
const bench = { pc: null, frames: 0 };
window.bench = bench;

// 75% colour bars, a moving white bar and a grey ramp, like gateway/media/pattern.py.
const BARS = ["#bfbfbf", "#bfbf00", "#00bfbf", "#00bf00", "#bf00bf", "#bf0000", "#0000bf", "#101010"];
const ramp = ctx.createLinearGradient(0, 0, width, 0);
ramp.addColorStop(0, "#101010");
ramp.addColorStop(1, "#ebebeb");

function draw(index) {
  const barWidth = Math.floor(width / BARS.length);
  BARS.forEach((colour, i) => {
    ctx.fillStyle = colour;
    ctx.fillRect(i * barWidth, 0, i === BARS.length - 1 ? width - i * barWidth : barWidth, height);
  });
  ctx.fillStyle = ramp;
  ctx.fillRect(0, height - Math.floor(height / 8), width, Math.floor(height / 8));
  const bar = Math.max(8, Math.floor(width / 40));
  const x = (index * Math.floor(width / 120)) % (width - bar);
  const top = Math.floor(width / BLOCKS) * ROWS;
  ctx.fillStyle = "#ebebeb";
  ctx.fillRect(x, top, bar, height - Math.floor(height / 8) - top);
  drawStamp(ctx, width, Date.now(), index);
}

const start = performance.now();
function tick() {
  draw(bench.frames);
  bench.frames += 1;
  setTimeout(tick, Math.max(0, start + (bench.frames * 1000) / fps - performance.now()));
}
tick();
const video = canvas.captureStream().getVideoTracks()[0];
// Keep the full size while the bandwidth estimate ramps up, as the aiortc senders do: same pixels, same work.
video.contentHint = "detail";

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

function preferred(codec) {
  const mime = codec === "h264" ? "video/h264" : "video/vp8";
  const all = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType.toLowerCase() === mime);
  // For H264, the constrained-baseline, packetization-mode=1 profile first (what aiortc also offers).
  const rank = (c) => ((c.sdpFmtpLine ?? "").includes("profile-level-id=42e01f") &&
    (c.sdpFmtpLine ?? "").includes("packetization-mode=1") ? 0 : 1);
  return all.sort((a, b) => rank(a) - rank(b)).slice(0, 1);
}

bench.offer = async (codec, config = { iceServers: [] }) => {
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const stream = new MediaStream([mic.getAudioTracks()[0], video]);
  const pc = new RTCPeerConnection(config);
  bench.pc = pc;
  const vitals = pc.createDataChannel("vitals");
  let sent = 0;
  vitals.addEventListener("open", () => {
    setInterval(() => {
      if (vitals.readyState === "open") vitals.send(JSON.stringify({ seq: ++sent, at: Date.now() }));
    }, 1500);
  });
  pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv", streams: [stream] });
  const transceiver = pc.addTransceiver(video, { direction: "sendrecv", streams: [stream] });
  if (codec) transceiver.setCodecPreferences(preferred(codec));
  pc.addEventListener("track", (event) => {
    if (event.track.kind !== "video") return;
    const remote = document.getElementById("remote");
    remote.srcObject = event.streams[0] ?? new MediaStream([event.track]);
    remote.play().catch(() => {});
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
};

bench.accept = async (answerSdp) => {
  await bench.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
};

bench.outbound = async () => {
  let out = null;
  (await bench.pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out = { frameWidth: s.frameWidth, frameHeight: s.frameHeight, framesEncoded: s.framesEncoded,
        encoder: s.encoderImplementation, qualityLimitationReason: s.qualityLimitationReason,
        totalEncodeTime: s.totalEncodeTime };
    }
  });
  return out;
};
