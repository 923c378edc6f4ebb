// The end of a consultation: a printable summary and the FHIR R4 Bundle built by the cabin.
import { flagsFor, KINDS } from "/static/pro/vitals-panel.js";

export function renderSummary({ table, meta, panel, appointment, t, lang }) {
  const body = table.tBodies[0];
  body.replaceChildren();
  const when = new Date().toLocaleString(lang);
  meta.textContent = appointment
    ? `${t("summaryMeta")} ${when} · ${t("kinds")[appointment.kind] ?? appointment.kind} · ${t("appointmentWith")} ${appointment.cabin_id}`
    : when;
  if (panel.history.length === 0) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 4;
    cell.textContent = t("noReadings");
    return;
  }
  for (const reading of panel.history) {
    const row = body.insertRow();
    row.insertCell().textContent = new Date(reading.measured_at).toLocaleTimeString(lang);
    row.insertCell().textContent = t(KINDS[reading.kind]?.label ?? reading.kind);
    const extra = panel.extras(reading);
    row.insertCell().textContent = panel.describe(reading) + (extra ? ` (${extra})` : "");
    row.insertCell().textContent = flagsFor(reading, panel.thresholds).map((f) => `${f.code} ${t(f.level)}`).join(", ");
  }
}

// The summary the doctor sends to the cabin's printer, as text blocks for pdf.js: the readings of this
// consultation and the doctor's words for the patient.
export function summaryBlocks({ panel, appointment, t, lang, note, doctor }) {
  const blocks = [{ text: t("summaryPaperTitle"), size: 18, bold: true }];
  const when = new Date().toLocaleString(lang, { dateStyle: "long", timeStyle: "short" });
  const by = doctor ? ` · ${doctor}` : "";
  blocks.push({ text: `${t("summaryMeta")} ${when}${by}`, gap: 4 });
  if (appointment) blocks.push({ text: `${t("appointmentWith")} ${appointment.cabin_id}` });
  blocks.push({ text: t("summaryTitle"), size: 13, bold: true, gap: 14 });
  if (panel.history.length === 0) blocks.push({ text: t("noReadings") });
  for (const reading of panel.history) {
    const time = new Date(reading.measured_at).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    const extra = panel.extras(reading);
    const flags = flagsFor(reading, panel.thresholds).map((f) => t(f.level)).join(", ");
    const value = panel.describe(reading) + (extra ? ` (${extra})` : "");
    blocks.push({ text: `${time}   ${t(KINDS[reading.kind]?.label ?? reading.kind)} : ${value}${flags ? ` — ${flags}` : ""}` });
  }
  const words = String(note ?? "").trim();
  if (words) {
    blocks.push({ text: t("summaryNoteTitle"), size: 13, bold: true, gap: 14 });
    blocks.push({ text: words });
  }
  blocks.push({ text: t("summaryFooter"), size: 9, gap: 24 });
  return blocks;
}

export function downloadJson(data, filename) {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/fhir+json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
