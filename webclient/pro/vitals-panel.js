// The medical panel: latest value of each kind with unit, time and out-of-range flag, a trend chart,
// device batteries, and buttons to ask the cabin for a measurement.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { formatNumber, unitLabel } from "/static/shared/vitals.js";

export const KINDS = {
  "body-temperature": { label: "temperature", codes: ["value"] },
  "blood-pressure": { label: "bloodPressure", codes: ["systolic", "diastolic"] },
  "oxygen-saturation": { label: "spo2", codes: ["spo2"] },
  "heart-rate": { label: "heartRate", codes: ["value"] },
  "body-weight": { label: "weight", codes: ["value"] },
};
const REQUESTABLE = ["body-temperature", "blood-pressure", "oxygen-saturation", "body-weight"];

// Thresholds are written in Cel and mm[Hg]; convert other units before comparing.
function comparable(q) {
  if (q.value === null || q.value === undefined) return null;
  if (q.unit === "[degF]") return ((q.value - 32) * 5) / 9;
  if (q.unit === "kPa") return q.value * 7.50062;
  return q.value;
}

export function flagsFor(reading, thresholds) {
  const limits = thresholds[reading.kind] ?? {};
  const flags = [];
  for (const q of reading.quantities) {
    const limit = limits[q.code];
    const v = comparable(q);
    if (!limit || v === null) continue;
    if (limit.high !== undefined && v >= limit.high) flags.push({ code: q.code, level: "high" });
    if (limit.low !== undefined && v < limit.low) flags.push({ code: q.code, level: "low" });
  }
  return flags;
}

export class VitalsPanel {
  constructor({ list, trend, trendKind, caption, devices, t, lang, onRequest }) {
    Object.assign(this, { list, trend, trendKind, caption, devices, t, lang, onRequest });
    this.thresholds = {};
    this.latest = new Map();
    this.history = [];
    this.deviceStates = new Map();
    this.pending = new Set();
    this.chart = null;
    this.trendFrame = 0;
    trendKind.addEventListener("change", () => this.renderTrend());
  }

  async loadThresholds(url) {
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.ok) this.thresholds = await response.json();
    } catch {
      this.thresholds = {};
    }
  }

  setLanguage(t, lang) {
    this.t = t;
    this.lang = lang;
    this.render();
  }

  // Readings may come back out of order after a reconnection (the cabin replays what was not acknowledged):
  // the list and the chart follow measurement time, and the latest of a kind is the last one measured.
  add(reading) {
    const at = (r) => new Date(r.measured_at).getTime();
    const current = this.latest.get(reading.kind);
    if (!current || at(reading) >= at(current)) this.latest.set(reading.kind, reading);
    let i = this.history.length;
    while (i > 0 && at(this.history[i - 1]) > at(reading)) i -= 1;
    this.history.splice(i, 0, reading);
    this.pending.delete(reading.kind);
    if (KINDS[reading.kind]) this.#renderKind(reading.kind);
  }

  device(state) {
    this.deviceStates.set(state.address, state);
    this.renderDevices();
  }

  requested(kind) {
    this.pending.add(kind);
    this.#renderKind(kind);
  }

  format(q) {
    if (q.value === null || q.value === undefined) return `${this.t("noValue")} (${q.no_value})`;
    return `${formatNumber(q.value, this.lang, q.unit)} ${unitLabel(q.unit)}`;
  }

  describe(reading) {
    const q = Object.fromEntries(reading.quantities.map((x) => [x.code, x]));
    if (reading.kind === "blood-pressure" && q.systolic?.value != null && q.diastolic?.value != null) {
      return `${formatNumber(q.systolic.value, this.lang, q.systolic.unit)}/` +
        `${formatNumber(q.diastolic.value, this.lang, q.diastolic.unit)} ${unitLabel(q.systolic.unit)}`;
    }
    return this.format(reading.quantities[0]);
  }

  extras(reading) {
    const q = Object.fromEntries(reading.quantities.map((x) => [x.code, x]));
    const parts = [];
    if (q.mean) parts.push(`${this.t("mean")} ${this.format(q.mean)}`);
    if (q["pulse-rate"]) parts.push(`${this.t("pulse")} ${this.format(q["pulse-rate"])}`);
    return parts.join(" · ");
  }

  render() {
    this.list.replaceChildren();
    for (const kind of Object.keys(KINDS)) this.list.append(...this.#entry(kind));
    this.#fillTrendKinds();
    this.renderTrend();
    this.renderDevices();
  }

  // Only the kind that changed is rebuilt, at once; the chart follows on the next animation frame, so that a
  // reading reaches the doctor's eyes without waiting for the chart.
  #renderKind(kind) {
    const old = document.getElementById(`vital-${kind}`);
    if (!old) {
      this.render();
      return;
    }
    const [dt, dd] = this.#entry(kind);
    old.previousElementSibling.replaceWith(dt);
    old.replaceWith(dd);
    if (this.trendFrame) return;
    this.trendFrame = requestAnimationFrame(() => {
      this.trendFrame = 0;
      this.#fillTrendKinds();
      this.renderTrend();
    });
  }

  #entry(kind) {
    const t = this.t;
    const meta = KINDS[kind];
    const reading = this.latest.get(kind);
    const dt = document.createElement("dt");
    const name = document.createElement("span");
    name.textContent = t(meta.label);
    dt.append(name);
    if (REQUESTABLE.includes(kind)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.dataset.kind = kind;
      button.textContent = t("request");
      button.setAttribute("aria-label", `${t("requestLabel")}${t(meta.label)}`);
      button.addEventListener("click", () => this.onRequest(kind));
      dt.append(button);
    }
    const dd = document.createElement("dd");
    dd.id = `vital-${kind}`;
    if (this.pending.has(kind)) {
      const pending = document.createElement("span");
      pending.className = "pending";
      pending.textContent = t("requested");
      dd.append(pending);
    }
    if (!reading) {
      if (!this.pending.has(kind)) dd.textContent = t("noReading");
      dd.classList.add("empty");
      return [dt, dd];
    }
    const value = document.createElement("span");
    value.className = "value";
    value.dataset.value = reading.value ?? "";
    value.dataset.unit = reading.unit;
    value.textContent = this.describe(reading);
    dd.append(value);
    for (const flag of flagsFor(reading, this.thresholds)) {
      const badge = document.createElement("span");
      badge.className = "flag";
      badge.dataset.flag = `${flag.code}-${flag.level}`;
      badge.textContent = `${t(flag.level)}`;
      badge.setAttribute("aria-label", `${t(meta.label)} ${flag.code}: ${t(flag.level)}`);
      dd.append(badge);
    }
    const extra = this.extras(reading);
    if (extra) {
      const small = document.createElement("span");
      small.className = "time";
      small.textContent = extra;
      dd.append(small);
    }
    const time = document.createElement("time");
    time.className = "time";
    time.dateTime = reading.measured_at;
    const when = new Date(reading.measured_at).toLocaleTimeString(this.lang);
    time.textContent = `${reading.time_source === "device" ? t("measuredAt") : t("receivedAt")} ${when}`;
    dd.append(time);
    return [dt, dd];
  }

  #fillTrendKinds() {
    const kinds = [...new Set(this.history.map((r) => r.kind))];
    const current = this.trendKind.value || kinds[0];
    this.trendKind.replaceChildren(...kinds.map((kind) => {
      const option = document.createElement("option");
      option.value = kind;
      option.textContent = this.t(KINDS[kind]?.label ?? kind);
      option.selected = kind === current;
      return option;
    }));
    this.trendKind.hidden = kinds.length === 0;
  }

  renderTrend() {
    const kind = this.trendKind.value;
    const points = this.history.filter((r) => r.kind === kind);
    if (!kind || points.length === 0) {
      this.chart?.destroy();
      this.chart = null;
      this.caption.textContent = this.t("noTrend");
      return;
    }
    const codes = KINDS[kind]?.codes ?? ["value"];
    const xs = points.map((r) => new Date(r.measured_at).getTime() / 1000);
    const series = codes.map((code) => points.map((r) => r.quantities.find((q) => q.code === code)?.value ?? null));
    const unit = unitLabel(points[points.length - 1].unit);
    const width = Math.max(240, this.trend.clientWidth || 320);
    const options = {
      width, height: 160, legend: { show: codes.length > 1 },
      scales: {
        // A single point would otherwise stretch the axes over years: keep a few minutes around it.
        x: { time: true, auto: false, range: xs[xs.length - 1] - xs[0] < 120
          ? [xs[0] - 300, xs[xs.length - 1] + 300] : [xs[0], xs[xs.length - 1]] },
        y: { range: (u, min, max) => (max - min < 1e-9 ? [min * 0.95, max * 1.05] : [min - (max - min) * 0.2, max + (max - min) * 0.2]) },
      },
      axes: [{ stroke: "#333" }, { stroke: "#333", label: unit }],
      series: [{}, ...codes.map((code, i) => ({ label: code, stroke: ["#0b3d91", "#b00020"][i % 2], width: 2,
                                              points: { show: true, size: 6 } }))],
    };
    this.chart?.destroy();
    this.chart = new uPlot(options, [xs, ...series], this.trend);
    const last = points[points.length - 1];
    this.caption.textContent = `${this.t(KINDS[kind]?.label ?? kind)} : ${points.length} × · ${this.describe(last)}`;
  }

  renderDevices() {
    const items = [...this.deviceStates.values()].map((d) => {
      const li = document.createElement("li");
      const battery = d.battery === null || d.battery === undefined ? "" : ` · ${this.t("battery")} ${d.battery} %`;
      li.textContent = `${d.name || d.address} · ${d.connected ? this.t("connected") : this.t("disconnected")}${battery}`;
      return li;
    });
    if (items.length === 0) {
      const li = document.createElement("li");
      li.textContent = this.t("noDevice");
      items.push(li);
    }
    this.devices.replaceChildren(...items);
  }
}
