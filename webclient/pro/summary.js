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
