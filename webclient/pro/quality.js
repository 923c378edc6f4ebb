// Connection quality from getStats, in plain words: good / fair / poor, with the figures behind it.

export function classify({ rttMs, lossPct, fps }) {
  if ((rttMs ?? 0) > 400 || (lossPct ?? 0) > 5 || (fps !== null && fps < 10)) return "poor";
  if ((rttMs ?? 0) > 200 || (lossPct ?? 0) > 1 || (fps !== null && fps < 20)) return "fair";
  return "good";
}

export class QualityMonitor {
  constructor(onUpdate) {
    this.onUpdate = onUpdate;
    this.previous = null;
    this.timer = 0;
  }

  watch(pc) {
    this.stop();
    this.previous = null;
    this.timer = setInterval(() => this.#sample(pc).catch(() => {}), 2000);
  }

  stop() {
    clearInterval(this.timer);
  }

  async #sample(pc) {
    if (pc.connectionState !== "connected") return;
    const stats = await pc.getStats();
    let bytes = 0, received = 0, lost = 0, fps = null, rttMs = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp") {
        bytes += s.bytesReceived || 0;
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        if (s.kind === "video" && s.framesPerSecond !== undefined) fps = s.framesPerSecond;
      }
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
        rttMs = s.currentRoundTripTime * 1000;
      }
    });
    const now = performance.now();
    const prev = this.previous;
    this.previous = { now, bytes, received, lost };
    if (!prev) return;
    const seconds = (now - prev.now) / 1000;
    const dReceived = received - prev.received, dLost = lost - prev.lost;
    const figures = {
      rttMs,
      lossPct: dReceived + dLost > 0 ? (100 * dLost) / (dReceived + dLost) : 0,
      kbps: (8 * (bytes - prev.bytes)) / 1000 / seconds,
      fps,
    };
    this.onUpdate(classify(figures), figures);
  }
}
