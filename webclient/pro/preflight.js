// Before joining: pick the camera and microphone, see yourself, watch the microphone level.

export class Preflight {
  constructor({ preview, cameraSelect, micSelect, meter }) {
    Object.assign(this, { preview, cameraSelect, micSelect, meter });
    this.stream = null;
    this.audioContext = null;
    this.frame = 0;
    cameraSelect.addEventListener("change", () => this.start());
    micSelect.addEventListener("change", () => this.start());
  }

  async start() {
    const video = this.cameraSelect.value ? { deviceId: { exact: this.cameraSelect.value } } : true;
    const audio = this.micSelect.value ? { deviceId: { exact: this.micSelect.value } } : true;
    const constraints = {
      audio: { ...(audio === true ? {} : audio), echoCancellation: true, noiseSuppression: true },
      video: { ...(video === true ? {} : video), width: 640, height: 480 },
    };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    this.stopTracks();
    this.stream = stream;
    this.preview.srcObject = stream;
    await this.#fillDevices();
    this.#watchLevel();
    return stream;
  }

  async #fillDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      const options = devices.filter((d) => d.kind === kind).map((d, i) => {
        const option = document.createElement("option");
        option.value = d.deviceId;
        option.textContent = d.label || `${kind} ${i + 1}`;
        option.selected = d.deviceId === current;
        return option;
      });
      select.replaceChildren(...options);
    };
    const [videoTrack] = this.stream.getVideoTracks();
    const [audioTrack] = this.stream.getAudioTracks();
    fill(this.cameraSelect, "videoinput", videoTrack?.getSettings().deviceId);
    fill(this.micSelect, "audioinput", audioTrack?.getSettings().deviceId);
  }

  #watchLevel() {
    cancelAnimationFrame(this.frame);
    if (!this.stream.getAudioTracks().length) return;
    this.audioContext ??= new AudioContext();
    const source = this.audioContext.createMediaStreamSource(this.stream);
    const analyser = this.audioContext.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      // RMS scaled so that normal speech sits mid-way on the meter.
      this.meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      this.frame = requestAnimationFrame(tick);
    };
    tick();
  }

  // Hand the stream to the call: the preview stops, the tracks go on.
  take() {
    cancelAnimationFrame(this.frame);
    this.audioContext?.close();
    this.audioContext = null;
    const stream = this.stream;
    this.stream = null;
    this.preview.srcObject = null;
    return stream;
  }

  stopTracks() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
  }
}
