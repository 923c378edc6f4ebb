// Documents to the cabin, over the call's `documents` data channel (peer to peer: signaling never sees them).
// Protocol (gateway/documents/transfer.py): announce {v, type: "document", id, name, mime, size, sha256}, binary
// chunks of at most 64 KiB, then {v, type: "document-end", id}; the cabin answers "document-status" messages
// (received, refused with its reason, printing, printed, print-failed with its reason).

export const MAX_BYTES = 20 * 1024 * 1024;
export const TYPES = ["application/pdf", "image/png", "image/jpeg"];
const CHUNK = 64 * 1024;
const HIGH_WATER = 1024 * 1024;

export function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class DocumentSender extends EventTarget {
  constructor() {
    super();
    this.channel = null;
    this.sent = []; // { id, name, state, reason }
    this.counter = 0;
  }

  attach(channel) {
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = HIGH_WATER / 4;
    channel.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type !== "document-status") return;
      const doc = this.sent.find((d) => d.id === message.id);
      if (!doc) return;
      doc.state = message.state;
      doc.reason = message.reason ?? "";
      this.dispatchEvent(new CustomEvent("change"));
    });
    channel.addEventListener("open", () => this.dispatchEvent(new CustomEvent("change")));
    channel.addEventListener("close", () => this.dispatchEvent(new CustomEvent("change")));
    this.dispatchEvent(new CustomEvent("change"));
  }

  get ready() {
    return this.channel?.readyState === "open";
  }

  // Checks what the cabin would refuse anyway (type, size) before sending; throws Error("type"|"size"|"closed").
  // `role`: "summary" or "prescription", the doctor's papers for the citizen (the cabin screen names them).
  async send(file, { role = null, name = null } = {}) {
    if (!TYPES.includes(file.type)) throw new Error("type");
    if (file.size > MAX_BYTES) throw new Error("size");
    if (!this.ready) throw new Error("closed");
    const data = await file.arrayBuffer();
    const sha256 = hex(await crypto.subtle.digest("SHA-256", data));
    const id = `doc_${Date.now().toString(36)}_${(this.counter += 1)}`;
    const doc = { id, name: (name ?? file.name).slice(0, 120) || "document", state: "sending", reason: "", role };
    this.sent.push(doc);
    this.dispatchEvent(new CustomEvent("change"));
    const channel = this.channel;
    const announce = { v: 1, type: "document", id, name: doc.name, mime: file.type, size: data.byteLength, sha256 };
    if (role) announce.role = role;
    channel.send(JSON.stringify(announce));
    for (let at = 0; at < data.byteLength; at += CHUNK) {
      if (channel.bufferedAmount > HIGH_WATER) {
        await new Promise((resolve) => channel.addEventListener("bufferedamountlow", resolve, { once: true }));
      }
      if (channel.readyState !== "open") throw new Error("closed");
      channel.send(data.slice(at, at + CHUNK));
    }
    channel.send(JSON.stringify({ v: 1, type: "document-end", id }));
    return doc;
  }
}
