// The professional's page: join, answer the cabin's offer, show the cabin, show live readings.
import { STRINGS, pickLanguage } from "/static/shared/i18n.js";
import { SignalingConnection } from "/static/shared/signaling.js";
import { VitalsReceiver, formatNumber, unitLabel } from "/static/shared/vitals.js";

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.replace(/^\/join\//, ""));

const state = {
  lang: pickLanguage(),
  status: "idle",
  appointment: null,
  pc: null,
  local: null,
  signaling: null,
  vitals: new VitalsReceiver(),
  latest: new Map(),
  room: null,
  ended: false,
};
// For diagnostics from the browser console (and the tests): the live objects, never a credential.
window.cabine = state;

const KIND_LABELS = {
  "body-temperature": "temperature",
  "blood-pressure": "bloodPressure",
  "oxygen-saturation": "spo2",
  "heart-rate": "heartRate",
  "body-weight": "weight",
};

function t(key) {
  return STRINGS[state.lang][key] ?? key;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  setStatus(state.status, state.statusError);
  renderAppointment();
  renderRoom();
  renderVitals();
}

function setStatus(key, isError = false) {
  state.status = key;
  state.statusError = isError;
  const el = $("status");
  el.textContent = key === "idle" ? "" : t(key);
  el.classList.toggle("error", isError);
  document.body.dataset.state = key;
}

function renderAppointment() {
  const a = state.appointment;
  if (!a) return;
  const start = new Date(a.starts_at).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  const end = new Date(a.ends_at).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  $("appointment").textContent = `${t("kinds")[a.kind] ?? a.kind} · ${t("appointmentWith")} ${a.cabin_id} · ${start}–${end}`;
}

function renderRoom() {
  const room = state.room;
  const section = $("waiting");
  if (!room) return;
  section.hidden = room.admitted && room.professional_present && room.cabin_online && state.status === "inCall";
  $("room-cabin").textContent = room.cabin_online ? t("cabinOnline") : t("cabinOffline");
  $("room-citizen").textContent = room.admitted ? t("citizenAdmitted") : room.citizen_present ? t("citizenHere") : t("citizenAway");
  $("admit").disabled = !(room.cabin_online && room.citizen_present && !room.admitted);
  $("admit").hidden = room.admitted;
  if (!room.admitted && ["waitingCabin", "waitingCitizen", "readyToAdmit", "cabinLeft"].includes(state.status)) {
    setStatus(!room.cabin_online ? "waitingCabin" : room.citizen_present ? "readyToAdmit" : "waitingCitizen");
  }
}

function formatQuantity(q) {
  if (q.value === null || q.value === undefined) return `${t("noValue")} (${q.no_value})`;
  return `${formatNumber(q.value, state.lang, q.unit)} ${unitLabel(q.unit)}`;
}

function renderVitals() {
  const list = $("vitals-list");
  list.replaceChildren();
  for (const kind of Object.keys(KIND_LABELS)) {
    const reading = state.latest.get(kind);
    const dt = document.createElement("dt");
    dt.textContent = t(KIND_LABELS[kind]);
    const dd = document.createElement("dd");
    dd.id = `vital-${kind}`;
    if (!reading) {
      dd.textContent = t("noReading");
      dd.className = "empty";
    } else {
      const value = document.createElement("span");
      value.className = "value";
      value.dataset.value = reading.value ?? "";
      value.dataset.unit = reading.unit;
      if (kind === "blood-pressure") {
        const q = Object.fromEntries(reading.quantities.map((x) => [x.code, x]));
        const sys = q.systolic?.value, dia = q.diastolic?.value;
        value.textContent = sys != null && dia != null
          ? `${formatNumber(sys, state.lang, q.systolic.unit)}/${formatNumber(dia, state.lang, q.diastolic.unit)} ${unitLabel(q.systolic.unit)}`
          : formatQuantity(reading.quantities[0]);
        const extra = [q.mean && `moy. ${formatQuantity(q.mean)}`, q["pulse-rate"] && `pouls ${formatQuantity(q["pulse-rate"])}`]
          .filter(Boolean).join(" · ");
        if (extra) value.title = extra;
      } else if (kind === "oxygen-saturation") {
        const pr = reading.quantities.find((x) => x.code === "pulse-rate");
        value.textContent = formatQuantity(reading.quantities[0]) + (pr ? ` · ${formatQuantity(pr)}` : "");
      } else {
        value.textContent = formatQuantity(reading.quantities[0]);
      }
      const time = document.createElement("time");
      time.className = "time";
      time.dateTime = reading.measured_at;
      const when = new Date(reading.measured_at).toLocaleTimeString(state.lang);
      time.textContent = `${reading.time_source === "device" ? t("measuredAt") : t("receivedAt")} ${when}`;
      dd.append(value, time);
    }
    list.append(dt, dd);
  }
}

state.vitals.addEventListener("reading", (event) => {
  const { reading } = event.detail;
  state.latest.set(reading.kind, reading);
  renderVitals();
});

async function startLocalMedia() {
  setStatus("preparing");
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (err) {
    setStatus("mediaDenied", true);
    throw err;
  }
  $("self").srcObject = state.local;
}

function closePeer() {
  if (state.pc) {
    state.pc.close();
    state.pc = null;
  }
  $("remote").srcObject = null;
}

function newPeer(iceServers) {
  closePeer();
  const pc = new RTCPeerConnection({ iceServers });
  state.pc = pc;
  for (const track of state.local.getTracks()) pc.addTrack(track, state.local);
  pc.addEventListener("track", (event) => {
    const remote = $("remote");
    if (remote.srcObject !== event.streams[0]) {
      remote.srcObject = event.streams[0] ?? new MediaStream([event.track]);
      remote.play().catch(() => {});
    }
  });
  pc.addEventListener("datachannel", (event) => {
    if (event.channel.label === "vitals") state.vitals.attach(event.channel);
  });
  pc.addEventListener("icecandidate", (event) => {
    const c = event.candidate;
    state.signaling.send({
      type: "candidate",
      appointment_id: state.appointment.id,
      candidate: c ? c.candidate : "",
      sdp_mid: c ? c.sdpMid : null,
      sdp_mline_index: c ? c.sdpMLineIndex : null,
    });
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== state.pc) return;
    if (pc.connectionState === "connected") {
      setStatus("inCall");
      renderRoom();
    }
    if (pc.connectionState === "failed") setStatus("connectionFailed", true);
  });
  return pc;
}

async function onOffer(message) {
  setStatus("negotiating");
  const pc = newPeer(state.iceServers);
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  state.signaling.send({ type: "answer", appointment_id: state.appointment.id, sdp: pc.localDescription.sdp });
}

function onMessage(message) {
  switch (message.type) {
    case "welcome":
      state.appointment = message.appointment;
      state.iceServers = (message.ice_servers || []).map((s) => ({
        urls: s.urls, ...(s.username ? { username: s.username, credential: s.credential } : {}),
      }));
      $("vitals").hidden = message.appointment.kind !== "medical";
      renderAppointment();
      setStatus("waitingCabin");
      $("waiting").hidden = false;
      break;
    case "room":
      state.room = message;
      renderRoom();
      break;
    case "peer-joined":
      setStatus("negotiating");
      break;
    case "offer":
      onOffer(message).catch(() => setStatus("connectionFailed", true));
      break;
    case "peer-left":
      closePeer();
      setStatus("cabinLeft");
      break;
    case "bye":
      closePeer();
      setStatus("ended");
      break;
    case "error":
      console.warn("signaling:", message.code, message.message);
      break;
  }
}

function connectSignaling() {
  const signaling = new SignalingConnection("professional", token);
  state.signaling = signaling;
  signaling.addEventListener("message", (e) => onMessage(e.detail));
  signaling.addEventListener("close", (e) => {
    if (state.ended) return;
    const { code, reason } = e.detail;
    if (code >= 4400 && code < 4500 && code !== 4429) {
      // Refused for good (bad link, cancelled, taken): say why, do not retry.
      state.ended = true;
      closePeer();
      $("status").textContent = `${t("refused")} : ${reason}`;
      $("status").classList.add("error");
      document.body.dataset.state = "refused";
      $("end").hidden = true;
      return;
    }
    setStatus("serverLost", true);
    setTimeout(() => connectSignaling(), 1500);
  });
  setStatus("connecting");
  signaling.open();
}

async function join() {
  $("join").disabled = true;
  try {
    await startLocalMedia();
  } catch {
    $("join").disabled = false;
    return;
  }
  $("join").hidden = true;
  $("end").hidden = false;
  connectSignaling();
}

function end() {
  state.ended = true;
  if (state.appointment) state.signaling.send({ type: "bye", appointment_id: state.appointment.id, reason: "ended" });
  closePeer();
  state.signaling?.close();
  for (const track of state.local?.getTracks() ?? []) track.stop();
  $("end").hidden = true;
  setStatus("ended");
}

$("join").addEventListener("click", join);
$("admit").addEventListener("click", () => {
  $("admit").disabled = true;
  state.signaling.send({ type: "admit", appointment_id: state.appointment.id });
});
$("end").addEventListener("click", end);
$("lang").addEventListener("click", () => {
  state.lang = state.lang === "fr" ? "en" : "fr";
  localStorage.setItem("cabine.lang", state.lang);
  applyLanguage();
});
applyLanguage();
