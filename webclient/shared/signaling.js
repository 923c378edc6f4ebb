// The page's WebSocket to signaling: hello with the link's token, then typed JSON messages.

export class SignalingConnection extends EventTarget {
  constructor(role, token) {
    super();
    this.role = role;
    this.token = token;
    this.ws = null;
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/${this.role}`);
    this.ws = ws;
    ws.addEventListener("open", () => this.send({ type: "hello", token: this.token }));
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("message", { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ v: 1, ...message }));
    }
  }

  close() {
    if (this.ws) this.ws.close(1000, "bye");
  }
}
