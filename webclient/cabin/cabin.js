// The cabin screen: follows the gateway over a local WebSocket, shows and plays the call, guides, and speaks.
// Everything the citizen reads is also spoken (speechSynthesis when the browser has it) and shown with a pictogram.
import { DEFAULT_LANGUAGE, DEVICE_PICTOGRAMS, STRINGS } from "/static/cabin/strings.js";
import { formatNumber, unitLabel } from "/static/shared/vitals.js";

const $ = (id) => document.getElementById(id);
const IMG = "/static/cabin/img/";
const ACTIVE = new Set(["waiting", "in-call", "reconnecting"]);

const state = {
  lang: DEFAULT_LANGUAGE,
  screen: null, // the last "screen" message from the gateway
  ws: null,
  pc: null, // the loopback peer connection carrying the call's media
  mids: {},
  doc: null, // the document shown: { id, page, zoomed }
  docSeen: null, // the latest document announced (spoken once)
  countdown: null, // before a photo of a document: { id, n } seconds left to hold it still
  askedClosed: null, // the request whose "sent" panel the citizen closed
  askedSpoken: null, // the request and state last spoken
  confirming: false,
  spoken: { screen: null, prompt: null, help: "none" },
  lastSpeech: [],
};
// For diagnostics and tests: the live objects (nothing here is kept after the appointment).
window.cabine = state;
// Every sentence given to speech, in order: the tests read it (headless browsers have no voice).
window.cabineSpoken = [];

function table() {
  return STRINGS[state.lang] ?? STRINGS[DEFAULT_LANGUAGE];
}

function t(key, values = {}) {
  let text = table()[key] ?? STRINGS[DEFAULT_LANGUAGE][key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

function sub(group, key) {
  return (table()[group] ?? {})[key] ?? (STRINGS[DEFAULT_LANGUAGE][group] ?? {})[key] ?? key;
}

const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function clock(iso) {
  return new Intl.DateTimeFormat(table().locale, { hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

function who(appointment) {
  if (appointment?.professional_name) return appointment.professional_name;
  return appointment?.kind === "medical" ? t("doctor") : t("adviser");
}

// --- speech -------------------------------------------------------------------------------------------------

function say(sentences) {
  const texts = sentences.filter(Boolean);
  if (!texts.length) return;
  state.lastSpeech = texts;
  window.cabineSpoken.push(...texts);
  $("announce").textContent = texts.join(" ");
  const synth = window.speechSynthesis;
  if (!synth || typeof window.SpeechSynthesisUtterance !== "function") return;
  try {
    synth.cancel();
    for (const text of texts) {
      const utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = table().locale;
      utterance.rate = 0.9;
      synth.speak(utterance);
    }
  } catch {
    // No voice on this machine: the words stay on the screen.
  }
}

// --- rendering ----------------------------------------------------------------------------------------------

function formatQuantity(q) {
  if (q?.value === null || q?.value === undefined) return "—";
  return `${formatNumber(q.value, state.lang, q.unit)} ${unitLabel(q.unit)}`;
}

function formatReading(reading) {
  const q = Object.fromEntries(reading.quantities.map((x) => [x.code, x]));
  if (reading.kind === "blood-pressure" && q.systolic && q.diastolic) {
    const main = `${formatNumber(q.systolic.value, state.lang, q.systolic.unit)}/${formatNumber(q.diastolic.value, state.lang, q.diastolic.unit)} ${unitLabel(q.systolic.unit)}`;
    return q["pulse-rate"] ? `${main} · ${t("pulse")} ${formatQuantity(q["pulse-rate"])}` : main;
  }
  if (reading.kind === "oxygen-saturation" && q["pulse-rate"]) {
    return `${formatQuantity(reading.quantities[0])} · ${t("pulse")} ${formatQuantity(q["pulse-rate"])}`;
  }
  return formatQuantity(reading.quantities[0]);
}

function heroFor(s) {
  const a = s.appointment;
  switch (s.state) {
    case "idle":
      return {
        title: t("idle.title"),
        sentence: t(`idle.${s.detail}`, { time: a ? t("at", { time: clock(a.starts_at) }) : "" }),
        picto: s.can_start ? "start" : "cabin",
      };
    case "waiting":
      return { title: t("waiting.title"), sentence: capitalise(t(`waiting.${s.detail}`, { who: who(a) })), picto: "wait" };
    case "in-call":
      return { title: t("in-call.title"), sentence: t("in-call.", { who: who(a) }), picto: "start" };
    case "reconnecting":
      return {
        title: t("reconnecting.title"),
        sentence: capitalise(t(`reconnecting.${s.detail}`, { who: who(a) })),
        picto: "reconnect",
      };
    case "ended":
      return {
        title: t("ended.title"),
        sentence: (s.detail === "cancelled" ? `${t("ended.cancelled")} ` : "") + t("ended.privacy"),
        picto: "done",
      };
    default:
      return { title: t("offline.title"), sentence: t("offline.text"), picto: "cabin" };
  }
}

function appointmentLine(a) {
  const parts = [sub("kinds", a.kind)];
  if (a.professional_name) parts.push(t("with", { name: a.professional_name }));
  parts.push(t("at", { time: clock(a.starts_at) }));
  return parts.join(" ");
}

// The documents the professional sent in this call: the latest shown, a page at a time; "Imprimer" if there is a
// printer. The page image is drawn by the gateway (in memory), fetched from this same loopback server.
function renderDocuments(s, busy) {
  const documents = s.state === "in-call" ? s.documents ?? [] : [];
  const latest = documents[documents.length - 1];
  if (latest && latest.id !== state.docSeen) {
    state.docSeen = latest.id;
    state.doc = { id: latest.id, page: 1, zoomed: false };
    // The doctor's papers for the citizen say what they are, and that they can take them away.
    const words = latest.role && s.can_print ? `docShown.${latest.role}` : "docShown";
    say([t(words, { who: capitalise(who(s.appointment)) })]);
  }
  const current = documents.find((d) => d.id === state.doc?.id);
  const shown = Boolean(current) && !busy;
  $("documents").hidden = !shown;
  $("call").classList.toggle("reading-document", shown);
  const zoomed = shown && Boolean(state.doc.zoomed);
  $("documents").classList.toggle("zoomed", zoomed);
  if (!shown) return false;
  $("doc-zoom").setAttribute("aria-pressed", String(zoomed));
  $("doc-zoom").setAttribute("aria-label", t(zoomed ? "docSmaller" : "docBigger"));
  $("doc-bigger").setAttribute("aria-pressed", String(zoomed));
  $("doc-bigger").textContent = t(zoomed ? "docSmaller" : "docBigger");
  const page = Math.min(Math.max(1, state.doc.page), current.pages);
  const name = current.name;
  $("documents-title").textContent = t("docTitle", { who: who(s.appointment), name });
  const src = `/documents/${encodeURIComponent(current.id)}/${page}.png`;
  if ($("doc-page").getAttribute("src") !== src) $("doc-page").src = src;
  $("doc-page").alt = t("docPage", { page, pages: current.pages, name });
  $("doc-where").textContent = t("docWhere", { page, pages: current.pages });
  $("doc-prev").setAttribute("aria-label", t("docPrevious"));
  $("doc-next").setAttribute("aria-label", t("docNext"));
  $("doc-prev").disabled = page <= 1;
  $("doc-next").disabled = page >= current.pages;
  $("doc-print").hidden = !s.can_print;
  $("doc-print").disabled = current.state === "printing";
  $("doc-state").textContent = printWords(current, who(s.appointment));
  $("doc-state").classList.toggle("error", current.state === "print-failed");
  const paper = s.paper ?? {};
  $("doc-note").hidden = !(s.can_print && paper.test_printer);
  $("doc-note").textContent = t("testPrinter", { tray: paper.tray ?? "" });
  return true;
}

// A document the professional asks for: the citizen chooses the scanner or the camera, sees the image, and sends
// it only when they agree. The image is the gateway's (in memory), fetched from this loopback server.
const COUNTDOWN_SECONDS = 3;

function askedSentence(asked, s) {
  const w = who(s.appointment);
  const paper = s.paper ?? {};
  if (state.countdown?.id === asked.id) return t("askedHold");
  switch (asked.state) {
    case "shown":
      return t(paper.can_scan ? "askedHowBoth" : "askedHowCamera");
    case "capturing":
      return t(asked.source === "scanner" ? "askedScanning" : "askedTaking");
    case "captured":
      return t("askedCheck", { who: w });
    case "sending":
      return t("askedSending", { who: w });
    case "sent":
      return asked.received ? capitalise(t("askedReceived", { who: w })) : t("askedSent", { who: w });
    case "failed": {
      const key = `askedFailed.${asked.reason}`;
      return capitalise(t(STRINGS[state.lang][key] ? key : "askedFailed.failed", { who: w }));
    }
    default:
      return "";
  }
}

function renderAsked(s, busy) {
  const asked = s.state === "in-call" ? s.request : null;
  const live = asked && !["cancelled", "declined"].includes(asked.state) && state.askedClosed !== asked.id;
  const shown = Boolean(live) && !busy;
  if (!live && state.countdown && state.countdown.id !== asked?.id) stopCountdown();
  $("asked").hidden = !shown;
  $("call").classList.toggle("asking", shown);
  speakAsked(asked, s);
  if (!shown) {
    $("call").classList.remove("aiming", "checking");
    return false;
  }
  const paper = s.paper ?? {};
  const st = asked.state;
  const counting = state.countdown?.id === asked.id;
  const choosing = (st === "shown" || st === "failed") && !counting;
  $("asked-title").textContent = t("askedTitle", { who: capitalise(who(s.appointment)), label: asked.label });
  // The image needs the room: the screen says it short (the voice says it all).
  $("asked-sentence").textContent =
    st === "captured" ? t("askedCheckShort", { who: who(s.appointment) }) : askedSentence(asked, s);
  $("asked-scan").hidden = !(choosing && paper.can_scan);
  $("asked-photo").hidden = !choosing;
  $("asked-decline").hidden = !choosing;
  $("asked-send").hidden = st !== "captured";
  $("asked-retake").hidden = st !== "captured";
  $("asked-close").hidden = st !== "sent";
  const withImage = st === "captured" && asked.shot !== null;
  $("asked").classList.toggle("checking", withImage);
  $("call").classList.toggle("checking", withImage);
  $("asked-image").hidden = !withImage;
  if (withImage) {
    const src = `/captures/${encodeURIComponent(asked.id)}/${asked.shot}`;
    if ($("asked-image").getAttribute("src") !== src) $("asked-image").src = src;
    $("asked-image").alt = t("askedImage", { label: asked.label });
  } else {
    $("asked-image").removeAttribute("src");
  }
  $("asked-countdown").hidden = !counting;
  $("asked-countdown").textContent = counting ? String(state.countdown.n) : "";
  // Holding a page up to the camera: the citizen's own image grows so they can aim it.
  const aiming = counting || (st === "capturing" && asked.source === "camera") || (choosing && !paper.can_scan);
  $("call").classList.toggle("aiming", aiming);
  $("asked-sentence").classList.toggle("error", st === "failed");
  const tests = [paper.test_scanner && choosing ? t("testScanner") : ""].filter(Boolean);
  $("asked-note").hidden = !tests.length;
  $("asked-note").textContent = tests.join(" ");
  return true;
}

function speakAsked(asked, s) {
  const key = asked ? `${asked.id}/${asked.state}/${asked.received}/${state.countdown?.id === asked.id}` : null;
  if (key === state.askedSpoken) return;
  const previous = state.askedSpoken;
  state.askedSpoken = key;
  if (!asked) return;
  const w = who(s.appointment);
  if (asked.state === "cancelled") {
    if (previous && previous.startsWith(`${asked.id}/`)) say([t("askedCancelled", { who: capitalise(w) })]);
    return;
  }
  if (asked.state === "declined" || state.askedClosed === asked.id) return;
  const sentences = [askedSentence(asked, s)];
  if (asked.state === "shown" && !(previous ?? "").startsWith(`${asked.id}/`)) {
    sentences.unshift(t("askedTitle", { who: capitalise(w), label: asked.label }));
  }
  say(sentences);
}

function startCountdown() {
  const asked = state.screen?.request;
  if (!asked || state.countdown) return;
  state.countdown = { id: asked.id, n: COUNTDOWN_SECONDS, timer: setInterval(tick, 1000) };
  render();
}

function tick() {
  const countdown = state.countdown;
  if (!countdown) return;
  countdown.n -= 1;
  if (countdown.n > 0) return render();
  stopCountdown();
  send({ type: "capture", source: "camera" });
  render();
}

function stopCountdown() {
  if (state.countdown) clearInterval(state.countdown.timer);
  state.countdown = null;
}

// What became of the print, in plain words: a failure says why when the printer said (stopped, no printer).
function printWords(doc, who) {
  if (!doc.state || doc.state === "received") return "";
  const specific = doc.state === "print-failed" ? `docState.${doc.reason}` : `docState.${doc.state}`;
  const key = STRINGS[state.lang][specific] ? specific : "docState.print-failed";
  return t(key, { who });
}

function turnPage(step) {
  if (!state.doc) return;
  state.doc.page += step;
  $("doc-zoom").scrollTop = 0;
  render();
}

// A measurement asked comes first; the latest reading stays shown unless a document is.
function renderMeasure(s, busy) {
  const prompt = s.state === "in-call" ? s.prompt : null;
  const reading = s.state === "in-call" && !busy ? s.reading : null;
  const shown = prompt || reading;
  $("measure").hidden = !shown;
  $("call").classList.toggle("measuring", Boolean(shown));
  if (!shown) return;
  const kind = prompt ? prompt.kind : reading.kind;
  const picto = $("measure-picto");
  picto.src = `${IMG}${DEVICE_PICTOGRAMS[kind] ?? "cabin"}.svg`;
  picto.alt = sub("devices", kind);
  $("measure-title").textContent = prompt ? t("measureTitle") : sub("measures", kind);
  $("measure-sentence").hidden = !prompt;
  $("measure-sentence").textContent = prompt ? sub("prompts", kind) : "";
  // While a measurement is asked, an earlier reading would only confuse: the new one replaces the request.
  $("reading").hidden = Boolean(prompt);
  $("measure").dataset.kind = kind;
  $("measure").dataset.mode = prompt ? "prompt" : "reading";
  if (!prompt) {
    $("reading").textContent = formatReading(reading);
    $("reading").dataset.value = reading.quantities[0]?.value ?? "";
  }
}

// The languages this cabin offers (its configuration), among those the page has words for.
function languages() {
  const offered = (state.screen && state.screen.languages) || Object.keys(STRINGS);
  const known = offered.filter((code) => STRINGS[code]);
  return known.length ? known : [DEFAULT_LANGUAGE];
}

function render() {
  const s = state.screen;
  document.documentElement.lang = state.lang;
  document.title = t("pageTitle");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const codes = languages();
  const next = codes[(codes.indexOf(state.lang) + 1) % codes.length];
  // A cabin configured for one language shows no switch.
  $("lang").hidden = codes.length < 2;
  $("lang-name").textContent = STRINGS[next].languageName;
  $("lang").lang = next;
  $("repeat").setAttribute("aria-label", t("repeatLabel"));

  const view = s ?? { state: "offline", detail: "", appointment: null, help: "none" };
  document.body.dataset.state = view.state;
  document.body.dataset.detail = view.detail ?? "";
  const hero = heroFor(view);
  const inCall = view.state === "in-call";
  $("hero").hidden = inCall;
  $("call").hidden = !inCall;
  $("title").textContent = hero.title;
  $("call-title").textContent = hero.sentence;
  $("sentence").textContent = hero.sentence;
  $("hero-picto").src = `${IMG}${hero.picto}.svg`;
  $("about").hidden = view.state !== "idle";
  $("about").textContent = t("idle.about");
  const a = view.appointment;
  $("appointment").hidden = !a || view.state === "ended";
  if (a) $("appointment").textContent = appointmentLine(a);
  $("professional-label").textContent = t("professionalVideo", { who: who(a) });
  // The professional's screen, large, while they share it (their face then in a corner).
  const sharing = inCall && Boolean(view.sharing);
  $("stage").classList.toggle("sharing", sharing);
  $("shared").hidden = !sharing;
  $("shared-label").textContent = t("sharedScreen", { who: who(a) });
  $("self-label").textContent = t("selfView");
  $("self").setAttribute("aria-label", t("selfViewLabel", { who: who(a) }));

  const active = ACTIVE.has(view.state);
  if (!active) state.confirming = false;
  $("start").hidden = !(view.state === "idle" && s?.can_start);
  $("end").hidden = !active;
  $("dismiss").hidden = view.state !== "ended";
  $("help").hidden = !s;
  $("confirm").hidden = !state.confirming;
  $("buttons").hidden = state.confirming;

  const help = view.help ?? "none";
  $("help-banner").hidden = help === "none";
  $("help-text").textContent = help === "none" ? "" : t(`help.${help}`);
  const prompting = view.state === "in-call" && Boolean(view.prompt);
  const asking = renderAsked(view, prompting);
  const reading = renderDocuments(view, prompting || asking);
  renderMeasure(view, asking || reading);
  speakChanges(view, hero);
}

function speakChanges(view, hero) {
  const spoken = state.spoken;
  const sentences = [];
  const screenKey = `${view.state}/${view.detail}/${state.lang}`;
  if (screenKey !== spoken.screen && view.state !== "offline") {
    spoken.screen = screenKey;
    sentences.push(hero.sentence);
  }
  const prompt = view.state === "in-call" ? view.prompt : null;
  const promptKey = prompt ? `${prompt.kind}/${state.lang}` : null;
  if (promptKey && promptKey !== spoken.prompt) sentences.push(sub("prompts", prompt.kind));
  if (!prompt && spoken.prompt && view.reading && spoken.prompt.startsWith(`${view.reading.kind}/`)) {
    sentences.push(t("received"));
  }
  spoken.prompt = promptKey;
  const help = view.help ?? "none";
  if (help !== spoken.help && help === "coming") sentences.push(t("help.coming"));
  spoken.help = help;
  say(sentences);
}

// --- the loopback media from the gateway ---------------------------------------------------------------------

function closeMedia() {
  if (state.pc) {
    state.pc.close();
    state.pc = null;
  }
  state.mids = {};
  $("professional").srcObject = null;
  $("self").srcObject = null;
  $("shared").srcObject = null;
}

function gathered(pc, ms = 3000) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function play(video, stream) {
  video.srcObject = stream;
  video.play().catch(() => {});
}

async function onOffer(message) {
  closeMedia();
  // Loopback only: no ICE server at all; the gateway keeps only loopback candidates.
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  state.mids = message.mids;
  const names = Object.fromEntries(Object.entries(message.mids).map(([name, mid]) => [mid, name]));
  const professional = new MediaStream();
  let self = null;
  let shared = null;
  pc.addEventListener("track", (event) => {
    const name = names[event.transceiver.mid];
    if (name === "self_video") self = new MediaStream([event.track]);
    else if (name === "professional_screen") shared = new MediaStream([event.track]);
    else professional.addTrack(event.track);
  });
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  if (state.pc !== pc) return;
  play($("professional"), professional);
  if (self) play($("self"), self);
  if (shared) play($("shared"), shared);
  send({ type: "answer", offer: message.offer, sdp: pc.localDescription.sdp });
}

// --- the gateway's WebSocket ---------------------------------------------------------------------------------

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function onMessage(message) {
  switch (message.type) {
    case "screen":
      state.screen = message;
      state.lang = STRINGS[message.lang] ? message.lang : DEFAULT_LANGUAGE;
      render();
      break;
    case "offer":
      onOffer(message).catch((err) => console.warn("cabin media:", err));
      break;
    case "media-end":
      closeMedia();
      break;
    case "error":
      console.warn("cabin:", message.message);
      break;
  }
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/kiosk/ws`);
  state.ws = ws;
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    onMessage(message);
  });
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    closeMedia();
    state.screen = null;
    render();
    // Replaced by a newer page of this screen: that one is in charge now.
    if (event.code !== 4409) setTimeout(connect, 1000);
  });
}

// --- the citizen's buttons -----------------------------------------------------------------------------------

$("start").addEventListener("click", () => send({ type: "start", appointment_id: state.screen?.appointment?.id }));
$("help").addEventListener("click", () => send({ type: "help" }));
$("doc-prev").addEventListener("click", () => turnPage(-1));
$("doc-next").addEventListener("click", () => turnPage(1));
for (const id of ["doc-zoom", "doc-bigger"]) {
  $(id).addEventListener("click", () => {
    if (!state.doc) return;
    state.doc.zoomed = !state.doc.zoomed;
    render();
  });
}
$("doc-print").addEventListener("click", () => {
  if (state.doc) send({ type: "print", id: state.doc.id });
});
$("asked-scan").addEventListener("click", () => send({ type: "capture", source: "scanner" }));
$("asked-photo").addEventListener("click", startCountdown);
$("asked-send").addEventListener("click", () => send({ type: "send-capture" }));
$("asked-retake").addEventListener("click", () => send({ type: "retake" }));
$("asked-decline").addEventListener("click", () => send({ type: "decline" }));
$("asked-close").addEventListener("click", () => {
  state.askedClosed = state.screen?.request?.id ?? null;
  render();
});
$("dismiss").addEventListener("click", () => send({ type: "dismiss" }));
$("end").addEventListener("click", () => {
  state.confirming = true;
  render();
  say([t("confirmEnd")]);
  $("confirm-no").focus();
});
$("confirm-no").addEventListener("click", () => {
  state.confirming = false;
  render();
  $("end").focus();
});
$("confirm-yes").addEventListener("click", () => {
  state.confirming = false;
  send({ type: "end" });
  render();
});
$("repeat").addEventListener("click", () => say(state.lastSpeech.length ? state.lastSpeech : [$("sentence").textContent]));
$("lang").addEventListener("click", () => {
  const codes = languages();
  state.lang = codes[(codes.indexOf(state.lang) + 1) % codes.length];
  send({ type: "language", lang: state.lang });
  render();
});

render();
connect();
