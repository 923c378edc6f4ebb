"""Readings as FHIR R4 vital-signs Observations and a collection Bundle, as plain JSON-ready dicts.

Pure: no I/O, and no FHIR library in the product code (the tests validate the output with fhir.resources).
Each Observation carries the LOINC code the R4 vital-signs profiles require, the IEEE 11073-10101 (MDC) code
alongside it in `code.coding`, UCUM quantities, `effectiveDateTime`, the device as a display reference, and a
`dataAbsentReason` wherever the device sent an IEEE 11073 special value instead of a number.

MDC codes are `partition * 65536 + term` (partition 2, SCADA): MDC_TEMP_BODY 19292 -> 150364,
MDC_PRESS_BLD_NONINV 18948 -> 150020 (_SYS 150021, _DIA 150022, _MEAN 150023), MDC_PULS_RATE_NON_INV 18474 ->
149546, MDC_PULS_OXIM_SAT_O2 19384 -> 150456, MDC_PULS_OXIM_PULS_RATE 18458 -> 149530, MDC_PULS_OXIM_PERF_REL
19376 -> 150448, MDC_MASS_BODY_ACTUAL 57664 -> 188736, MDC_LEN_BODY_ACTUAL 57668 -> 188740,
MDC_RATIO_MASS_BODY_LEN_SQ 57680 -> 188752, MDC_ECG_HEART_RATE 16770 -> 147842, MDC_ECG_TIME_PD_RR_GL 16168 ->
147240. Sources: the IEEE 11073-20601 nomenclature headers (e.g. Freescale's `NomenclatureCodes.h` in
cdealti/zigbee_firmware), the HL7 Personal Health Device IG blood-pressure example (150020/150021), the US Core
pulse-oximetry example (150456) and the German Medizininformatik-Initiative cardiology IG's RR-interval example
`mii-exa-kardio-ekg-rr-interval` (147240).

Choices: values are never converted (a kPa blood pressure stays in kPa; the specific vital-signs profile is
then not claimed, since it requires mm[Hg]). PLX fast/slow components have no LOINC or MDC code of their own
and use the local code system `LOCAL_SYSTEM`. A heart rate's RR intervals become one component each, in
seconds (UCUM `s`), in the order the device sent them. Status flags and a reception-time fallback become `note`
text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.devices.readings import DetailValue, NoValue, Quantity, Reading, ReadingKind, TimeSource

__all__ = [
    "DATA_ABSENT_SYSTEM",
    "LOCAL_SYSTEM",
    "LOINC",
    "MDC",
    "UCUM",
    "bundle",
    "observation",
]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:iso:std:iso:11073:10101"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
LOCAL_SYSTEM = "urn:cabine:fhir:reading-quantity"
"""Local codes (the Reading quantity codes) for components without a standard code."""

_PROFILE_BASE = "http://hl7.org/fhir/StructureDefinition/"
_BUNDLE_NAMESPACE = uuid.UUID("6f1d7f64-3f0e-5b8e-9a55-6361626e6531")
"""Namespace for the deterministic uuid5 ids of bundle entries."""


@dataclass(frozen=True, slots=True)
class _Code:
    """One coded concept: LOINC code(s) and the matching MDC code."""

    text: str
    loinc: tuple[tuple[str, str], ...]
    mdc: tuple[int, str] | None

    def concept(self) -> dict[str, Any]:
        coding: list[dict[str, Any]] = [{"system": LOINC, "code": c, "display": d} for c, d in self.loinc]
        if self.mdc is not None:
            coding.append({"system": MDC, "code": str(self.mdc[0]), "display": self.mdc[1]})
        return {"coding": coding, "text": self.text}


_TEMPERATURE = _Code("Body temperature", (("8310-5", "Body temperature"),), (150364, "MDC_TEMP_BODY"))
_BLOOD_PRESSURE = _Code(
    "Blood pressure",
    (("85354-9", "Blood pressure panel with all children optional"),),
    (150020, "MDC_PRESS_BLD_NONINV"),
)
_HEART_RATE = _Code("Heart rate", (("8867-4", "Heart rate"),), (147842, "MDC_ECG_HEART_RATE"))
_OXYGEN_SATURATION = _Code(
    "Oxygen saturation (SpO2)",
    (
        ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ("2708-6", "Oxygen saturation in Arterial blood"),
    ),
    (150456, "MDC_PULS_OXIM_SAT_O2"),
)
_BODY_WEIGHT = _Code("Body weight", (("29463-7", "Body weight"),), (188736, "MDC_MASS_BODY_ACTUAL"))
_RR_INTERVAL = _Code("R-R interval", (), (147240, "MDC_ECG_TIME_PD_RR_GL"))

_KIND_CODES: Mapping[ReadingKind, _Code] = MappingProxyType(
    {
        ReadingKind.BODY_TEMPERATURE: _TEMPERATURE,
        ReadingKind.BLOOD_PRESSURE: _BLOOD_PRESSURE,
        ReadingKind.HEART_RATE: _HEART_RATE,
        ReadingKind.OXYGEN_SATURATION: _OXYGEN_SATURATION,
        ReadingKind.BODY_WEIGHT: _BODY_WEIGHT,
    }
)

_COMPONENT_CODES: Mapping[tuple[ReadingKind, str], _Code] = MappingProxyType(
    {
        (ReadingKind.BLOOD_PRESSURE, "systolic"): _Code(
            "Systolic blood pressure",
            (("8480-6", "Systolic blood pressure"),),
            (150021, "MDC_PRESS_BLD_NONINV_SYS"),
        ),
        (ReadingKind.BLOOD_PRESSURE, "diastolic"): _Code(
            "Diastolic blood pressure",
            (("8462-4", "Diastolic blood pressure"),),
            (150022, "MDC_PRESS_BLD_NONINV_DIA"),
        ),
        (ReadingKind.BLOOD_PRESSURE, "mean"): _Code(
            "Mean blood pressure",
            (("8478-0", "Mean blood pressure"),),
            (150023, "MDC_PRESS_BLD_NONINV_MEAN"),
        ),
        (ReadingKind.BLOOD_PRESSURE, "pulse-rate"): _Code(
            "Pulse rate", (("8867-4", "Heart rate"),), (149546, "MDC_PULS_RATE_NON_INV")
        ),
        (ReadingKind.OXYGEN_SATURATION, "pulse-rate"): _Code(
            "Pulse rate (oximeter)",
            (("8889-8", "Heart rate by Pulse oximetry"),),
            (149530, "MDC_PULS_OXIM_PULS_RATE"),
        ),
        (ReadingKind.OXYGEN_SATURATION, "pulse-amplitude-index"): _Code(
            "Pulse amplitude index", (), (150448, "MDC_PULS_OXIM_PERF_REL")
        ),
        (ReadingKind.BODY_WEIGHT, "bmi"): _Code(
            "Body mass index",
            (("39156-5", "Body mass index (BMI) [Ratio]"),),
            (188752, "MDC_RATIO_MASS_BODY_LEN_SQ"),
        ),
        (ReadingKind.BODY_WEIGHT, "height"): _Code(
            "Body height", (("8302-2", "Body height"),), (188740, "MDC_LEN_BODY_ACTUAL")
        ),
    }
)

_LOCAL_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "spo2-fast": "SpO2, fast response",
        "pulse-rate-fast": "Pulse rate, fast response",
        "spo2-slow": "SpO2, slow response",
        "pulse-rate-slow": "Pulse rate, slow response",
    }
)

_UNIT_DISPLAY: Mapping[str, str] = MappingProxyType(
    {
        "Cel": "°C",
        "[degF]": "°F",
        "mm[Hg]": "mmHg",
        "kPa": "kPa",
        "/min": "/min",
        "%": "%",
        "kg": "kg",
        "[lb_av]": "lb",
        "kg/m2": "kg/m2",
        "m": "m",
        "[in_i]": "in",
        "s": "s",
    }
)

_PROFILES: Mapping[ReadingKind, tuple[str, frozenset[str]]] = MappingProxyType(
    {
        ReadingKind.BODY_TEMPERATURE: ("bodytemp", frozenset({"Cel", "[degF]"})),
        ReadingKind.BLOOD_PRESSURE: ("bp", frozenset({"mm[Hg]"})),
        ReadingKind.HEART_RATE: ("heartrate", frozenset({"/min"})),
        ReadingKind.OXYGEN_SATURATION: ("oxygensat", frozenset({"%"})),
        ReadingKind.BODY_WEIGHT: ("bodyweight", frozenset({"kg", "[lb_av]"})),
    }
)
"""The R4 vital-signs profile of each kind, and the primary units it allows."""

_DATA_ABSENT: Mapping[NoValue, tuple[str, str]] = MappingProxyType(
    {
        NoValue.NAN: ("not-a-number", "Not a number (IEEE 11073 NaN)"),
        NoValue.NRES: ("error", "Not at this resolution (IEEE 11073 NRes)"),
        NoValue.POSITIVE_INFINITY: ("positive-infinity", "Positive infinity (IEEE 11073 +INF)"),
        NoValue.NEGATIVE_INFINITY: ("negative-infinity", "Negative infinity (IEEE 11073 -INF)"),
        NoValue.RESERVED: ("error", "Reserved value (IEEE 11073)"),
    }
)

_PRELIMINARY = frozenset({"measurement-ongoing", "early-estimated-data"})
"""PLX statuses that make an Observation preliminary rather than final."""


def _value_quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": _UNIT_DISPLAY.get(unit, unit), "system": UCUM, "code": unit}


def _data_absent(reason: NoValue) -> dict[str, Any]:
    code, text = _DATA_ABSENT[reason]
    return {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": code}], "text": text}


def _set_value(target: dict[str, Any], quantity: Quantity) -> None:
    """Put a quantity's value (or its data-absent reason) into an Observation or component."""
    if quantity.value is not None:
        target["valueQuantity"] = _value_quantity(quantity.value, quantity.unit)
    elif quantity.no_value is not None:
        target["dataAbsentReason"] = _data_absent(quantity.no_value)


def _component(kind: ReadingKind, quantity: Quantity) -> dict[str, Any]:
    code = _COMPONENT_CODES.get((kind, quantity.code))
    if code is not None:
        concept = code.concept()
    else:
        text = _LOCAL_TEXT.get(quantity.code, quantity.code)
        concept = {"coding": [{"system": LOCAL_SYSTEM, "code": quantity.code, "display": text}], "text": text}
    component: dict[str, Any] = {"code": concept}
    _set_value(component, quantity)
    return component


def _pulse_amplitude_index(detail: DetailValue | None) -> Quantity | None:
    """The pulse amplitude index detail (a number, or a NoValue reason as text) as a Quantity."""
    code = "pulse-amplitude-index"
    if detail is None or isinstance(detail, bool | tuple):
        return None
    if isinstance(detail, int | float):
        return Quantity(code=code, value=float(detail), unit="%")
    try:
        return Quantity(code=code, value=None, unit="%", no_value=NoValue(detail))
    except ValueError:
        return None


def _rr_intervals(detail: DetailValue | None) -> list[dict[str, Any]]:
    """The RR-intervals detail (seconds) as components, one per interval."""
    if not isinstance(detail, tuple):
        return []
    return [{"code": _RR_INTERVAL.concept(), "valueQuantity": _value_quantity(seconds, "s")} for seconds in detail]


def _device_display(reading: Reading) -> str:
    device = reading.device
    name = " ".join(part for part in (device.manufacturer, device.model) if part) or device.name
    parts = [name] if name else []
    if device.serial:
        parts.append(f"serial {device.serial}")
    if device.firmware:
        parts.append(f"firmware {device.firmware}")
    parts.append(f"[{device.address}]")
    return " ".join(parts)


def _notes(reading: Reading) -> list[dict[str, str]]:
    notes = []
    if reading.time_source is TimeSource.RECEPTION:
        notes.append({"text": "Time of reception by the cabin gateway (no usable device time)."})
    if reading.status:
        notes.append({"text": "Device status: " + ", ".join(sorted(reading.status)) + "."})
    return notes


def observation(
    reading: Reading, *, patient_display: str | None = None, resource_id: str | None = None
) -> dict[str, Any]:
    """The reading as a FHIR R4 vital-signs Observation (a JSON-ready dict)."""
    kind = reading.kind
    obs: dict[str, Any] = {"resourceType": "Observation"}
    if resource_id is not None:
        obs["id"] = resource_id
    profile, units = _PROFILES[kind]
    profiles = [_PROFILE_BASE + "vitalsigns"]
    if reading.primary.unit in units:
        profiles.append(_PROFILE_BASE + profile)
    obs["meta"] = {"profile": profiles}
    obs["status"] = "preliminary" if reading.status & _PRELIMINARY else "final"
    obs["category"] = [
        {
            "coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}],
            "text": "Vital Signs",
        }
    ]
    obs["code"] = _KIND_CODES[kind].concept()
    if patient_display:
        obs["subject"] = {"display": patient_display}
    obs["effectiveDateTime"] = reading.measured_at.isoformat()
    details = dict(reading.details)
    temperature_type = details.get("temperature-type")
    if kind is ReadingKind.BLOOD_PRESSURE:
        quantities = reading.quantities
    else:
        _set_value(obs, reading.primary)
        quantities = reading.quantities[1:]
    if isinstance(temperature_type, str):
        obs["bodySite"] = {"text": temperature_type}
    obs["device"] = {"display": _device_display(reading)}
    components = [_component(kind, q) for q in quantities]
    pai = _pulse_amplitude_index(details.get("pulse-amplitude-index"))
    if kind is ReadingKind.OXYGEN_SATURATION and pai is not None:
        components.append(_component(kind, pai))
    if kind is ReadingKind.HEART_RATE:
        components += _rr_intervals(details.get("rr-intervals"))
    if components:
        obs["component"] = components
    notes = _notes(reading)
    if notes:
        obs["note"] = notes
    return obs


def _entry_id(reading: Reading, index: int) -> str:
    """A deterministic UUID for a bundle entry: the same readings give the same bundle."""
    content = json.dumps(reading.to_wire(), sort_keys=True, default=str)
    return str(uuid.uuid5(_BUNDLE_NAMESPACE, f"{index}:{content}"))


def bundle(readings: Iterable[Reading], *, patient_display: str | None) -> dict[str, Any]:
    """A FHIR R4 Bundle of type collection holding one Observation per reading."""
    entries = []
    for index, reading in enumerate(readings):
        entry_id = _entry_id(reading, index)
        entries.append(
            {
                "fullUrl": f"urn:uuid:{entry_id}",
                "resource": observation(reading, patient_display=patient_display, resource_id=entry_id),
            }
        )
    result: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if entries:  # FHIR JSON never has empty arrays
        result["entry"] = entries
    return result
