// The operator's dashboard: every cabin live (online, camera, microphone, medical devices and their batteries, the
// network, today's appointments, the self-test), calls for help first (resolve them), then the cabins' other alerts
// (acknowledge them; a cabin or the server closes its own once fixed), and one cabin's detail: its recent states,
// devices, latest self-test (run one now), remote settings and recent events.
//
// Live over one WebSocket (GET /api/v1/fleet/live): the server sends the whole fleet at every change and at least
// every 15 s; if the socket drops, the page says so and reconnects with backoff. Nothing is polled.
// The API key is asked once and kept in this tab only (sessionStorage), never in the page or a cookie.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";

const KEY = "cabine.operatorKey";
const LIVE_PATH = "/api/v1/fleet/live";
// Reconnection: 1 s, 2 s, 4 s... up to 30 s, each drawn between half and all of it so that dashboards spread out.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
// The server sends at least every 15 s: a socket silent for longer than this is dead even if the browser thinks not.
const SILENT_MS = 40_000;
// "il y a 12 s" moves on between snapshots (no network: only the texts are redrawn).
const TICK_MS = 5000;
const HISTORY_ROWS = 12;
// Same thresholds as the server (signaling/fleet.py) and the self-test (gateway/selftest/devices.py).
const BATTERY_LOW_PERCENT = 20;
const CLOCK_SKEW_SECONDS = 5;
// What the remote settings offer (gateway/config.py: camera sizes the codecs take, fps, KNOWN_LANGUAGES, SERVICES).
const VIDEO_SIZES = [[640, 480], [1280, 720], [320, 240]];
const FPS_MIN = 5;
const FPS_MAX = 30;
const SCREEN_LANGUAGES = ["fr", "en"];
const DEVICE_SERVICES = ["thermometer", "blood-pressure", "pulse-oximeter", "heart-rate", "weight-scale"];
const BLUETOOTH_ADDRESS = /^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/i;

// One table per language, French first.
const STRINGS = {
  fr: {
    title: "Supervision des cabines",
    languageName: "Français",
    logout: "Se déconnecter",
    keyLabel: "Clé d'API opérateur",
    login: "Se connecter",
    keyHint: "La clé est gardée dans cet onglet seulement, jusqu'à sa fermeture.",
    badKey: "Clé refusée : vérifiez-la.",
    unreachable: "Le serveur ne répond pas. Réessayez dans un instant.",
    connecting: "Connexion au serveur…",
    live: "En direct",
    reconnecting: "Connexion perdue : nouvel essai dans {s} s (essai n° {n})",
    reconnected: "Connexion rétablie.",
    stale: "Ces informations datent de {time} : elles ne sont plus à jour tant que la connexion n'est pas rétablie.",
    updated: "Mis à jour à {time}",
    justNow: "à l'instant",
    never: "jamais",
    alerts: "Appels à l'aide",
    noAlerts: "Aucun appel à l'aide.",
    helpFrom: "Appel à l'aide : cabine {cabin}",
    since: "depuis {time}",
    presses: "{n} appuis",
    appointment: "rendez-vous {id}",
    resolve: "Résolu",
    actionOn: "{action} : {what}",
    newAlert: "Nouvel appel à l'aide : cabine {cabin}.",
    incidents: "Incidents des cabines",
    noIncidents: "Aucun incident.",
    incidentAt: "{what} : cabine {cabin}",
    repeated: "signalé {n} fois",
    acknowledge: "Vu",
    newIncident: "Nouvel incident : {what}, cabine {cabin}.",
    help: "Appel à l'aide",
    "camera-unavailable": "Caméra indisponible",
    "microphone-unavailable": "Micro indisponible",
    "device-missing": "Appareil médical absent",
    "bluetooth-unavailable": "Bluetooth indisponible",
    "turn-refused": "Relais vidéo (TURN) : accès refusé",
    offline: "Cabine hors ligne",
    "battery-low": "Pile faible",
    "clock-skew": "Horloge de la cabine décalée",
    "selftest-failed": "Autotest échoué",
    batteryDetail: "{device} : pile à {n} %",
    offlineDetail: "hors ligne depuis {time}",
    aheadBy: "en avance de {s} s",
    behindBy: "en retard de {s} s",
    failedChecks: "en échec : {names}",
    cabins: "Cabines",
    noCabins: "Aucune cabine enregistrée.",
    summary: "{total} au total · en ligne : {online} · prêtes : {ready} · à vérifier : {check} · hors ligne : {offline}",
    colCabin: "Cabine",
    colState: "État",
    colAppointments: "Rendez-vous aujourd'hui",
    colAlerts: "Alertes",
    colHealth: "Matériel et réseau",
    colSelftest: "Autotest",
    colDetail: "Détail",
    ready: "Prête",
    check: "À vérifier",
    offlineState: "Hors ligne",
    disabled: "Désactivée",
    notEnrolled: "Pas encore installée",
    onlineUnknown: "En ligne, état inconnu",
    lastSeen: "dernier signe",
    neverSeen: "aucun signe de vie",
    batteryLowShort: "faible : {n} %",
    noNews: "Pas encore de nouvelles de la cabine.",
    lastKnown: "Dernier état connu, à {time} :",
    noAppointment: "aucun",
    appointmentCount: "{n} en tout",
    inProgress: "en cours : {kind}, jusqu'à {time}",
    nextAt: "prochain à {time} : {kind}",
    allDone: "tous passés",
    "kind:medical": "médical",
    "kind:bank": "banque",
    "kind:energy": "énergie",
    "kind:public-service": "service public",
    noAlert: "aucune",
    alertCount: "{n}",
    alertCountHelp: "{n}, dont un appel à l'aide",
    cameraOk: "Caméra OK",
    cameraMissing: "Caméra absente",
    microphoneOk: "Micro OK",
    microphoneMissing: "Micro absent",
    deviceBattery: "{device} : pile {n} %",
    deviceBatteryLow: "{device} : pile faible ({n} %)",
    devicePresent: "{device} : présent",
    deviceMissing: "{device} : introuvable",
    networkGood: "Réseau bon ({ms} ms)",
    networkFair: "Réseau moyen ({ms} ms)",
    networkPoor: "Réseau faible ({ms} ms)",
    networkLoss: "{n} % perdus",
    networkUnknown: "Réseau : pas encore mesuré",
    clockOff: "Horloge décalée de {s} s",
    diskFull: "Disque presque plein ({n} %)",
    hot: "Très chaud ({n} °C)",
    configPending: "Réglages n° {v} en attente",
    configRefused: "Réglages n° {v} refusés",
    selftestNever: "Jamais lancé",
    selftestPassed: "Réussi à {time}",
    selftestFailed: "Échoué à {time} : {names}",
    details: "Détails",
    detailsLabel: "Détails : cabine {cabin}",
    detailTitle: "Cabine {cabin}",
    close: "Fermer",
    loading: "Chargement…",
    gone: "Cette cabine n'existe plus.",
    onlineSince: "En ligne depuis {time}",
    offlineSince: "Hors ligne depuis {time}",
    nowTitle: "En ce moment",
    camera: "Caméra",
    microphone: "Micro",
    network: "Réseau",
    clock: "Horloge",
    software: "Logiciel",
    uptime: "Allumée depuis",
    cpu: "Processeur",
    memory: "Mémoire",
    disk: "Disque",
    temperature: "Température",
    inSession: "Consultation",
    inSessionYes: "une consultation est en cours",
    inSessionNo: "aucune en ce moment",
    appointmentsToday: "Rendez-vous aujourd'hui",
    openAlerts: "Alertes ouvertes",
    presentFps: "fonctionne ({fps} images/s)",
    present: "fonctionne",
    missing: "absente ou débranchée",
    missingMasc: "absent ou débranché",
    levelDb: "fonctionne (niveau {db} dB)",
    onTime: "à l'heure",
    notMeasured: "pas mesuré",
    percent: "{n} %",
    degrees: "{n} °C",
    durationDays: "{d} j {h} h",
    durationHours: "{h} h {m} min",
    durationMinutes: "{m} min",
    appointmentLine: "{start}–{end} : {kind} avec {who}",
    cancelled: "annulé",
    devicesTitle: "Appareils médicaux",
    noDevices: "La cabine ne signale aucun appareil médical.",
    colDevice: "Appareil",
    colDeviceState: "État",
    colBattery: "Pile",
    colLastReading: "Dernière mesure",
    deviceConnected: "connecté",
    deviceSeen: "à portée, pas connecté",
    deviceNotSeen: "introuvable",
    batteryUnknown: "inconnue",
    noReading: "aucune",
    historyTitle: "Derniers états envoyés par la cabine",
    noHistory: "La cabine n'a encore rien envoyé depuis le démarrage du serveur.",
    historyCaption: "Les {n} plus récents sur {total} reçus, du plus récent au plus ancien. « — » : pas de mesure.",
    chartCaption: "Temps de réponse du réseau sur {n} états : de {min} à {max} ms (détail dans le tableau).",
    chartAxis: "ms",
    colTime: "Heure",
    colCamera: "Caméra",
    colMicrophone: "Micro",
    colDevices: "Appareils",
    colNetwork: "Réseau",
    colLoss: "Pertes",
    colCpu: "Processeur",
    colTemperature: "Température",
    ok: "OK",
    absent: "absent",
    devicesSeen: "{seen} sur {total} à portée",
    lowestBattery: "pile min. {n} %",
    selftestTitle: "Autotest",
    runSelftest: "Lancer l'autotest",
    selftestRunning: "Autotest en cours : la cabine vérifie ses appareils, cela prend quelques secondes…",
    selftestDoneOk: "Autotest terminé : tout fonctionne.",
    selftestDoneFailed: "Autotest terminé : des vérifications ont échoué (voir ci-dessous).",
    notConnected: "La cabine n'est pas connectée : l'autotest ne peut pas être lancé. Vérifiez qu'elle est allumée et reliée à Internet.",
    noAnswer: "La cabine n'a pas répondu à temps. Réessayez, ou vérifiez qu'elle est allumée.",
    selftestError: "L'autotest n'a pas pu être lancé : {reason}",
    reportNone: "Aucun autotest reçu de cette cabine depuis le démarrage du serveur.",
    reportOk: "Dernier autotest, à {time} : réussi.",
    reportFailed: "Dernier autotest, à {time} : échoué.",
    checkOk: "réussi",
    checkWarning: "à surveiller",
    checkFailed: "échoué",
    checkSkipped: "non vérifié",
    optional: "facultatif",
    "check:camera": "Caméra",
    "check:microphone": "Micro",
    "check:clock": "Horloge",
    "check:bluetooth-adapter": "Bluetooth",
    "check:ice-servers": "Relais vidéo",
    "check:signaling": "Liaison avec le serveur",
    checkDevice: "Appareil : {device}",
    thermometer: "thermomètre",
    "blood-pressure": "tensiomètre",
    "pulse-oximeter": "oxymètre",
    "heart-rate": "cardiofréquencemètre",
    "weight-scale": "balance",
    configTitle: "Réglages à distance",
    configUnavailable: "Les réglages à distance ne sont pas encore disponibles sur ce serveur.",
    configNone: "Aucun réglage envoyé depuis le serveur : la cabine suit son fichier local.",
    configLatest: "Dernière version envoyée : n° {v}",
    configLatestBy: "Dernière version envoyée : n° {v}, à {time}, par {who}",
    configRunning: "La cabine fonctionne avec : {running}.",
    runningVersion: "la version n° {v}",
    runningFile: "son fichier de réglages local ({digest})",
    runningUnknown: "on ne sait pas encore (pas de nouvelles depuis le démarrage du serveur)",
    configAfterCall: "Elle l'appliquera à la fin de la consultation en cours.",
    configApplied: "La cabine applique la dernière version.",
    configPendingLong: "En attente : la cabine n'a pas encore appliqué la dernière version.",
    configRefusedLong: "La cabine a refusé la dernière version et garde ses réglages précédents.",
    configRefusal: "Raison donnée par la cabine : {reason}",
    videoSize: "Taille de l'image",
    fps: "Images par seconde (de 5 à 30)",
    batteryThreshold: "Alerte quand la batterie d'un appareil passe sous (%)",
    batteryInvalid: "Le seuil de batterie doit être un nombre entier de 1 à 99.",
    nothingChanged: "Rien n'a changé : modifiez un réglage avant d'envoyer.",
    allow: "Appareils médicaux autorisés, un par ligne",
    allowHint: "Une adresse Bluetooth (par exemple A4:C1:38:12:34:56) ou un type d'appareil : {services}.",
    languages: "Langues proposées à l'écran",
    saveConfig: "Envoyer à la cabine",
    saving: "Envoi…",
    configSent: "Version n° {v} envoyée : en attente de la cabine.",
    configRejected: "Le serveur refuse ces réglages : {reason}",
    fpsInvalid: "Les images par seconde doivent être un nombre entier de 5 à 30.",
    languagesInvalid: "Cochez au moins une langue.",
    allowInvalid: "« {entry} » n'est ni une adresse Bluetooth ni un type d'appareil connu.",
    eventsTitle: "Derniers événements",
    noEvents: "Aucun événement.",
    "event:appointment-created": "rendez-vous créé",
    "event:appointment-cancelled": "rendez-vous annulé",
    "event:joined": "professionnel arrivé",
    "event:refused": "connexion refusée",
    "event:admitted": "consultation commencée",
    "event:left": "départ",
    "event:cabin-created": "cabine créée",
    "event:cabin-enrolled": "cabine installée",
    "event:cabin-enrollment-code": "nouveau code d'installation",
    "event:cabin-disabled": "cabine désactivée",
    "event:cabin-enabled": "cabine réactivée",
    "event:cabin-connected": "cabine connectée",
    "event:cabin-disconnected": "cabine déconnectée",
    "event:help-requested": "appel à l'aide",
    "event:help-resolved": "appel à l'aide résolu",
    "event:selftest-requested": "autotest demandé",
    "event:incident-opened": "incident signalé",
    "event:incident-cleared": "incident terminé",
    "event:config-changed": "réglages envoyés",
    "event:config-applied": "réglages appliqués",
    "event:config-refused": "réglages refusés",
    "actor:operator": "opérateur",
    "actor:cabin": "cabine",
    "actor:signaling": "serveur",
    "actor:professional": "professionnel",
    "actor:citizen": "usager",
  },
  en: {
    title: "Cabin supervision",
    languageName: "English",
    logout: "Log out",
    keyLabel: "Operator API key",
    login: "Log in",
    keyHint: "The key is kept in this tab only, until it is closed.",
    badKey: "Key refused: check it.",
    unreachable: "The server does not answer. Try again in a moment.",
    connecting: "Connecting to the server…",
    live: "Live",
    reconnecting: "Connection lost: trying again in {s} s (attempt {n})",
    reconnected: "Connection restored.",
    stale: "This information dates from {time}: it is no longer current until the connection is restored.",
    updated: "Updated at {time}",
    justNow: "just now",
    never: "never",
    alerts: "Calls for help",
    noAlerts: "No call for help.",
    helpFrom: "Call for help: cabin {cabin}",
    since: "since {time}",
    presses: "{n} presses",
    appointment: "appointment {id}",
    resolve: "Resolved",
    actionOn: "{action}: {what}",
    newAlert: "New call for help: cabin {cabin}.",
    incidents: "Cabin incidents",
    noIncidents: "No incident.",
    incidentAt: "{what}: cabin {cabin}",
    repeated: "reported {n} times",
    acknowledge: "Seen",
    newIncident: "New incident: {what}, cabin {cabin}.",
    help: "Call for help",
    "camera-unavailable": "Camera unavailable",
    "microphone-unavailable": "Microphone unavailable",
    "device-missing": "Medical device missing",
    "bluetooth-unavailable": "Bluetooth unavailable",
    "turn-refused": "Video relay (TURN): access refused",
    offline: "Cabin offline",
    "battery-low": "Battery low",
    "clock-skew": "Cabin clock is off",
    "selftest-failed": "Self-test failed",
    batteryDetail: "{device}: battery at {n} %",
    offlineDetail: "offline since {time}",
    aheadBy: "{s} s ahead",
    behindBy: "{s} s behind",
    failedChecks: "failed: {names}",
    cabins: "Cabins",
    noCabins: "No cabin registered.",
    summary: "{total} in all · online: {online} · ready: {ready} · to check: {check} · offline: {offline}",
    colCabin: "Cabin",
    colState: "State",
    colAppointments: "Today's appointments",
    colAlerts: "Alerts",
    colHealth: "Equipment and network",
    colSelftest: "Self-test",
    colDetail: "Detail",
    ready: "Ready",
    check: "To check",
    offlineState: "Offline",
    disabled: "Disabled",
    notEnrolled: "Not installed yet",
    onlineUnknown: "Online, state unknown",
    lastSeen: "last heard",
    neverSeen: "never heard from",
    batteryLowShort: "low: {n} %",
    noNews: "No news from the cabin yet.",
    lastKnown: "Last known state, at {time}:",
    noAppointment: "none",
    appointmentCount: "{n} in all",
    inProgress: "in progress: {kind}, until {time}",
    nextAt: "next at {time}: {kind}",
    allDone: "all over",
    "kind:medical": "medical",
    "kind:bank": "bank",
    "kind:energy": "energy",
    "kind:public-service": "public service",
    noAlert: "none",
    alertCount: "{n}",
    alertCountHelp: "{n}, including a call for help",
    cameraOk: "Camera OK",
    cameraMissing: "No camera",
    microphoneOk: "Microphone OK",
    microphoneMissing: "No microphone",
    deviceBattery: "{device}: battery {n} %",
    deviceBatteryLow: "{device}: battery low ({n} %)",
    devicePresent: "{device}: present",
    deviceMissing: "{device}: not found",
    networkGood: "Network good ({ms} ms)",
    networkFair: "Network fair ({ms} ms)",
    networkPoor: "Network poor ({ms} ms)",
    networkLoss: "{n} % lost",
    networkUnknown: "Network: not measured yet",
    clockOff: "Clock off by {s} s",
    diskFull: "Disk almost full ({n} %)",
    hot: "Very hot ({n} °C)",
    configPending: "Settings no. {v} waiting",
    configRefused: "Settings no. {v} refused",
    selftestNever: "Not run yet",
    selftestPassed: "Passed at {time}",
    selftestFailed: "Failed at {time}: {names}",
    details: "Details",
    detailsLabel: "Details: cabin {cabin}",
    detailTitle: "Cabin {cabin}",
    close: "Close",
    loading: "Loading…",
    gone: "This cabin no longer exists.",
    onlineSince: "Online since {time}",
    offlineSince: "Offline since {time}",
    nowTitle: "Right now",
    camera: "Camera",
    microphone: "Microphone",
    network: "Network",
    clock: "Clock",
    software: "Software",
    uptime: "Switched on for",
    cpu: "Processor",
    memory: "Memory",
    disk: "Disk",
    temperature: "Temperature",
    inSession: "Consultation",
    inSessionYes: "a consultation is in progress",
    inSessionNo: "none right now",
    appointmentsToday: "Today's appointments",
    openAlerts: "Open alerts",
    presentFps: "works ({fps} frames/s)",
    present: "works",
    missing: "missing or unplugged",
    missingMasc: "missing or unplugged",
    levelDb: "works (level {db} dB)",
    onTime: "on time",
    notMeasured: "not measured",
    percent: "{n} %",
    degrees: "{n} °C",
    durationDays: "{d} d {h} h",
    durationHours: "{h} h {m} min",
    durationMinutes: "{m} min",
    appointmentLine: "{start}–{end}: {kind} with {who}",
    cancelled: "cancelled",
    devicesTitle: "Medical devices",
    noDevices: "The cabin reports no medical device.",
    colDevice: "Device",
    colDeviceState: "State",
    colBattery: "Battery",
    colLastReading: "Last reading",
    deviceConnected: "connected",
    deviceSeen: "in range, not connected",
    deviceNotSeen: "not found",
    batteryUnknown: "unknown",
    noReading: "none",
    historyTitle: "Latest states sent by the cabin",
    noHistory: "The cabin has sent nothing since the server started.",
    historyCaption: "The {n} most recent of {total} received, newest first. “—”: not measured.",
    chartCaption: "Network response time over {n} states: from {min} to {max} ms (details in the table).",
    chartAxis: "ms",
    colTime: "Time",
    colCamera: "Camera",
    colMicrophone: "Microphone",
    colDevices: "Devices",
    colNetwork: "Network",
    colLoss: "Loss",
    colCpu: "Processor",
    colTemperature: "Temperature",
    ok: "OK",
    absent: "missing",
    devicesSeen: "{seen} of {total} in range",
    lowestBattery: "lowest battery {n} %",
    selftestTitle: "Self-test",
    runSelftest: "Run the self-test",
    selftestRunning: "Self-test running: the cabin checks its equipment, this takes a few seconds…",
    selftestDoneOk: "Self-test finished: everything works.",
    selftestDoneFailed: "Self-test finished: some checks failed (see below).",
    notConnected: "The cabin is not connected: the self-test cannot run. Check that it is switched on and online.",
    noAnswer: "The cabin did not answer in time. Try again, or check that it is switched on.",
    selftestError: "The self-test could not run: {reason}",
    reportNone: "No self-test received from this cabin since the server started.",
    reportOk: "Latest self-test, at {time}: passed.",
    reportFailed: "Latest self-test, at {time}: failed.",
    checkOk: "passed",
    checkWarning: "to watch",
    checkFailed: "failed",
    checkSkipped: "not checked",
    optional: "optional",
    "check:camera": "Camera",
    "check:microphone": "Microphone",
    "check:clock": "Clock",
    "check:bluetooth-adapter": "Bluetooth",
    "check:ice-servers": "Video relay",
    "check:signaling": "Link to the server",
    checkDevice: "Device: {device}",
    thermometer: "thermometer",
    "blood-pressure": "blood pressure monitor",
    "pulse-oximeter": "pulse oximeter",
    "heart-rate": "heart rate monitor",
    "weight-scale": "weighing scale",
    configTitle: "Remote settings",
    configUnavailable: "Remote settings are not available on this server yet.",
    configNone: "No settings sent from the server: the cabin follows its local file.",
    configLatest: "Latest version sent: no. {v}",
    configLatestBy: "Latest version sent: no. {v}, at {time}, by {who}",
    configRunning: "The cabin runs with: {running}.",
    runningVersion: "version no. {v}",
    runningFile: "its local settings file ({digest})",
    runningUnknown: "not known yet (no news since the server started)",
    configAfterCall: "It will apply it when the consultation in progress ends.",
    configApplied: "The cabin applies the latest version.",
    configPendingLong: "Waiting: the cabin has not applied the latest version yet.",
    configRefusedLong: "The cabin refused the latest version and keeps its previous settings.",
    configRefusal: "Reason given by the cabin: {reason}",
    videoSize: "Picture size",
    fps: "Frames per second (5 to 30)",
    batteryThreshold: "Alert when a device's battery falls below (%)",
    batteryInvalid: "The battery threshold must be a whole number from 1 to 99.",
    nothingChanged: "Nothing changed: change a setting before sending.",
    allow: "Medical devices allowed, one per line",
    allowHint: "A Bluetooth address (for example A4:C1:38:12:34:56) or a kind of device: {services}.",
    languages: "Languages offered on the screen",
    saveConfig: "Send to the cabin",
    saving: "Sending…",
    configSent: "Version no. {v} sent: waiting for the cabin.",
    configRejected: "The server refuses these settings: {reason}",
    fpsInvalid: "Frames per second must be a whole number from 5 to 30.",
    languagesInvalid: "Tick at least one language.",
    allowInvalid: "“{entry}” is neither a Bluetooth address nor a known kind of device.",
    eventsTitle: "Recent events",
    noEvents: "No event.",
    "event:appointment-created": "appointment created",
    "event:appointment-cancelled": "appointment cancelled",
    "event:joined": "professional joined",
    "event:refused": "connection refused",
    "event:admitted": "consultation started",
    "event:left": "left",
    "event:cabin-created": "cabin created",
    "event:cabin-enrolled": "cabin installed",
    "event:cabin-enrollment-code": "new installation code",
    "event:cabin-disabled": "cabin disabled",
    "event:cabin-enabled": "cabin enabled again",
    "event:cabin-connected": "cabin connected",
    "event:cabin-disconnected": "cabin disconnected",
    "event:help-requested": "call for help",
    "event:help-resolved": "call for help resolved",
    "event:selftest-requested": "self-test requested",
    "event:incident-opened": "incident reported",
    "event:incident-cleared": "incident over",
    "event:config-changed": "settings sent",
    "event:config-applied": "settings applied",
    "event:config-refused": "settings refused",
    "actor:operator": "operator",
    "actor:cabin": "cabin",
    "actor:signaling": "server",
    "actor:professional": "professional",
    "actor:citizen": "citizen",
  },
};

// Language names shown in their own language (the screen's languages, whatever the page's).
const LANGUAGE_NAMES = { fr: "Français", en: "English", ar: "العربية", es: "Español", pt: "Português", tr: "Türkçe",
                         uk: "Українська" };

const $ = (id) => document.getElementById(id);
const state = {
  lang: "fr",
  connection: "idle", // idle, connecting, live, reconnecting, refused
  socket: null,
  attempts: 0,
  retryTimer: null,
  silenceTimer: null,
  tickTimer: null,
  snapshot: null, // the latest {type: "fleet"} message
  receivedAt: 0, // when it came (this browser's clock)
  skew: 0, // the server's clock minus this browser's, from the snapshot's "at"
  alerts: [], // calls for help
  incidents: [], // every other open alert
  cabins: [],
  seen: new Set(), // alert ids already announced
  rows: new Map(), // cabin id -> {signature, row}
  signatures: {},
  refocus: null, // where focus goes when the focused button's item disappears
  detail: null, // the cabin whose detail is open, with what the status and config requests answered
};
window.cabineOperator = state;

// --- words, times and DOM ------------------------------------------------------------------------------------

function has(key) {
  return Object.hasOwn(STRINGS[state.lang], key) || Object.hasOwn(STRINGS.fr, key);
}

function t(key, values = {}) {
  let text = STRINGS[state.lang][key] ?? STRINGS.fr[key] ?? key;
  // A cabin whose name already says so ("Cabine de la mairie") is not called "cabine Cabine de la mairie".
  if (typeof values.cabin === "string" && /^cabine?\s/i.test(values.cabin)) {
    text = text.replace(/\b[Cc]abine? \{cabin\}/g, "{cabin}");
  }
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

// A word from the table if it has one, else the value as it came (a kind from a newer server, say).
function word(prefix, value) {
  return has(prefix + value) ? t(prefix + value) : value;
}

function locale() {
  return state.lang === "fr" ? "fr-FR" : "en-GB";
}

function time(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
}

function serverNow() {
  return Date.now() + state.skew;
}

function ago(iso) {
  if (!iso) return t("never");
  const seconds = Math.round((serverNow() - Date.parse(iso)) / 1000);
  if (seconds < 5) return t("justNow");
  const format = new Intl.RelativeTimeFormat(state.lang, { style: "short", numeric: "always" });
  if (seconds < 60) return format.format(-seconds, "second");
  if (seconds < 3600) return format.format(-Math.floor(seconds / 60), "minute");
  if (seconds < 86_400) return format.format(-Math.floor(seconds / 3600), "hour");
  return format.format(-Math.floor(seconds / 86_400), "day");
}

function duration(seconds) {
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  if (hours >= 24) return t("durationDays", { d: Math.floor(hours / 24), h: hours % 24 });
  if (hours >= 1) return t("durationHours", { h: hours, m: String(minutes % 60).padStart(2, "0") });
  return t("durationMinutes", { m: minutes });
}

function percent(share) {
  return t("percent", { n: Math.round(share * 100) });
}

// h("p", {class: "x", text: "..."}, child, ...): an element; null, undefined and false children are left out.
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// "il y a 12 s", kept moving by the ticker.
function relative(iso) {
  return h("time", { datetime: iso, "data-ago": iso, text: ago(iso) });
}

function tick() {
  for (const node of document.querySelectorAll("time[data-ago]")) {
    const text = ago(node.dataset.ago);
    if (node.textContent !== text) node.textContent = text;
  }
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// News (a new call for help, a new incident) for the page's live region, and for the detail's while it is open:
// a modal dialog makes the rest of the page inert, and its live region silent.
function announce(text) {
  setStatus(text);
  $("detail-news").textContent = $("detail").open ? text : "";
}

// Redraw with `draw` and give focus back to the control that had it (same data-key), even if it was rebuilt; if it
// is gone (its alert was resolved), to where `state.refocus` says.
function keepingFocus(draw) {
  const active = document.activeElement;
  const key = active?.dataset?.key;
  draw();
  if (!key || document.activeElement === active) return;
  // Moved (still in the page but blurred) or rebuilt (a new element with the same key).
  const again = active.isConnected ? active : document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
  else if (state.refocus?.from === key) document.querySelector(state.refocus.to)?.focus();
  if (!again) state.refocus = null;
}

// A button waiting for the server: it keeps the focus (a disabled one would drop it) but does nothing meanwhile.
function setBusy(button, busy) {
  if (busy) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}

function isBusy(button) {
  return button.getAttribute("aria-disabled") === "true";
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    logout(t("badKey"));
    const error = new Error("unauthorized");
    error.status = 401;
    throw error;
  }
  return { status: response.status, ok: response.ok, data };
}

// --- what a cabin's state means ------------------------------------------------------------------------------

function cabinById(id) {
  return state.cabins.find((c) => c.id === id);
}

function cabinLabel(id) {
  return cabinById(id)?.name || id;
}

function serviceWord(name) {
  return has(name) && DEVICE_SERVICES.includes(name) ? t(name) : name;
}

function deviceName(device) {
  return device.name || device.address;
}

// Each part of a cabin, in words, with a level: ok, warn, bad, or info (neither good nor bad news).
function healthItems(cabin) {
  const items = [];
  const beat = cabin.heartbeat;
  if (beat) {
    items.push(beat.camera.present ? ["ok", t("cameraOk")] : ["bad", t("cameraMissing")]);
    items.push(beat.microphone.present ? ["ok", t("microphoneOk")] : ["bad", t("microphoneMissing")]);
    for (const device of beat.devices) {
      const values = { device: deviceName(device), n: device.battery };
      if (!device.seen && !device.connected) items.push(["bad", t("deviceMissing", values)]);
      else if (device.battery !== null && device.battery < BATTERY_LOW_PERCENT) {
        items.push(["bad", t("deviceBatteryLow", values)]);
      } else if (device.battery !== null) items.push(["ok", t("deviceBattery", values)]);
      else items.push(["ok", t("devicePresent", values)]);
    }
    items.push(networkItem(beat.network));
    const offset = beat.clock_offset_s;
    if (offset !== null && Math.abs(offset) > CLOCK_SKEW_SECONDS) {
      items.push(["warn", t("clockOff", { s: Math.round(Math.abs(offset)) })]);
    }
    if (beat.system.disk !== null && beat.system.disk >= 0.9) {
      items.push(["warn", t("diskFull", { n: Math.round(beat.system.disk * 100) })]);
    }
    if (beat.system.temperature_c !== null && beat.system.temperature_c >= 80) {
      items.push(["warn", t("hot", { n: Math.round(beat.system.temperature_c) })]);
    }
  }
  const config = cabin.config;
  if (config?.status === "pending") items.push(["info", t("configPending", { v: config.version ?? "?" })]);
  if (config?.status === "refused") items.push(["bad", t("configRefused", { v: config.version ?? "?" })]);
  return items.map(([level, text]) => ({ level, text }));
}

function networkItem(network) {
  if (network.rtt_ms === null) return ["info", t("networkUnknown")];
  const ms = Math.round(network.rtt_ms);
  const loss = network.loss ?? 0;
  const lost = loss > 0.02 ? ` · ${t("networkLoss", { n: Math.round(loss * 100) })}` : "";
  if (network.rtt_ms <= 150 && loss <= 0.02) return ["ok", t("networkGood", { ms })];
  if (network.rtt_ms <= 400 && loss <= 0.1) return ["warn", t("networkFair", { ms }) + lost];
  return ["bad", t("networkPoor", { ms }) + lost];
}

// [key, level]: the one word an operator reads first.
function verdict(cabin) {
  if (cabin.disabled) return ["disabled", "muted"];
  if (!cabin.enrolled) return ["notEnrolled", "muted"];
  if (!cabin.online) return ["offlineState", "bad"];
  if (!cabin.heartbeat) return ["onlineUnknown", "info"];
  const trouble =
    cabin.alerts.length > 0 ||
    (cabin.selftest && !cabin.selftest.ok) ||
    healthItems(cabin).some((item) => item.level === "bad" || item.level === "warn");
  return trouble ? ["check", "warn"] : ["ready", "ok"];
}

function appointmentsText(cabin) {
  const list = (cabin.appointments_today ?? [])
    .filter((a) => !a.cancelled)
    .sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  if (list.length === 0) return t("noAppointment");
  const now = serverNow();
  const parts = [t("appointmentCount", { n: list.length })];
  const current = list.find((a) => Date.parse(a.starts_at) <= now && now < Date.parse(a.ends_at));
  const next = list.find((a) => Date.parse(a.starts_at) > now);
  if (current) parts.push(t("inProgress", { kind: word("kind:", current.kind), time: clock(current.ends_at) }));
  if (next) parts.push(t("nextAt", { kind: word("kind:", next.kind), time: clock(next.starts_at) }));
  if (!current && !next) parts.push(t("allDone"));
  return parts.join(" · ");
}

function checkName(name) {
  if (name.startsWith("device:")) return t("checkDevice", { device: serviceWord(name.slice("device:".length)) });
  return word("check:", name);
}

function selftestText(selftest) {
  if (!selftest) return t("selftestNever");
  const at = time(selftest.finished_at || selftest.received_at);
  if (selftest.ok) return t("selftestPassed", { time: at });
  return t("selftestFailed", { time: at, names: (selftest.failed ?? []).map(checkName).join(", ") || "?" });
}

// An alert's detail in the page's words where the page knows them; else the text the cabin or server gave.
function alertDetail(alert) {
  const cabin = cabinById(alert.cabin_id);
  if (alert.kind === "battery-low") {
    const device = cabin?.heartbeat?.devices.find((d) => d.address === alert.subject);
    if (device && device.battery !== null) return t("batteryDetail", { device: deviceName(device), n: device.battery });
  }
  if (alert.kind === "offline" && cabin && !cabin.online && cabin.since) {
    return t("offlineDetail", { time: time(cabin.since) });
  }
  if (alert.kind === "clock-skew" && cabin?.heartbeat?.clock_offset_s != null) {
    const s = Math.abs(cabin.heartbeat.clock_offset_s).toFixed(1);
    return t(cabin.heartbeat.clock_offset_s > 0 ? "aheadBy" : "behindBy", { s });
  }
  if (alert.kind === "selftest-failed" && cabin?.selftest?.failed?.length) {
    return t("failedChecks", { names: cabin.selftest.failed.map(checkName).join(", ") });
  }
  return alert.detail;
}

function alertWhat(alert) {
  return word("", alert.kind);
}

// --- the lists -----------------------------------------------------------------------------------------------

function changed(name, value) {
  const signature = JSON.stringify([state.lang, value]);
  if (state.signatures[name] === signature) return false;
  state.signatures[name] = signature;
  return true;
}

function renderAlerts() {
  if (!changed("alerts", [state.alerts, state.alerts.map((a) => cabinLabel(a.cabin_id))])) return;
  const list = $("alerts");
  $("no-alerts").hidden = state.alerts.length > 0;
  $("alerts-section").classList.toggle("active", state.alerts.length > 0);
  document.title = (state.alerts.length ? `(${state.alerts.length}) ` : "") + t("title");
  list.replaceChildren(
    ...state.alerts.map((alert) => {
      const heading = t("helpFrom", { cabin: cabinLabel(alert.cabin_id) });
      const details = [t("since", { time: time(alert.raised_at) })];
      if (alert.presses > 1) details.push(t("presses", { n: alert.presses }));
      if (alert.appointment_id) details.push(t("appointment", { id: alert.appointment_id }));
      return h(
        "li",
        { class: "alert", dataset: { alertId: alert.id } },
        h("p", { class: "what" }, h("strong", { text: heading }), h("br"), details.join(" · "), " (",
          relative(alert.raised_at), ")"),
        h("button", {
          type: "button", class: "primary", text: t("resolve"), "aria-label": t("actionOn", { action: t("resolve"), what: heading }),
          dataset: { key: `resolve:${alert.id}` }, onclick: (event) => resolveAlert(alert.id, event.currentTarget),
        }),
      );
    }),
  );
}

function renderIncidents() {
  if (!changed("incidents", [state.incidents, state.incidents.map((a) => [alertDetail(a), cabinLabel(a.cabin_id)])])) {
    return;
  }
  const list = $("incidents");
  $("no-incidents").hidden = state.incidents.length > 0;
  list.replaceChildren(
    ...state.incidents.map((alert) => {
      const heading = t("incidentAt", { what: alertWhat(alert), cabin: cabinLabel(alert.cabin_id) });
      const details = [t("since", { time: time(alert.raised_at) })];
      if (alert.subject) details.unshift(alert.subject);
      if (alert.presses > 1) details.push(t("repeated", { n: alert.presses }));
      const detail = alertDetail(alert);
      return h(
        "li",
        { class: "alert incident", dataset: { alertId: alert.id, kind: alert.kind } },
        h("p", { class: "what" }, h("strong", { text: heading }), h("br"), details.join(" · "), " (",
          relative(alert.raised_at), ")",
          detail ? h("br") : null, detail ? h("span", { class: "detail", text: detail }) : null),
        h("button", {
          type: "button", class: "secondary", text: t("acknowledge"), "aria-label": t("actionOn", { action: t("acknowledge"), what: heading }),
          dataset: { key: `seen:${alert.id}` }, onclick: (event) => resolveAlert(alert.id, event.currentTarget),
        }),
      );
    }),
  );
}

function chips(items) {
  return h("ul", { class: "chips" }, ...items.map((item) => h("li", { class: `chip ${item.level}`, text: item.text })));
}

// The health line; an offline cabin's is what it said last, greyed and said so.
function healthCell(cabin, items) {
  if (!cabin.heartbeat) return [h("p", { class: "quiet", text: t("noNews") }), items.length ? chips(items) : null];
  if (cabin.online) return [chips(items)];
  const at = time(cabin.heartbeat.received_at);
  return [h("p", { class: "quiet", text: t("lastKnown", { time: at }) }),
          chips(items.map((item) => ({ level: "muted", text: item.text })))];
}

function cabinRow(cabin) {
  const [key, level] = verdict(cabin);
  const help = cabin.alerts.some((a) => a.kind === "help");
  const count = cabin.alerts.length;
  const items = healthItems(cabin);
  const label = cabin.name || cabin.id;
  const selftestLevel = !cabin.selftest ? "info" : cabin.selftest.ok ? "ok" : "bad";
  return h(
    "tr",
    { dataset: { cabinId: cabin.id, state: key, online: String(Boolean(cabin.online)) }, class: level === "bad" || level === "warn" ? "attention" : null },
    h("th", { scope: "row" }, h("span", { class: "name", text: label }),
      cabin.name && cabin.name !== cabin.id ? h("span", { class: "id", text: cabin.id }) : null),
    h("td", {}, h("span", { class: `chip ${level}`, text: t(key) }), h("br"),
      h("span", { class: "seen" }, ...(cabin.last_seen ? [`${t("lastSeen")} `, relative(cabin.last_seen)] : [t("neverSeen")]))),
    h("td", { class: "appointments", text: appointmentsText(cabin) }),
    h("td", { class: count ? (help ? "count help" : "count some") : "count" },
      count ? t(help ? "alertCountHelp" : "alertCount", { n: count }) : t("noAlert")),
    h("td", { class: "health" }, ...healthCell(cabin, items)),
    h("td", {}, h("span", { class: `selftest ${selftestLevel}`, text: selftestText(cabin.selftest) })),
    h("td", {}, h("button", {
      type: "button", class: "secondary", text: t("details"), "aria-label": t("detailsLabel", { cabin: label }),
      "aria-haspopup": "dialog", dataset: { key: `detail:${cabin.id}` },
      onclick: () => openDetail(cabin.id),
    })),
  );
}

function renderCabins() {
  const body = $("cabins");
  $("no-cabins").hidden = state.cabins.length > 0;
  // Rows are rebuilt one by one, only when their cabin changed (or the minute did: "next at" moves on).
  const minute = Math.floor(serverNow() / 60_000);
  const ids = state.cabins.map((c) => c.id);
  const sameOrder = ids.length === body.rows.length && ids.every((id, i) => body.rows[i].dataset.cabinId === id);
  const rows = state.cabins.map((cabin) => {
    const signature = JSON.stringify([state.lang, minute, cabin]);
    const known = state.rows.get(cabin.id);
    if (known && known.signature === signature) return known.row;
    const row = cabinRow(cabin);
    if (known && sameOrder) known.row.replaceWith(row);
    state.rows.set(cabin.id, { signature, row });
    return row;
  });
  if (!sameOrder) body.replaceChildren(...rows);
  for (const id of state.rows.keys()) if (!ids.includes(id)) state.rows.delete(id);
  const counts = { total: state.cabins.length, online: 0, ready: 0, check: 0, offline: 0 };
  for (const cabin of state.cabins) {
    const [key] = verdict(cabin);
    if (cabin.online) counts.online += 1;
    if (key === "ready") counts.ready += 1;
    if (key === "check") counts.check += 1;
    if (key === "offlineState") counts.offline += 1;
  }
  $("summary").textContent = t("summary", counts);
}

// What changes only with the language.
function renderStatic() {
  if (state.renderedLang === state.lang) return;
  state.renderedLang = state.lang;
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const other = state.lang === "fr" ? "en" : "fr";
  $("lang").textContent = STRINGS[other].languageName;
  $("lang").lang = other;
  $("config-allow-hint").textContent = t("allowHint", {
    services: DEVICE_SERVICES.map((name) => `${name} (${t(name)})`).join(", "),
  });
  renderConnection();
}

// The settings form's choices, once: sizes and language names read the same in every language.
function buildConfigForm() {
  $("config-size").replaceChildren(
    ...VIDEO_SIZES.map(([w, hgt]) => h("option", { value: `${w}x${hgt}`, text: `${w} × ${hgt}` })),
  );
  $("config-languages").append(
    ...SCREEN_LANGUAGES.map((code) =>
      h("div", { class: "check" },
        h("input", { type: "checkbox", id: `config-lang-${code}`, name: "languages", value: code }),
        h("label", { for: `config-lang-${code}`, lang: code, text: LANGUAGE_NAMES[code] ?? code })),
    ),
  );
}

function render() {
  renderStatic();
  keepingFocus(() => {
    renderAlerts();
    renderIncidents();
    renderCabins();
  });
  if (state.snapshot) $("updated").textContent = t("updated", { time: time(state.snapshot.at) });
  renderDetail();
}

// --- the live connection ---------------------------------------------------------------------------------------

function renderConnection() {
  const node = $("connection");
  node.dataset.state = state.connection;
  node.hidden = state.connection === "idle" || state.connection === "refused";
  const text = {
    connecting: t("connecting"),
    live: t("live"),
    reconnecting: t("reconnecting", { s: state.retryIn ?? "", n: state.attempts }),
  }[state.connection];
  if (text !== undefined && node.textContent !== text) node.textContent = text;
  const stale = state.connection === "reconnecting" && state.snapshot !== null;
  $("stale").hidden = !stale;
  if (stale) $("stale").textContent = t("stale", { time: time(state.snapshot.at) });
}

function setConnection(connection) {
  state.connection = connection;
  renderConnection();
}

function liveUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${LIVE_PATH}`;
}

function connect() {
  clearTimeout(state.retryTimer);
  const key = sessionStorage.getItem(KEY);
  if (!key) return showLogin();
  const ws = new WebSocket(liveUrl());
  state.socket = ws;
  let refused = false;
  if (!state.attempts) setConnection("connecting");
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "hello", token: key }));
    listenForSilence(ws);
  });
  ws.addEventListener("message", (event) => {
    if (state.socket !== ws) return;
    listenForSilence(ws);
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "error") {
      if (message.code === 4401) refused = true;
      return;
    }
    if (message.type === "fleet") onSnapshot(message);
  });
  ws.addEventListener("close", (event) => {
    if (state.socket !== ws) return; // logged out, or given up on as silent
    state.socket = null;
    clearTimeout(state.silenceTimer);
    if (refused || event.code === 4401) {
      logout(t("badKey"));
      return;
    }
    scheduleReconnect();
  });
}

// A socket that says nothing for SILENT_MS is given up on (a dead link may never report its close).
function listenForSilence(ws) {
  clearTimeout(state.silenceTimer);
  state.silenceTimer = setTimeout(() => {
    if (state.socket !== ws) return;
    state.socket = null;
    ws.close(4000, "silent");
    scheduleReconnect();
  }, SILENT_MS);
}

// Exponential backoff with "equal jitter": between half and all of 1 s, 2 s, 4 s... 30 s.
function retryDelay(attempt) {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function scheduleReconnect() {
  state.attempts += 1;
  const delay = retryDelay(state.attempts);
  state.retryIn = Math.max(1, Math.round(delay / 1000));
  setConnection("reconnecting");
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(connect, delay);
}

function onSnapshot(message) {
  const first = state.snapshot === null;
  const wasReconnecting = state.attempts > 0;
  state.snapshot = message;
  state.receivedAt = Date.now();
  state.skew = Date.parse(message.at) - state.receivedAt || 0;
  state.attempts = 0;
  const alerts = message.alerts ?? [];
  const fresh = alerts.filter((a) => !state.seen.has(a.id));
  state.alerts = alerts.filter((a) => (a.kind ?? "help") === "help");
  state.incidents = alerts.filter((a) => (a.kind ?? "help") !== "help");
  state.cabins = message.cabins ?? [];
  for (const alert of fresh) state.seen.add(alert.id);
  showDashboard();
  setConnection("live");
  render();
  onDetailSnapshot();
  const news = fresh
    .sort((a, b) => ((a.kind ?? "help") === "help" ? 0 : 1) - ((b.kind ?? "help") === "help" ? 0 : 1))
    .map((a) =>
      (a.kind ?? "help") === "help"
        ? t("newAlert", { cabin: cabinLabel(a.cabin_id) })
        : t("newIncident", { what: alertWhat(a), cabin: cabinLabel(a.cabin_id) }),
    );
  if (news.length) announce(news.join(" "));
  else if (wasReconnecting && !first) setStatus(t("reconnected"));
}

function showDashboard() {
  $("login").hidden = true;
  $("alerts-section").hidden = false;
  $("incidents-section").hidden = false;
  $("cabins-section").hidden = false;
  $("logout").hidden = false;
}

function showLogin(message = "") {
  $("login").hidden = false;
  $("alerts-section").hidden = true;
  $("incidents-section").hidden = true;
  $("cabins-section").hidden = true;
  $("logout").hidden = true;
  $("stale").hidden = true;
  setStatus(message, Boolean(message));
}

// Close the live view and forget the key and what was shown; `message` says why (a refused key).
function logout(message = "") {
  const ws = state.socket;
  state.socket = null;
  if (ws) ws.close(1000, "bye");
  clearTimeout(state.retryTimer);
  clearTimeout(state.silenceTimer);
  sessionStorage.removeItem(KEY);
  state.attempts = 0;
  state.snapshot = null;
  state.alerts = [];
  state.incidents = [];
  state.cabins = [];
  state.signatures = {};
  state.rows.clear();
  $("cabins").replaceChildren();
  if ($("detail").open) $("detail").close();
  setConnection(message ? "refused" : "idle");
  showLogin(message);
  if (message) $("key").focus();
}

async function resolveAlert(id, button) {
  if (isBusy(button)) return;
  setBusy(button, true);
  // The item goes away with a coming snapshot: focus then moves to its neighbour's button, or to the list's title.
  const item = button.closest("li");
  const neighbour = (item.nextElementSibling ?? item.previousElementSibling)?.querySelector("button");
  const title = item.closest("section").querySelector("h2");
  title.tabIndex = -1;
  state.refocus = {
    from: button.dataset.key,
    to: neighbour ? `[data-key="${CSS.escape(neighbour.dataset.key)}"]` : `#${title.id}`,
  };
  try {
    const answer = await api("POST", `/api/v1/alerts/${encodeURIComponent(id)}/resolve`);
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  } catch (error) {
    if (button.isConnected) setBusy(button, false);
    state.refocus = null;
    if (error.status !== 401) setStatus(t("unreachable"), true);
  }
}

// --- one cabin's detail ------------------------------------------------------------------------------------------

function openDetail(id) {
  for (const name of Object.keys(state.signatures)) if (name.startsWith("detail-")) delete state.signatures[name];
  state.detail = {
    id,
    history: [],
    report: null,
    events: [],
    loaded: false,
    loading: null,
    reload: false,
    config: null, // what GET .../config answered; "unavailable" if the server has no such route
    signature: null,
    selftestRunning: false,
    chart: null,
  };
  for (const node of ["selftest-message", "config-message", "config-error", "detail-message", "detail-news"]) {
    $(node).textContent = "";
  }
  const dialog = $("detail");
  renderDetail();
  dialog.showModal();
  $("detail-close").focus();
  loadStatus();
  loadConfig();
}

function closedDetail() {
  const detail = state.detail;
  if (!detail) return;
  detail.chart?.destroy();
  state.detail = null;
  document.querySelector(`[data-key="${CSS.escape(`detail:${detail.id}`)}"]`)?.focus();
}

async function loadStatus() {
  const detail = state.detail;
  if (!detail) return;
  if (detail.loading) {
    detail.reload = true;
    return;
  }
  detail.loading = (async () => {
    try {
      const answer = await api("GET", `/api/v1/cabins/${encodeURIComponent(detail.id)}/status`);
      if (state.detail !== detail) return;
      if (answer.status === 404) {
        $("detail-message").textContent = t("gone");
      } else if (answer.ok) {
        detail.history = answer.data.history ?? [];
        detail.report = answer.data.selftest_report;
        detail.events = answer.data.events ?? [];
        detail.loaded = true;
      } else {
        $("detail-message").textContent = t("unreachable");
      }
    } catch (error) {
      if (error.status !== 401 && state.detail === detail) $("detail-message").textContent = t("unreachable");
    }
  })();
  await detail.loading;
  detail.loading = null;
  if (state.detail !== detail) return;
  renderDetail();
  if (detail.reload) {
    detail.reload = false;
    loadStatus();
  }
}

async function loadConfig() {
  const detail = state.detail;
  if (!detail) return;
  try {
    const answer = await api("GET", `/api/v1/cabins/${encodeURIComponent(detail.id)}/config`);
    if (state.detail !== detail) return;
    if (answer.ok) {
      detail.config = answer.data;
      fillConfigForm(answer.data.settings ?? {});
    } else {
      detail.config = "unavailable";
    }
  } catch (error) {
    if (error.status !== 401 && state.detail === detail) detail.config = "unavailable";
  }
  renderDetail();
}

// A new snapshot: the open detail takes the cabin's new heartbeat, and asks again for its report and events when
// something they show changed (a self-test came, the cabin came or went, an alert opened or closed, new settings).
function onDetailSnapshot() {
  const detail = state.detail;
  if (!detail) return;
  const cabin = cabinById(detail.id);
  if (!cabin) return;
  const beat = cabin.heartbeat;
  const last = detail.history[detail.history.length - 1];
  if (detail.loaded && beat && (!last || Date.parse(beat.received_at) > Date.parse(last.received_at))) {
    detail.history.push(beat);
    if (detail.history.length > 180) detail.history.shift();
    renderDetail();
  }
  const signature = JSON.stringify([cabin.online, cabin.since, cabin.selftest?.received_at, cabin.alerts.map((a) => a.id),
                                    cabin.config]);
  if (detail.signature !== null && detail.signature !== signature) loadStatus();
  detail.signature = signature;
}

function fact(label, value, level) {
  return [h("dt", { text: label }), h("dd", { class: level ?? null }, value)];
}

function renderDetail() {
  const detail = state.detail;
  if (!detail) return;
  const cabin = cabinById(detail.id);
  const label = cabin?.name || detail.id;
  $("detail-title").textContent = t("detailTitle", { cabin: label });
  if (!cabin) {
    $("detail-state").textContent = state.snapshot ? t("gone") : t("loading");
    return;
  }
  const [key, level] = verdict(cabin);
  const since = cabin.since ? t(cabin.online ? "onlineSince" : "offlineSince", { time: time(cabin.since) }) : "";
  $("detail-state").replaceChildren(
    h("span", { class: `chip ${level}`, text: t(key) }), " ", since,
    ...(cabin.last_seen ? [` · ${t("lastSeen")} `, relative(cabin.last_seen)] : [` · ${t("neverSeen")}`]),
  );
  // Each part is rebuilt only when what it shows changed (or the language did).
  const last = detail.history[detail.history.length - 1];
  if (changed("detail-now", [detail.id, cabin.heartbeat, cabin.appointments_today, cabin.alerts, cabin.selftest])) {
    renderNow(cabin);
  }
  if (changed("detail-devices", [detail.id, cabin.heartbeat?.devices])) renderDevices(cabin);
  if (changed("detail-history", [detail.id, detail.loaded, detail.history.length, last?.received_at])) {
    renderHistory(detail);
  }
  if (changed("detail-report", [detail.id, detail.loaded, detail.report])) renderReport(detail);
  renderConfig(detail, cabin);
  if (changed("detail-events", [detail.id, detail.loaded, detail.events])) renderEvents(detail);
  setBusy($("run-selftest"), detail.selftestRunning);
}

function renderNow(cabin) {
  const beat = cabin.heartbeat;
  const rows = [];
  if (beat) {
    const camera = beat.camera.present
      ? beat.camera.fps !== null ? t("presentFps", { fps: Math.round(beat.camera.fps) }) : t("present")
      : t("missing");
    rows.push(...fact(t("camera"), camera, beat.camera.present ? "ok" : "bad"));
    const microphone = beat.microphone.present
      ? beat.microphone.level_db !== null ? t("levelDb", { db: Math.round(beat.microphone.level_db) }) : t("present")
      : t("missingMasc");
    rows.push(...fact(t("microphone"), microphone, beat.microphone.present ? "ok" : "bad"));
    const [netLevel, netText] = networkItem(beat.network);
    rows.push(...fact(t("network"), netText, netLevel));
    const offset = beat.clock_offset_s;
    const clockText = offset === null ? t("notMeasured")
      : Math.abs(offset) <= 1 ? t("onTime") : t(offset > 0 ? "aheadBy" : "behindBy", { s: Math.abs(offset).toFixed(1) });
    rows.push(...fact(t("clock"), clockText, offset !== null && Math.abs(offset) > CLOCK_SKEW_SECONDS ? "warn" : null));
    rows.push(...fact(t("inSession"), beat.in_session ? t("inSessionYes") : t("inSessionNo")));
    rows.push(...fact(t("software"), beat.software));
    rows.push(...fact(t("uptime"), duration(beat.uptime_s)));
    const system = beat.system;
    rows.push(...fact(t("cpu"), system.cpu === null ? t("notMeasured") : percent(system.cpu)));
    rows.push(...fact(t("memory"), system.memory === null ? t("notMeasured") : percent(system.memory)));
    rows.push(...fact(t("disk"), system.disk === null ? t("notMeasured") : percent(system.disk),
                      system.disk !== null && system.disk >= 0.9 ? "warn" : null));
    rows.push(...fact(t("temperature"), system.temperature_c === null ? t("notMeasured")
      : t("degrees", { n: Math.round(system.temperature_c) })));
  } else {
    rows.push(...fact(t("camera"), t("noNews")));
  }
  const appointments = (cabin.appointments_today ?? []).map((a) =>
    h("li", { text: t("appointmentLine", { start: clock(a.starts_at), end: clock(a.ends_at), kind: word("kind:", a.kind),
                                          who: a.professional_name }) + (a.cancelled ? ` (${t("cancelled")})` : "") }));
  rows.push(...fact(t("appointmentsToday"), appointments.length ? h("ul", {}, ...appointments) : t("noAppointment")));
  const alerts = cabin.alerts.map((a) => {
    const detail = alertDetail(a);
    return h("li", { text: alertWhat(a) + (detail ? ` (${detail})` : "") });
  });
  rows.push(...fact(t("openAlerts"), alerts.length ? h("ul", {}, ...alerts) : t("noAlert"), alerts.length ? "warn" : null));
  $("detail-now").replaceChildren(...rows);
}

function renderDevices(cabin) {
  const devices = cabin.heartbeat?.devices ?? [];
  $("no-devices").hidden = devices.length > 0;
  $("devices-table").hidden = devices.length === 0;
  $("devices").replaceChildren(
    ...devices.map((d) => {
      const stateText = d.connected ? t("deviceConnected") : d.seen ? t("deviceSeen") : t("deviceNotSeen");
      const low = d.battery !== null && d.battery < BATTERY_LOW_PERCENT;
      return h("tr", { dataset: { address: d.address } },
        h("th", { scope: "row" }, deviceName(d),
          d.name ? h("span", { class: "id", text: d.address }) : null),
        h("td", { class: d.seen || d.connected ? null : "bad", text: stateText }),
        h("td", { class: low ? "bad" : null,
                  text: d.battery === null ? t("batteryUnknown")
                    : low ? t("batteryLowShort", { n: d.battery })
                    : t("percent", { n: d.battery }) }),
        h("td", {}, d.last_reading_at ? h("time", { datetime: d.last_reading_at, text: time(d.last_reading_at) })
          : t("noReading")),
      );
    }),
  );
}

function dash(value, format) {
  return value === null || value === undefined ? "—" : format(value);
}

function renderHistory(detail) {
  const history = detail.history;
  const shown = history.slice(-HISTORY_ROWS).reverse();
  $("no-history").hidden = history.length > 0 || !detail.loaded;
  $("history-table").hidden = history.length === 0;
  $("history-caption").textContent = t("historyCaption", { n: shown.length, total: history.length });
  $("history").replaceChildren(
    ...shown.map((beat) => {
      const batteries = beat.devices.map((d) => d.battery).filter((b) => b !== null);
      const seen = beat.devices.filter((d) => d.seen || d.connected).length;
      const devices = beat.devices.length
        ? t("devicesSeen", { seen, total: beat.devices.length }) +
          (batteries.length ? ` · ${t("lowestBattery", { n: Math.min(...batteries) })}` : "")
        : "—";
      return h("tr", {},
        h("th", { scope: "row" }, h("time", { datetime: beat.received_at, text: time(beat.received_at) })),
        h("td", { text: beat.camera.present ? t("ok") + (beat.camera.fps !== null ? ` (${Math.round(beat.camera.fps)}/s)` : "") : t("absent") }),
        h("td", { text: beat.microphone.present ? t("ok") : t("absent") }),
        h("td", { text: devices }),
        h("td", { text: dash(beat.network.rtt_ms, (v) => `${Math.round(v)} ms`) }),
        h("td", { text: dash(beat.network.loss, percent) }),
        h("td", { text: dash(beat.system.cpu, percent) }),
        h("td", { text: dash(beat.system.temperature_c, (v) => t("degrees", { n: Math.round(v) })) }),
      );
    }),
  );
  renderChart(detail);
}

// The network's response time over the history, drawn with uPlot (the table above says the same in words).
function renderChart(detail) {
  const points = detail.history.filter((beat) => beat.network.rtt_ms !== null);
  const box = $("history-chart-box");
  if (points.length < 2) {
    detail.chart?.destroy();
    detail.chart = null;
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const xs = points.map((beat) => Date.parse(beat.received_at) / 1000);
  const ys = points.map((beat) => beat.network.rtt_ms);
  const rounded = ys.map(Math.round);
  $("history-chart-caption").textContent = t("chartCaption", {
    n: points.length, min: Math.min(...rounded), max: Math.max(...rounded),
  });
  if (detail.chart && detail.chartLang === state.lang) {
    detail.chart.setData([xs, ys]);
    return;
  }
  detail.chart?.destroy();
  const target = $("history-chart");
  target.replaceChildren();
  detail.chartLang = state.lang;
  detail.chart = new uPlot({
    width: Math.max(280, Math.min(720, box.clientWidth || 600)),
    height: 150,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(50, max * 1.2)] } },
    axes: [{ stroke: "#333" }, { stroke: "#333", label: t("chartAxis") }],
    series: [{}, { label: t("network"), stroke: "#0b3d91", width: 2, points: { show: points.length < 40 } }],
  }, [xs, ys], target);
}

function checkStatusWord(status) {
  return { ok: t("checkOk"), warning: t("checkWarning"), failed: t("checkFailed"), skipped: t("checkSkipped") }[status]
    ?? status;
}

function renderReport(detail) {
  const report = detail.report;
  const verdictNode = $("selftest-verdict");
  if (!report) {
    verdictNode.className = "verdict";
    verdictNode.textContent = detail.loaded ? t("reportNone") : "";
    $("selftest-checks").replaceChildren();
    return;
  }
  const at = time(report.finished_at || report.received_at);
  verdictNode.className = `verdict ${report.ok ? "ok" : "bad"}`;
  verdictNode.textContent = t(report.ok ? "reportOk" : "reportFailed", { time: at });
  $("selftest-checks").replaceChildren(
    ...report.checks.map((check) =>
      h("li", { class: `check-item ${check.status}`, dataset: { check: check.name, status: check.status } },
        h("strong", { text: `${checkName(check.name)} : ${checkStatusWord(check.status)}` }),
        check.required ? null : ` (${t("optional")})`,
        check.detail ? h("br") : null,
        check.detail ? h("span", { class: "detail", text: check.detail }) : null),
    ),
  );
}

async function runSelftest() {
  const detail = state.detail;
  if (!detail || detail.selftestRunning) return;
  detail.selftestRunning = true;
  setBusy($("run-selftest"), true);
  const message = $("selftest-message");
  message.classList.remove("error");
  message.textContent = t("selftestRunning");
  let text;
  let isError = true;
  try {
    const answer = await api("POST", `/api/v1/cabins/${encodeURIComponent(detail.id)}/selftest`);
    if (answer.ok) {
      detail.report = answer.data;
      text = t(answer.data.ok ? "selftestDoneOk" : "selftestDoneFailed");
      isError = !answer.data.ok;
    } else if (answer.status === 409) text = t("notConnected");
    else if (answer.status === 504) text = t("noAnswer");
    else text = t("selftestError", { reason: answer.data?.error ?? `HTTP ${answer.status}` });
  } catch (error) {
    text = error.status === 401 ? "" : t("unreachable");
  }
  detail.selftestRunning = false;
  if (state.detail !== detail) return;
  message.textContent = text;
  message.classList.toggle("error", isError);
  renderDetail();
}

function renderEvents(detail) {
  $("no-events").hidden = detail.events.length > 0 || !detail.loaded;
  $("events").replaceChildren(
    ...detail.events.map((event) =>
      h("li", {},
        h("time", { datetime: event.at, text: time(event.at) }),
        ` · ${word("event:", event.action)} (${word("actor:", event.actor)})`,
        event.detail ? h("span", { class: "detail", text: ` : ${event.detail}` }) : null),
    ),
  );
}

// --- remote settings ---------------------------------------------------------------------------------------------

function renderConfig(detail, cabin) {
  const unavailable = detail.config === "unavailable";
  $("config-unavailable").hidden = !unavailable;
  $("config-form").hidden = unavailable || detail.config === null;
  // The live snapshot says what the cabin does now; the GET said who sent the latest version and when.
  const loaded = unavailable ? null : detail.config;
  // Right after a PUT the snapshot may not know the new version yet: the newer of the two wins.
  const live = cabin.config && (loaded?.version ?? -1) <= (cabin.config.version ?? -1) ? cabin.config : loaded;
  const stateNode = $("config-state");
  const refusal = $("config-refusal");
  if (!live) {
    stateNode.textContent = unavailable ? "" : t("loading");
    refusal.hidden = true;
    return;
  }
  const lines = [];
  if (live.version === null || live.status === "none") lines.push(t("configNone"));
  else if (loaded && loaded.version === live.version && loaded.created_at) {
    lines.push(t("configLatestBy", { v: live.version, time: time(loaded.created_at), who: loaded.created_by ?? "?" }));
  } else lines.push(t("configLatest", { v: live.version }));
  lines.push(t("configRunning", { running: runningWords(live.running) }));
  if (live.status === "applied") lines.push(t("configApplied"));
  if (live.status === "pending") {
    lines.push(t("configPendingLong"));
    if (cabin.heartbeat?.in_session) lines.push(t("configAfterCall"));
  }
  if (live.status === "refused") lines.push(t("configRefusedLong"));
  stateNode.replaceChildren(...lines.flatMap((line, i) => (i ? [h("br"), line] : [line])));
  stateNode.dataset.status = live.status ?? "none";
  refusal.hidden = !(live.status === "refused" && live.refusal);
  refusal.textContent = refusal.hidden ? "" : t("configRefusal", { reason: live.refusal });
}

// What the cabin's heartbeat says it runs: "v3" (a version sent from here) or its file's digest.
function runningWords(running) {
  if (!running) return t("runningUnknown");
  const version = /^v(\d+)$/.exec(running);
  if (version) return t("runningVersion", { v: version[1] });
  return t("runningFile", { digest: running });
}

// The settings last set from afar, and the form's values when it was filled: only what the operator changes is
// sent, on top of the former (a field left as shown never overrides the cabin's own file with a default).
let configBase = {};
let configShown = {};

function formValues() {
  const boxes = [...$("config-languages").querySelectorAll("input")];
  return {
    size: $("config-size").value,
    fps: $("config-fps").value.trim(),
    battery: $("config-battery").value.trim(),
    allow: $("config-allow").value.split("\n").map((line) => line.trim()).filter(Boolean).join("\n"),
    languages: boxes.filter((box) => box.checked).map((box) => box.value).join(","),
  };
}

function fillConfigForm(settings) {
  configBase = structuredClone(settings);
  const camera = settings.camera ?? {};
  const size = `${camera.width ?? 640}x${camera.height ?? 480}`;
  const select = $("config-size");
  if (![...select.options].some((o) => o.value === size)) {
    select.append(h("option", { value: size, text: `${camera.width} × ${camera.height}` }));
  }
  select.value = size;
  $("config-fps").value = String(camera.fps ?? FPS_MAX);
  $("config-battery").value = String(settings.thresholds?.battery_low ?? BATTERY_LOW_PERCENT);
  $("config-allow").value = (settings.devices?.allow ?? []).join("\n");
  const languages = settings.screen?.languages ?? SCREEN_LANGUAGES;
  for (const box of $("config-languages").querySelectorAll("input")) box.checked = languages.includes(box.value);
  configShown = formValues();
}

function invalid(field, message) {
  field?.setAttribute("aria-invalid", "true");
  $("config-error").textContent = message;
  field?.focus();
  return null;
}

// The form as the PUT body, or null after saying what is wrong.
function readConfigForm() {
  for (const node of $("config-form").querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  $("config-error").textContent = "";
  const [width, height] = $("config-size").value.split("x").map(Number);
  const fpsText = $("config-fps").value.trim();
  const fps = Number(fpsText);
  if (!/^\d+$/.test(fpsText) || fps < FPS_MIN || fps > FPS_MAX) return invalid($("config-fps"), t("fpsInvalid"));
  const batteryText = $("config-battery").value.trim();
  const batteryLow = Number(batteryText);
  if (!/^\d+$/.test(batteryText) || batteryLow < 1 || batteryLow > 99) {
    return invalid($("config-battery"), t("batteryInvalid"));
  }
  const allow = $("config-allow").value.split("\n").map((line) => line.trim()).filter(Boolean);
  for (const entry of allow) {
    if (!BLUETOOTH_ADDRESS.test(entry) && !DEVICE_SERVICES.includes(entry.toLowerCase())) {
      return invalid($("config-allow"), t("allowInvalid", { entry }));
    }
  }
  const boxes = [...$("config-languages").querySelectorAll("input")];
  const languages = boxes.filter((box) => box.checked).map((box) => box.value);
  if (languages.length === 0) return invalid(boxes[0], t("languagesInvalid"));
  const now = formValues();
  const settings = structuredClone(configBase);
  const section = (name) => (settings[name] ??= {});
  if (now.size !== configShown.size) Object.assign(section("camera"), { width, height });
  if (now.fps !== configShown.fps) section("camera").fps = fps;
  if (now.battery !== configShown.battery) section("thresholds").battery_low = batteryLow;
  if (now.allow !== configShown.allow) section("devices").allow = allow;
  if (now.languages !== configShown.languages) section("screen").languages = languages;
  const camera = settings.camera;
  if (camera && (camera.width === undefined) !== (camera.height === undefined)) {
    Object.assign(camera, { width, height });
  }
  if (JSON.stringify(settings) === JSON.stringify(configBase)) return invalid(null, t("nothingChanged"));
  return { settings };
}

async function saveConfig(event) {
  event.preventDefault();
  const detail = state.detail;
  if (!detail || isBusy($("config-save"))) return;
  const body = readConfigForm();
  if (!body) return;
  const button = $("config-save");
  if (isBusy(button)) return;
  const message = $("config-message");
  setBusy(button, true);
  message.textContent = t("saving");
  try {
    const answer = await api("PUT", `/api/v1/cabins/${encodeURIComponent(detail.id)}/config`, body);
    if (state.detail !== detail) return;
    if (answer.ok) {
      detail.config = answer.data;
      fillConfigForm(answer.data.settings ?? body.settings);
      message.textContent = t("configSent", { v: answer.data.version });
    } else if (answer.status === 404 || answer.status === 405) {
      detail.config = "unavailable";
      message.textContent = "";
    } else {
      message.textContent = "";
      invalid(null, t("configRejected", { reason: answer.data?.error ?? `HTTP ${answer.status}` }));
    }
  } catch (error) {
    message.textContent = error.status === 401 ? "" : t("unreachable");
  } finally {
    setBusy(button, false);
  }
  renderDetail();
}

// --- wiring ------------------------------------------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  setStatus("");
  state.attempts = 0;
  connect();
});
$("logout").addEventListener("click", () => logout());
$("lang").addEventListener("click", () => {
  state.lang = state.lang === "fr" ? "en" : "fr";
  render();
});
$("detail-close").addEventListener("click", () => $("detail").close());
$("detail").addEventListener("close", closedDetail);
$("run-selftest").addEventListener("click", runSelftest);
$("config-form").addEventListener("submit", saveConfig);

state.tickTimer = setInterval(tick, TICK_MS);
buildConfigForm();
render();
if (sessionStorage.getItem(KEY)) connect();
else showLogin();
