// The professional's console: preflight, waiting room, call, live readings, end with summary and FHIR export.
import { STRINGS, pickLanguage } from "/static/shared/i18n.js";
import { SignalingConnection } from "/static/shared/signaling.js";
import { showRemoteTrack } from "/static/shared/tuning.js";
import { VitalsReceiver } from "/static/shared/vitals.js";
import { Preflight } from "/static/pro/preflight.js";
import { QualityMonitor } from "/static/pro/quality.js";
import { MediaWatch, checkTurn } from "/static/pro/liveness.js";
import { VitalsPanel } from "/static/pro/vitals-panel.js";
import { downloadJson, renderSummary, summaryBlocks } from "/static/pro/summary.js";
import { textPdf } from "/static/pro/pdf.js";
import { DocumentRequests } from "/static/pro/requests.js";
import { cabinCheckSentence } from "/static/pro/cabin-check.js";
import { DocumentSender } from "/static/pro/documents.js";

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.replace(/^\/join\//, ""));

const state = {
  lang: pickLanguage(),
  status: "preflight",
  statusError: false,
  appointment: null,
  iceServers: [],
  icePolicy: "all",
  // "turnRefused" / "turnUnreachable" when the relay cannot be used (from our own check or the cabin's report).
  turnProblem: null,
  // The cabin's parts its latest self-test found failing (check names), told by signaling.
  cabinCheck: [],
  // Screen sharing: the sender of the cabin's second video transceiver (offered when the cabin has a screen), and
  // the shared screen's track while sharing. Sharing starts and stops with replaceTrack: no renegotiation.
  screenSender: null,
  screenTrack: null,
  documents: new DocumentSender(),
  requests: new DocumentRequests(),
  pc: null,
  local: null,
  signaling: null,
  vitals: new VitalsReceiver(),
  room: null,
  ended: false,
  bundle: null,
  refreshBundle: 0,
};
// For diagnostics from the browser console (and the tests): the live objects, never a credential.
window.cabine = state;

function t(key) {
  return STRINGS[state.lang][key] ?? key;
}

const preflight = new Preflight({
  preview: $("preview"), cameraSelect: $("camera-select"), micSelect: $("mic-select"), meter: $("mic-level"),
});
const panel = new VitalsPanel({
  list: $("vitals-list"), trend: $("trend"), trendKind: $("trend-kind"), caption: $("trend-caption"),
  devices: $("devices"), t, lang: state.lang,
  onRequest: (kind) => {
    state.vitals.request(kind);
    panel.requested(kind);
  },
});
state.panel = panel;
const quality = new QualityMonitor((level, figures) => renderQuality(level, figures));
const watch = new MediaWatch({
  // Nothing arrives from the cabin any more: the cabin offers a new connection as soon as the path is back.
  onDead: () => {
    if (state.ended) return;
    setStatus("reconnecting", true);
  },
  onAlive: () => {
    if (state.ended) return;
    setStatus(state.noVideo ? "noCabinVideo" : "inCall", state.noVideo);
  },
});
state.watch = watch;

// A call that is connected and whose media still arrive: a blip of signaling must leave it alone.
function callAlive() {
  return state.pc !== null && state.pc.connectionState === "connected" && watch.alive;
}

// --- rendering ---------------------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("preview").setAttribute("aria-label", t("selfView"));
  setStatus(state.status, state.statusError);
  renderAppointment();
  renderRoom();
  panel.setLanguage(t, state.lang);
  renderCabinCheck();
  renderShare();
  renderDocuments();
  if (state.ended) renderSummary({ table: $("summary-table"), meta: $("summary-meta"), panel,
                                   appointment: state.appointment, t, lang: state.lang });
}

function setStatus(key, isError = false) {
  state.status = key;
  state.statusError = isError;
  const el = $("status");
  el.textContent = t(key);
  el.classList.toggle("error", isError);
  document.body.dataset.state = key;
}

function renderCabinCheck() {
  const sentence = cabinCheckSentence(state.cabinCheck, state.lang);
  $("cabin-check").textContent = sentence;
  $("cabin-check").hidden = !sentence;
}

function show(...ids) {
  for (const id of ["preflight", "waiting", "call", "controls", "ended"]) $(id).hidden = !ids.includes(id);
  $("vitals").hidden = !(state.appointment?.kind === "medical" && (ids.includes("call") || ids.includes("waiting")));
}

function renderAppointment() {
  const a = state.appointment;
  if (!a) return;
  const start = new Date(a.starts_at).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  const end = new Date(a.ends_at).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  $("appointment").textContent =
    `${t("kinds")[a.kind] ?? a.kind} · ${t("appointmentWith")} ${a.cabin_id} · ${start}–${end}`;
}

function renderRoom() {
  const room = state.room;
  if (!room || state.ended) return;
  $("room-cabin").textContent = room.cabin_online ? t("cabinOnline") : t("cabinOffline");
  $("room-citizen").textContent = room.admitted ? t("citizenAdmitted")
    : room.citizen_present ? t("citizenHere") : t("citizenAway");
  $("admit").disabled = !(room.cabin_online && room.citizen_present && !room.admitted);
  $("admit").hidden = room.admitted;
  if (!room.admitted && ["waitingCabin", "waitingCitizen", "readyToAdmit", "cabinLeft"].includes(state.status)) {
    setStatus(!room.cabin_online ? "waitingCabin" : room.citizen_present ? "readyToAdmit" : "waitingCitizen");
  }
}

function renderQuality(level, f) {
  const el = $("quality");
  el.hidden = false;
  el.dataset.level = level;
  $("quality-label").textContent = t(`quality${level[0].toUpperCase()}${level.slice(1)}`);
  const parts = [
    f.rttMs === null ? null : `${t("rtt")} ${Math.round(f.rttMs)} ms`,
    `${t("loss")} ${f.lossPct.toFixed(1)} %`,
    `${t("bitrate")} ${Math.round(f.kbps)} kbit/s`,
    f.fps === null ? null : `${t("fps")} ${Math.round(f.fps)}`,
  ].filter(Boolean).join(" · ");
  $("quality-figures").textContent = "";
  $("quality-figures").title = parts;
  el.title = parts;
  $("quality-label").dataset.figures = parts;
}

// --- media and peer connection ------------------------------------------------------------------------------

async function startPreflight() {
  setStatus("preparing");
  $("retry-media").hidden = true;
  try {
    await preflight.start();
    setStatus("preflight");
    $("join").disabled = false;
  } catch {
    setStatus("mediaDenied", true);
    $("retry-media").hidden = false;
  }
}

function closePeer() {
  quality.stop();
  watch.stop();
  if (state.pc) {
    state.pc.close();
    state.pc = null;
  }
  $("remote").srcObject = null;
}

function newPeer() {
  closePeer();
  const pc = new RTCPeerConnection({ iceServers: state.iceServers, iceTransportPolicy: state.icePolicy });
  state.pc = pc;
  for (const track of state.local.getTracks()) pc.addTrack(track, state.local);
  pc.addEventListener("track", (event) => showRemoteTrack($("remote"), event));
  pc.addEventListener("datachannel", (event) => {
    if (event.channel.label === "vitals") state.vitals.attach(event.channel);
    if (event.channel.label === "documents") {
      state.documents.attach(event.channel);
      state.requests.attach(event.channel);
    }
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
  pc.addEventListener("icecandidateerror", (event) => {
    // 401: the TURN server refuses our credentials (wrong secret, or expired); the call cannot be relayed.
    if (pc === state.pc && [401, 403, 438].includes(event.errorCode)) {
      state.turnProblem = "turnRefused";
      if (state.icePolicy === "relay") setStatus("turnRefused", true);
    }
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== state.pc) return;
    if (pc.connectionState === "connected") {
      state.turnProblem = null;
      setStatus(state.noVideo ? "noCabinVideo" : "inCall", state.noVideo);
      show("call", "controls");
      quality.watch(pc);
      watch.watch(pc);
    }
    if (pc.connectionState === "failed") setStatus(state.turnProblem ?? "connectionFailed", true);
  });
  return pc;
}

async function onOffer(message) {
  setStatus("negotiating");
  const pc = newPeer();
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  prepareScreenShare(pc);
  await pc.setLocalDescription(await pc.createAnswer());
  // The cabin offers its preferred codec first and the others after; a browser that can decode none of them
  // rejects the video (port 0). The call goes on with sound, and the professional is told what to do.
  state.noVideo = videoRejected(pc.localDescription.sdp);
  state.signaling.send({ type: "answer", appointment_id: state.appointment.id, sdp: pc.localDescription.sdp });
}

// The cabin offers a second video it only receives, when it has a screen: the professional's shared screen. Answered
// "sendonly" with no track, it carries nothing until the professional shares; a renewed call keeps the share on.
function prepareScreenShare(pc) {
  const videos = pc.getTransceivers().filter((t) => t.receiver.track.kind === "video");
  const screen = videos.length > 1 ? videos[videos.length - 1] : null;
  state.screenSender = null;
  if (screen) {
    screen.direction = "sendonly";
    state.screenSender = screen.sender;
    if (state.screenTrack?.readyState === "live") screen.sender.replaceTrack(state.screenTrack).catch(() => {});
  }
  renderShare();
}

function renderShare() {
  const button = $("share");
  const sharing = Boolean(state.screenTrack);
  button.hidden = !state.screenSender && !sharing;
  button.textContent = t(sharing ? "stopShare" : "share");
  button.setAttribute("aria-pressed", String(sharing));
}

async function toggleShare() {
  if (state.screenTrack) return stopShare();
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  } catch {
    $("share-status").textContent = t("shareDenied");
    return;
  }
  const track = stream.getVideoTracks()[0];
  // Text and figures, read from the cabin's chair: sharpness before motion.
  track.contentHint = "detail";
  track.addEventListener("ended", stopShare);
  state.screenTrack = track;
  await state.screenSender?.replaceTrack(track);
  $("share-status").textContent = t("sharing");
  renderShare();
}

function stopShare() {
  const track = state.screenTrack;
  state.screenTrack = null;
  state.screenSender?.replaceTrack(null).catch(() => {});
  if (track) track.stop();
  $("share-status").textContent = "";
  renderShare();
}

// Documents, both ways, over the call's documents channel: what the professional sends (and the doctor's papers
// for the patient), and what they ask the citizen for.
function renderDocuments() {
  const docs = state.documents;
  const asked = state.requests;
  const medical = state.appointment?.kind === "medical";
  const live = docs.ready && !state.ended;
  $("paper").hidden = !(live || (state.ended && asked.requests.some((r) => r.file)));
  $("send-doc-button").hidden = !live;
  $("send-doc-hint").hidden = !live;
  $("medical-paper").hidden = !(live && medical);
  $("ask-doc").hidden = !live;
  const list = $("docs-sent");
  list.replaceChildren(
    ...docs.sent.map((d) => {
      const item = document.createElement("li");
      item.dataset.state = d.state;
      item.textContent = t(`doc.${d.state}`).replace("{name}", d.name).replace("{reason}", d.reason);
      return item;
    }),
  );
  $("docs-asked").replaceChildren(...asked.requests.map(askedItem));
  const suggestions = t(medical ? "askSuggestionsMedical" : "askSuggestions");
  const datalist = $("ask-suggestions");
  if (datalist.dataset.lang !== `${state.lang}/${medical}`) {
    datalist.dataset.lang = `${state.lang}/${medical}`;
    datalist.replaceChildren(...suggestions.map((text) => Object.assign(document.createElement("option"), { value: text })));
  }
}

function askedItem(request) {
  const item = document.createElement("li");
  item.dataset.state = request.state;
  item.dataset.id = request.id;
  const words = t(`asked.${request.state}`) === `asked.${request.state}` ? t("asked.failed") : t(`asked.${request.state}`);
  const reason = request.reason ? t(`askedReason.${request.reason}`) : "";
  const line = document.createElement("span");
  line.textContent = `${request.label} : ${words}${reason && reason !== `askedReason.${request.reason}` ? ` (${reason})` : ""}`;
  item.append(line);
  const actions = document.createElement("div");
  actions.className = "actions";
  if (request.file) {
    if (request.file.mime.startsWith("image/")) {
      const image = document.createElement("img");
      image.src = request.file.url;
      image.alt = request.label;
      item.append(image);
    }
    const link = document.createElement("a");
    link.href = request.file.url;
    link.download = request.file.name;
    link.className = "download";
    link.textContent = `${t("askedDownload")} (${Math.max(1, Math.round(request.file.size / 1024))} ko)`;
    actions.append(link);
  }
  if (state.requests.open(request) && !state.ended) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = t("askedCancel");
    cancel.addEventListener("click", () => state.requests.cancel(request.id));
    actions.append(cancel);
  }
  if (actions.childElementCount) item.append(actions);
  return item;
}

async function sendDocument(file, options = {}) {
  try {
    await state.documents.send(file, options);
  } catch (error) {
    const item = document.createElement("li");
    item.dataset.state = "not-sent";
    item.textContent = t(`doc.${error.message}`);
    $("docs-sent").append(item);
  }
}

// The doctor's summary for the patient: this consultation's readings and the doctor's words, as a PDF made here,
// shown on the cabin screen where the patient presses "Imprimer".
function sendSummary() {
  const blocks = summaryBlocks({
    panel, appointment: state.appointment, t, lang: state.lang, note: $("summary-note").value,
    doctor: state.appointment?.professional_name,
  });
  const file = new File([textPdf(blocks)], `${t("summaryFile")}.pdf`, { type: "application/pdf" });
  return sendDocument(file, { role: "summary" });
}

function videoRejected(sdp) {
  const video = sdp.split(/\r?\n/).find((line) => line.startsWith("m=video "));
  return !video || video.split(" ")[1] === "0";
}

// Keep a recent FHIR bundle from the cabin, so the export works even if the cabin leaves first; at most every
// 30 s (the bundle grows with the consultation), and always fresh at the end.
const BUNDLE_REFRESH_MS = 30_000;
function scheduleBundleRefresh() {
  if (state.refreshBundle) return;
  const wait = Math.max(500, (state.bundleAt ?? 0) + BUNDLE_REFRESH_MS - Date.now());
  state.refreshBundle = setTimeout(async () => {
    state.refreshBundle = 0;
    state.bundleAt = Date.now();
    state.bundle = (await state.vitals.exportBundle()) ?? state.bundle;
  }, wait);
}

state.vitals.addEventListener("reading", (event) => {
  panel.add(event.detail.reading);
  scheduleBundleRefresh();
});
state.vitals.addEventListener("device", (event) => panel.device(event.detail));

// --- signaling ----------------------------------------------------------------------------------------------

function onMessage(message) {
  switch (message.type) {
    case "welcome":
      state.appointment = message.appointment;
      state.iceServers = (message.ice_servers || []).map((s) => ({
        urls: s.urls, ...(s.username ? { username: s.username, credential: s.credential } : {}),
      }));
      state.icePolicy = message.ice_policy === "relay" ? "relay" : "all";
      renderAppointment();
      checkRelay();
      if (callAlive()) {
        // Back on signaling after a blip (or a restart of the server): the call never stopped.
        setStatus(state.noVideo ? "noCabinVideo" : "inCall", state.noVideo);
        break;
      }
      setStatus(state.pc ? "reconnecting" : "waitingCabin", Boolean(state.pc));
      if (!state.pc) show("waiting");
      break;
    case "room":
      state.room = message;
      renderRoom();
      break;
    case "peer-joined":
      if (callAlive()) break;
      // We have no working connection (a reload, or a path that died): ask the cabin for a new one now.
      if (!state.turnProblem) setStatus(state.pc ? "reconnecting" : "negotiating", Boolean(state.pc));
      state.signaling.send({ type: "restart", appointment_id: state.appointment.id });
      break;
    case "cabin-check":
      state.cabinCheck = Array.isArray(message.failed) ? message.failed : [];
      renderCabinCheck();
      break;
    case "call-problem":
      state.turnProblem = message.problem === "turn-refused" ? "turnRefused" : "turnUnreachable";
      if (!callAlive()) setStatus(state.turnProblem, true);
      break;
    case "offer":
      onOffer(message).catch(() => setStatus("connectionFailed", true));
      break;
    case "peer-left":
      // The cabin's signaling connection went; if the call's media still flow, it was only a blip.
      if (callAlive()) break;
      closePeer();
      show("waiting");
      setStatus("cabinLeft");
      break;
    case "bye":
      finish();
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
      show();
      $("status").textContent = `${t("refused")} : ${reason}`;
      $("status").classList.add("error");
      document.body.dataset.state = "refused";
      return;
    }
    setStatus("serverLost", true);
    // 1012: the signaling node changed (a cluster): come back at once, spread over half a second so that thousands
    // of pages do not knock on the same door together.
    setTimeout(() => connectSignaling(), code === 1012 ? 200 + Math.random() * 500 : 1500);
  });
  setStatus("connecting");
  signaling.open();
}

// Our own relay check, at each welcome: a TURN server refusing our credentials is said at once, in plain words.
async function checkRelay() {
  const result = await checkTurn(state.iceServers);
  if (result === null || result === "ok" || state.ended) return;
  state.turnProblem = result === "refused" ? "turnRefused" : "turnUnreachable";
  if (state.icePolicy === "relay" && !callAlive()) setStatus(state.turnProblem, true);
}

function join() {
  $("join").disabled = true;
  state.local = preflight.take();
  $("self").srcObject = state.local;
  connectSignaling();
}

async function finish() {
  if (state.ended) return;
  state.ended = true;
  clearTimeout(state.refreshBundle);
  if (state.appointment?.kind === "medical") {
    state.bundle = (await state.vitals.exportBundle()) ?? state.bundle;
  }
  if (state.appointment) {
    state.signaling?.send({ type: "bye", appointment_id: state.appointment.id, reason: "ended" });
  }
  if (state.screenTrack) stopShare();
  closePeer();
  renderDocuments();
  state.signaling?.close();
  for (const track of state.local?.getTracks() ?? []) track.stop();
  show("ended");
  $("quality").hidden = true;
  const medical = state.appointment?.kind === "medical";
  $("export").hidden = !medical;
  $("summary").hidden = !medical;
  $("download-fhir").disabled = !state.bundle;
  if (medical) {
    renderSummary({ table: $("summary-table"), meta: $("summary-meta"), panel, appointment: state.appointment,
                    t, lang: state.lang });
  }
  setStatus("ended");
}

function toggleTrack(button, kind) {
  const tracks = kind === "audio" ? state.local?.getAudioTracks() : state.local?.getVideoTracks();
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of tracks ?? []) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
}

$("join").addEventListener("click", join);
$("retry-media").addEventListener("click", startPreflight);
$("admit").addEventListener("click", () => {
  $("admit").disabled = true;
  state.signaling.send({ type: "admit", appointment_id: state.appointment.id });
});
$("mute").addEventListener("click", () => toggleTrack($("mute"), "audio"));
$("camera-off").addEventListener("click", () => toggleTrack($("camera-off"), "video"));
$("share").addEventListener("click", () => toggleShare().catch(() => stopShare()));
state.documents.addEventListener("change", renderDocuments);
state.requests.addEventListener("change", renderDocuments);
$("ask-doc").addEventListener("submit", (event) => {
  event.preventDefault();
  try {
    state.requests.ask($("ask-label").value);
    $("ask-label").value = "";
  } catch (error) {
    const item = document.createElement("li");
    item.dataset.state = "failed";
    item.textContent = t(`doc.${error.message}`);
    $("docs-asked").append(item);
  }
});
$("send-summary").addEventListener("click", sendSummary);
$("send-prescription-button").addEventListener("click", () => $("send-prescription").click());
$("send-prescription").addEventListener("change", (event) => {
  for (const file of event.target.files) sendDocument(file, { role: "prescription", name: `${t("prescriptionFile")} - ${file.name}` });
  event.target.value = "";
});
$("send-doc-button").addEventListener("click", () => $("send-doc").click());
$("send-doc").addEventListener("change", (event) => {
  for (const file of event.target.files) sendDocument(file);
  event.target.value = "";
});
// A document dropped on the cabin's picture goes to the cabin too.
$("call").addEventListener("dragover", (event) => {
  if (state.documents.ready) event.preventDefault();
});
$("call").addEventListener("drop", (event) => {
  event.preventDefault();
  for (const file of event.dataTransfer.files) sendDocument(file);
});
$("end").addEventListener("click", finish);
$("download-fhir").addEventListener("click", () => {
  if (state.bundle) downloadJson(state.bundle, `consultation-${state.appointment.id}.fhir.json`);
});
$("print-summary").addEventListener("click", () => window.print());
$("lang").addEventListener("click", () => {
  state.lang = state.lang === "fr" ? "en" : "fr";
  localStorage.setItem("cabine.lang", state.lang);
  applyLanguage();
});

$("join").disabled = true;
applyLanguage();
show("preflight");
panel.loadThresholds("/static/pro/thresholds.json").then(() => panel.render());
startPreflight();
