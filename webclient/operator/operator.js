// The operator's page: calls for help from cabins (resolve them), incidents the cabins report (camera, microphone,
// Bluetooth, a medical device missing: acknowledge them; a cabin closes its own once fixed), and which cabins are
// online. Polls every 5 s.
// The API key is asked once and kept in this tab only (sessionStorage), never in the page or a cookie.

const POLL_MS = 5000;
const KEY = "cabine.operatorKey";

// One table per language, French first.
const STRINGS = {
  fr: {
    title: "Supervision des cabines",
    languageName: "Français",
    logout: "Se déconnecter",
    keyLabel: "Clé d'API opérateur",
    login: "Se connecter",
    keyHint: "La clé est gardée dans cet onglet seulement, jusqu'à sa fermeture.",
    alerts: "Appels à l'aide",
    noAlerts: "Aucun appel à l'aide.",
    cabins: "Cabines",
    colCabin: "Cabine",
    colName: "Nom",
    colOnline: "Connexion",
    colState: "État",
    online: "en ligne",
    offline: "hors ligne",
    disabled: "désactivée",
    enabled: "active",
    notEnrolled: "pas encore enrôlée",
    helpFrom: "Appel à l'aide : cabine {cabin}",
    since: "depuis {time}",
    presses: "{n} appuis",
    appointment: "rendez-vous {id}",
    resolve: "Résolu",
    resolveLabel: "Marquer comme résolu : cabine {cabin}",
    newAlert: "Nouvel appel à l'aide : cabine {cabin}.",
    incidents: "Incidents des cabines",
    noIncidents: "Aucun incident.",
    "camera-unavailable": "Caméra indisponible",
    "microphone-unavailable": "Micro indisponible",
    "device-missing": "Appareil médical absent",
    "bluetooth-unavailable": "Bluetooth indisponible",
    "turn-refused": "Relais TURN : identifiants refusés",
    incidentAt: "{what} : cabine {cabin}",
    repeated: "signalé {n} fois",
    acknowledge: "Vu",
    newIncident: "Nouvel incident : {what}, cabine {cabin}.",
    updated: "Mis à jour à {time}",
    badKey: "Clé refusée : vérifiez-la.",
    unreachable: "Le serveur ne répond pas ; nouvel essai dans 5 secondes.",
  },
  en: {
    title: "Cabin supervision",
    languageName: "English",
    logout: "Log out",
    keyLabel: "Operator API key",
    login: "Log in",
    keyHint: "The key is kept in this tab only, until it is closed.",
    alerts: "Calls for help",
    noAlerts: "No call for help.",
    cabins: "Cabins",
    colCabin: "Cabin",
    colName: "Name",
    colOnline: "Connection",
    colState: "State",
    online: "online",
    offline: "offline",
    disabled: "disabled",
    enabled: "active",
    notEnrolled: "not enrolled yet",
    helpFrom: "Call for help: cabin {cabin}",
    since: "since {time}",
    presses: "{n} presses",
    appointment: "appointment {id}",
    resolve: "Resolved",
    resolveLabel: "Mark as resolved: cabin {cabin}",
    newAlert: "New call for help: cabin {cabin}.",
    incidents: "Cabin incidents",
    noIncidents: "No incident.",
    "camera-unavailable": "Camera unavailable",
    "microphone-unavailable": "Microphone unavailable",
    "device-missing": "Medical device missing",
    "bluetooth-unavailable": "Bluetooth unavailable",
    "turn-refused": "TURN relay refused the credentials",
    incidentAt: "{what}: cabin {cabin}",
    repeated: "reported {n} times",
    acknowledge: "Seen",
    newIncident: "New incident: {what}, cabin {cabin}.",
    updated: "Updated at {time}",
    badKey: "Key refused: check it.",
    unreachable: "The server does not answer; trying again in 5 seconds.",
  },
};

const $ = (id) => document.getElementById(id);
const state = { lang: "fr", alerts: [], incidents: [], cabins: [], online: new Set(), seen: new Set(), timer: null };
window.cabineOperator = state;

function t(key, values = {}) {
  let text = STRINGS[state.lang][key] ?? STRINGS.fr[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

function time(iso) {
  return new Date(iso).toLocaleTimeString(state.lang === "fr" ? "fr-FR" : "en-GB");
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}` },
    cache: "no-store",
  });
  if (response.status === 401) {
    const error = new Error("unauthorized");
    error.status = 401;
    throw error;
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function renderAlerts() {
  const list = $("alerts");
  list.replaceChildren();
  $("no-alerts").hidden = state.alerts.length > 0;
  $("alerts-section").classList.toggle("active", state.alerts.length > 0);
  document.title = (state.alerts.length ? `(${state.alerts.length}) ` : "") + t("title");
  for (const alert of state.alerts) {
    const item = document.createElement("li");
    item.className = "alert";
    item.dataset.alertId = alert.id;
    const what = document.createElement("p");
    what.className = "what";
    const title = document.createElement("strong");
    title.textContent = t("helpFrom", { cabin: alert.cabin_id });
    const details = [t("since", { time: time(alert.raised_at) })];
    if (alert.presses > 1) details.push(t("presses", { n: alert.presses }));
    if (alert.appointment_id) details.push(t("appointment", { id: alert.appointment_id }));
    what.append(title, document.createElement("br"), details.join(" · "));
    const resolve = document.createElement("button");
    resolve.type = "button";
    resolve.className = "primary";
    resolve.textContent = t("resolve");
    resolve.setAttribute("aria-label", `${t("resolve")} : ${t("helpFrom", { cabin: alert.cabin_id })}`);
    resolve.addEventListener("click", () => resolveAlert(alert.id, resolve));
    item.append(what, resolve);
    list.append(item);
  }
}

// An incident's title: its kind in words (an unknown kind, from a newer server, is shown as it is).
function incidentWhat(alert) {
  return STRINGS[state.lang][alert.kind] ? t(alert.kind) : alert.kind;
}

function renderIncidents() {
  const list = $("incidents");
  list.replaceChildren();
  $("no-incidents").hidden = state.incidents.length > 0;
  for (const alert of state.incidents) {
    const item = document.createElement("li");
    item.className = "alert incident";
    item.dataset.alertId = alert.id;
    item.dataset.kind = alert.kind;
    const what = document.createElement("p");
    what.className = "what";
    const title = document.createElement("strong");
    const heading = t("incidentAt", { what: incidentWhat(alert), cabin: alert.cabin_id });
    title.textContent = heading;
    const details = [t("since", { time: time(alert.raised_at) })];
    if (alert.subject) details.unshift(alert.subject);
    if (alert.presses > 1) details.push(t("repeated", { n: alert.presses }));
    what.append(title, document.createElement("br"), details.join(" · "));
    if (alert.detail) {
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = alert.detail;
      what.append(document.createElement("br"), detail);
    }
    const seen = document.createElement("button");
    seen.type = "button";
    seen.className = "secondary";
    seen.textContent = t("acknowledge");
    seen.setAttribute("aria-label", `${t("acknowledge")} : ${heading}`);
    seen.addEventListener("click", () => resolveAlert(alert.id, seen));
    item.append(what, seen);
    list.append(item);
  }
}

function renderCabins() {
  const body = $("cabins");
  body.replaceChildren();
  for (const cabin of state.cabins) {
    const row = document.createElement("tr");
    const online = cabin.online ?? state.online.has(cabin.id);
    const cells = [
      cabin.id,
      cabin.name || "—",
      online ? t("online") : t("offline"),
      cabin.disabled ? t("disabled") : cabin.enrolled ? t("enabled") : t("notEnrolled"),
    ];
    cells.forEach((text, index) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (index === 2) cell.className = online ? "online" : "offline";
      row.append(cell);
    });
    row.dataset.cabinId = cabin.id;
    body.append(row);
  }
}

function render() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const other = state.lang === "fr" ? "en" : "fr";
  $("lang").textContent = STRINGS[other].languageName;
  $("lang").lang = other;
  renderAlerts();
  renderIncidents();
  renderCabins();
}

function showLogin(message = "") {
  clearTimeout(state.timer);
  $("login").hidden = false;
  $("alerts-section").hidden = true;
  $("incidents-section").hidden = true;
  $("cabins-section").hidden = true;
  $("logout").hidden = true;
  setStatus(message, Boolean(message));
}

async function poll() {
  clearTimeout(state.timer);
  try {
    const [alerts, cabins] = await Promise.all([api("GET", "/api/v1/alerts"), api("GET", "/api/v1/cabins")]);
    // Calls for help first and apart: they are a person waiting; incidents are the cabin's parts.
    const fresh = alerts.alerts.filter((a) => !state.seen.has(a.id));
    state.alerts = alerts.alerts.filter((a) => (a.kind ?? "help") === "help");
    state.incidents = alerts.alerts.filter((a) => (a.kind ?? "help") !== "help");
    state.online = new Set(alerts.online_cabins ?? []);
    state.cabins = cabins.cabins;
    for (const alert of fresh) state.seen.add(alert.id);
    $("login").hidden = true;
    $("alerts-section").hidden = false;
    $("incidents-section").hidden = false;
    $("cabins-section").hidden = false;
    $("logout").hidden = false;
    render();
    $("updated").textContent = t("updated", { time: new Date().toLocaleTimeString(state.lang) });
    if (fresh.length) {
      const news = fresh.map((a) =>
        (a.kind ?? "help") === "help"
          ? t("newAlert", { cabin: a.cabin_id })
          : t("newIncident", { what: incidentWhat(a), cabin: a.cabin_id }),
      );
      setStatus(news.join(" "));
    }
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin(t("badKey"));
      return;
    }
    setStatus(t("unreachable"), true);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

async function resolveAlert(id, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/v1/alerts/${encodeURIComponent(id)}/resolve`);
  } catch (error) {
    button.disabled = false;
    if (error.status === 401) return showLogin(t("badKey"));
    setStatus(t("unreachable"), true);
    return;
  }
  await poll();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  setStatus("");
  poll();
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  state.alerts = [];
  state.incidents = [];
  state.cabins = [];
  showLogin();
});
$("lang").addEventListener("click", () => {
  state.lang = state.lang === "fr" ? "en" : "fr";
  render();
});

render();
if (sessionStorage.getItem(KEY)) poll();
else showLogin();
