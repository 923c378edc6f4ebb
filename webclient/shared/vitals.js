// Receiving readings on the "vitals" data channel: numbered, de-duplicated, acknowledged.

const UNITS = {
  "Cel": "°C", "[degF]": "°F", "mm[Hg]": "mmHg", "kPa": "kPa", "%": "%", "/min": "/min",
  "kg": "kg", "[lb_av]": "lb", "kg/m2": "kg/m²", "m": "m", "[in_i]": "in",
};

export function unitLabel(ucum) {
  return UNITS[ucum] ?? ucum;
}

// Decimals shown per unit: a temperature is always read to the tenth ("37,0 °C", never "37 °C").
const DECIMALS = { "Cel": 1, "[degF]": 1, "kg": 1, "[lb_av]": 1, "kg/m2": 1, "m": 2, "[in_i]": 1 };

export function formatNumber(value, lang, unit) {
  const digits = DECIMALS[unit] ?? (Number.isInteger(value) ? 0 : 1);
  return new Intl.NumberFormat(lang === "fr" ? "fr-FR" : "en-GB", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(value);
}

export class VitalsReceiver extends EventTarget {
  constructor() {
    super();
    this.lastSeq = 0;
    this.seen = new Set();
    this.readings = [];
  }

  attach(channel) {
    this.channel = channel;
    clearInterval(this.heartbeat);
    channel.addEventListener("open", () => {
      this.#send({ type: "hello", last_seq: this.lastSeq });
      // The cabin takes a silent channel (and silent media) for a dead path: say we are here every second.
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.#send({ type: "heartbeat" }), 1000);
    });
    channel.addEventListener("close", () => {
      if (this.channel === channel) clearInterval(this.heartbeat);
    });
    channel.addEventListener("message", (event) => this.#onMessage(event.data));
  }

  #send(message) {
    if (this.channel && this.channel.readyState === "open") {
      this.channel.send(JSON.stringify({ v: 1, ...message }));
    }
  }

  #onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.v !== 1 || message.type === "heartbeat") return;
    if (message.type === "device" && message.device) {
      this.dispatchEvent(new CustomEvent("device", { detail: message.device }));
      return;
    }
    if (message.type === "bundle" && message.bundle) {
      this.bundle = message.bundle;
      this.dispatchEvent(new CustomEvent("bundle", { detail: message.bundle }));
      return;
    }
    if (message.type !== "reading" || !Number.isInteger(message.seq)) return;
    if (!this.seen.has(message.seq)) {
      this.seen.add(message.seq);
      this.readings.push({ ...message.reading, seq: message.seq, receivedAt: new Date() });
      this.dispatchEvent(new CustomEvent("reading", { detail: { seq: message.seq, reading: message.reading } }));
    }
    while (this.seen.has(this.lastSeq + 1)) this.lastSeq += 1;
    this.#send({ type: "ack", seq: this.lastSeq });
  }

  request(kind) {
    this.#send({ type: "request", kind });
  }

  // Ask the cabin for the consultation's FHIR Bundle; resolves with it, or null after `timeoutMs`.
  exportBundle(timeoutMs = 3000) {
    return new Promise((resolve) => {
      if (!this.channel || this.channel.readyState !== "open") {
        resolve(this.bundle ?? null);
        return;
      }
      const timer = setTimeout(() => resolve(this.bundle ?? null), timeoutMs);
      this.addEventListener("bundle", (e) => { clearTimeout(timer); resolve(e.detail); }, { once: true });
      this.#send({ type: "export" });
    });
  }
}
