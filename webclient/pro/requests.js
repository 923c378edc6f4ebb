// Documents asked of the citizen, over the call's `documents` data channel (peer to peer: signaling never sees
// them). The console asks {v, type: "document-request", id, label} (withdrawn with "document-request-cancel"); the
// cabin answers "request-status" messages as the citizen goes (shown, capturing, captured, sending, sent,
// declined, failed with its reason, cancelled), then sends the page the citizen confirmed like any document:
// {v, type: "document", id, name, mime, size, sha256, request}, binary chunks, {v, type: "document-end", id}. The
// console checks size and SHA-256, keeps it in memory as a Blob to download, and answers "document-status".

import { hex, MAX_BYTES, TYPES } from "/static/pro/documents.js";

const MAX_REQUESTS = 20;

export class DocumentRequests extends EventTarget {
  constructor() {
    super();
    this.channel = null;
    this.requests = []; // { id, label, state, reason, file: { name, mime, size, url } | null }
    this.incoming = null; // the document arriving: its announcement, parts and bytes so far
    this.counter = 0;
  }

  attach(channel) {
    this.channel = channel;
    this.incoming = null;
    channel.binaryType = "arraybuffer";
    channel.addEventListener("message", (event) => this.onMessage(event.data));
    for (const kind of ["open", "close"]) channel.addEventListener(kind, () => this.changed());
    this.changed();
  }

  get ready() {
    return this.channel?.readyState === "open";
  }

  changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }

  send(message) {
    if (this.ready) this.channel.send(JSON.stringify({ v: 1, ...message }));
  }

  // Asks the citizen for a document; throws Error("closed") when no call carries it.
  ask(label) {
    const text = String(label).trim().slice(0, 120);
    if (!text) throw new Error("label");
    if (!this.ready) throw new Error("closed");
    const id = `req_${Date.now().toString(36)}_${(this.counter += 1)}`;
    // One at a time, as the cabin screen shows them: an earlier one still open is withdrawn.
    for (const request of this.requests) if (this.open(request)) request.state = "replaced";
    this.requests.push({ id, label: text, state: "asking", reason: "", file: null });
    while (this.requests.length > MAX_REQUESTS) {
      const old = this.requests.shift();
      if (old.file) URL.revokeObjectURL(old.file.url);
    }
    this.send({ type: "document-request", id, label: text });
    this.changed();
    return id;
  }

  cancel(id) {
    const request = this.requests.find((r) => r.id === id);
    if (!request || !this.open(request)) return;
    this.send({ type: "document-request-cancel", id });
    request.state = "cancelled";
    this.changed();
  }

  open(request) {
    return ["asking", "shown", "capturing", "captured", "sending", "failed"].includes(request.state);
  }

  // Forget every document received (the end of the consultation: what was downloaded is the professional's).
  clear() {
    for (const request of this.requests) if (request.file) URL.revokeObjectURL(request.file.url);
    this.requests = [];
    this.incoming = null;
    this.changed();
  }

  onMessage(data) {
    if (typeof data !== "string") return this.onChunk(data);
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "request-status") {
      const request = this.requests.find((r) => r.id === message.id);
      if (!request || request.state === "cancelled" || request.state === "replaced") return;
      if (request.state === "received" && message.state !== "failed") return;
      request.state = String(message.state);
      request.reason = String(message.reason ?? "");
      this.changed();
    } else if (message.type === "document" && typeof message.request === "string") {
      const ok = TYPES.includes(message.mime) && Number.isInteger(message.size) && message.size > 0 &&
                 message.size <= MAX_BYTES && /^[0-9a-f]{64}$/.test(message.sha256 ?? "");
      if (!ok) return this.answer(message.id, "refused", "not a document this console takes");
      this.incoming = { ...message, parts: [], received: 0 };
    } else if (message.type === "document-end" && this.incoming?.id === message.id) {
      const incoming = this.incoming;
      this.incoming = null;
      this.finish(incoming);
    }
  }

  onChunk(chunk) {
    const incoming = this.incoming;
    if (!incoming) return;
    incoming.received += chunk.byteLength;
    if (incoming.received > incoming.size) {
      this.incoming = null;
      return this.answer(incoming.id, "refused", "more bytes than announced");
    }
    incoming.parts.push(chunk);
  }

  async finish(incoming) {
    const blob = new Blob(incoming.parts, { type: incoming.mime });
    const digest = hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
    if (blob.size !== incoming.size || digest !== incoming.sha256) {
      return this.answer(incoming.id, "refused", "the document arrived damaged");
    }
    const request = this.requests.find((r) => r.id === incoming.request);
    if (!request || request.state === "cancelled" || request.state === "replaced") {
      return this.answer(incoming.id, "refused", "no longer asked for");
    }
    if (request.file) URL.revokeObjectURL(request.file.url);
    const name = String(incoming.name).replace(/[\\/:*?"<>|]+/g, " ").slice(0, 120) || "document";
    request.file = { name, mime: incoming.mime, size: blob.size, url: URL.createObjectURL(blob) };
    request.state = "received";
    this.answer(incoming.id, "received");
    this.changed();
  }

  answer(id, state, reason = "") {
    this.send({ type: "document-status", id, state, reason });
  }
}
