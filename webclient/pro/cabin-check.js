// One plain sentence about the cabin's parts that its latest self-test found failing ("The cabin's thermometer is
// not responding"), from the check names signaling sends (camera, microphone, device:thermometer...).

const PARTS = {
  fr: {
    camera: "la caméra",
    microphone: "le micro",
    "bluetooth-adapter": "le Bluetooth",
    signaling: "la connexion au service",
    ice: "le relais réseau",
    "device:thermometer": "le thermomètre",
    "device:blood-pressure": "le tensiomètre",
    "device:pulse-oximeter": "l'oxymètre",
    "device:heart-rate": "le cardiofréquencemètre",
    "device:weight-scale": "la balance",
    device: "un appareil médical",
    other: "un élément",
  },
  en: {
    camera: "camera",
    microphone: "microphone",
    "bluetooth-adapter": "Bluetooth",
    signaling: "connection to the service",
    ice: "network relay",
    "device:thermometer": "thermometer",
    "device:blood-pressure": "blood-pressure monitor",
    "device:pulse-oximeter": "oximeter",
    "device:heart-rate": "heart-rate monitor",
    "device:weight-scale": "scale",
    device: "medical device",
    other: "equipment",
  },
};

function part(name, words) {
  if (name in words) return words[name];
  return name.startsWith("device:") ? words.device : words.other;
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The sentence for these failed check names, or "" when every part works. */
export function cabinCheckSentence(failed, lang) {
  const names = [...new Set(failed ?? [])];
  if (!names.length) return "";
  const words = PARTS[lang] ?? PARTS.fr;
  const parts = [...new Set(names.map((name) => part(name, words)))];
  if (lang === "en") {
    if (parts.length === 1) return `The cabin's ${parts[0]} is not responding. The operator has been told.`;
    return `In the cabin, these are not responding: ${parts.join(", ")}. The operator has been told.`;
  }
  if (parts.length === 1) return `${capitalize(parts[0])} de la cabine ne répond pas. L'exploitant est prévenu.`;
  return `Dans la cabine, ne répondent pas : ${parts.join(", ")}. L'exploitant est prévenu.`;
}
