// Is anything still arriving from the cabin? A call whose media stop is "reconnecting" within ~2 s, long before
// the browser's own ICE consent checks would say so; the cabin then offers a new connection by itself.

const DEAD_AFTER_MS = 2000;
const EVERY_MS = 250;

async function inboundCount(pc) {
  let total = 0;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") total += s.packetsReceived ?? 0;
    if (s.type === "data-channel") total += s.messagesReceived ?? 0;
  });
  return total;
}

export class MediaWatch {
  constructor({ onDead, onAlive }) {
    Object.assign(this, { onDead, onAlive });
    this.timer = 0;
    this.pc = null;
    this.alive = false;
  }

  watch(pc) {
    this.stop();
    this.pc = pc;
    this.alive = true;
    let last = -1;
    let lastChange = performance.now();
    this.timer = setInterval(async () => {
      if (this.pc !== pc) return;
      let count;
      try {
        count = await inboundCount(pc);
      } catch {
        return;
      }
      const now = performance.now();
      if (count !== last) {
        last = count;
        lastChange = now;
        if (!this.alive) {
          this.alive = true;
          this.onAlive?.();
        }
      } else if (this.alive && now - lastChange > DEAD_AFTER_MS) {
        this.alive = false;
        this.onDead?.();
      }
    }, EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.pc = null;
    this.alive = false;
  }
}

// Does the TURN server take our credentials? A throwaway connection gathers relay candidates only:
// "ok", "refused" (401: wrong or expired credentials) or "unreachable"; null when no TURN server is configured.
export function checkTurn(iceServers, timeoutMs = 5000) {
  const turn = iceServers.filter((s) => [].concat(s.urls).some((u) => u.startsWith("turn")) && s.username);
  if (turn.length === 0) return Promise.resolve(null);
  return new Promise((resolve) => {
    const pc = new RTCPeerConnection({ iceServers: turn, iceTransportPolicy: "relay" });
    let refused = false;
    const done = (result) => {
      clearTimeout(timer);
      pc.close();
      resolve(result);
    };
    const timer = setTimeout(() => done(refused ? "refused" : "unreachable"), timeoutMs);
    pc.addEventListener("icecandidate", (e) => {
      if (e.candidate && e.candidate.type === "relay") done("ok");
      else if (!e.candidate) done(refused ? "refused" : "unreachable");
    });
    pc.addEventListener("icecandidateerror", (e) => {
      if (e.errorCode === 401 || e.errorCode === 403 || e.errorCode === 438) refused = true;
    });
    pc.createDataChannel("turn-check");
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => done("unreachable"));
  });
}
