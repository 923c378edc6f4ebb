"""FHIR R4 mapping: every reading kind becomes a valid vital-signs Observation; bundles validate.

Validation uses fhir.resources' R4B models (fhir.resources 8 ships R4B and R5, not R4.0.1; Observation and
Bundle are structurally the same in R4 and R4B). Expected codes: LOINC per the R4 vital-signs profiles
(hl7.org/fhir/R4/observation-vitalsigns.html), MDC codes per IEEE 11073-10101 as cited in gateway/devices/fhir.py
(e.g. the US Core pulse-oximetry example codes SpO2 as LOINC 2708-6 + 59408-5 + MDC 150456).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from cabine.demo.encode import (
    encode_blood_pressure,
    encode_heart_rate,
    encode_plx_continuous,
    encode_plx_spot_check,
    encode_temperature,
    encode_weight,
)
from gateway.devices.fhir import DATA_ABSENT_SYSTEM, LOCAL_SYSTEM, LOINC, MDC, UCUM, bundle, observation
from gateway.devices.gatt import decode
from gateway.devices.readings import DeviceIdentity, NoValue, Reading

DEVICE = DeviceIdentity(
    address="00:5F:BF:00:10:71", name="BP", manufacturer="OMRONHEALTHCARE", model="HEM-9200T", serial="20150200002A"
)
NOW = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
WHEN = datetime(2025, 3, 1, 11, 58, 30)


def reading(uuid16: int, payload: bytes) -> Reading:
    return decode(uuid16, payload, device=DEVICE, received_at=NOW)


def codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def validate(obs: dict[str, Any]) -> None:
    Observation.model_validate(obs)
    # obs-6: dataAbsentReason only when there is no value; the same for each component.
    for element in [obs, *obs.get("component", [])]:
        assert not ("valueQuantity" in element and "dataAbsentReason" in element)
    # obs-7: a component code equal to the Observation code means no value on the Observation.
    if "valueQuantity" in obs:
        for component in obs.get("component", []):
            assert not codes(component["code"]) & codes(obs["code"])


def test_temperature() -> None:
    obs = observation(reading(0x2A1C, encode_temperature(37.6, timestamp=WHEN, temperature_type=3)))
    validate(obs)
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }
    assert codes(obs["code"]) == {(LOINC, "8310-5"), (MDC, "150364")}
    assert obs["valueQuantity"] == {"value": 37.6, "unit": "°C", "system": UCUM, "code": "Cel"}
    assert obs["effectiveDateTime"] == "2025-03-01T11:58:30+00:00"
    assert obs["bodySite"] == {"text": "ear"}
    assert obs["device"] == {"display": "OMRONHEALTHCARE HEM-9200T serial 20150200002A [00:5F:BF:00:10:71]"}
    assert obs["meta"]["profile"] == [
        "http://hl7.org/fhir/StructureDefinition/vitalsigns",
        "http://hl7.org/fhir/StructureDefinition/bodytemp",
    ]
    assert "note" not in obs


def test_fahrenheit() -> None:
    obs = observation(reading(0x2A1C, encode_temperature(98.6, fahrenheit=True)))
    validate(obs)
    assert obs["valueQuantity"]["code"] == "[degF]"
    assert obs["effectiveDateTime"] == "2025-03-01T12:00:00.250000+00:00"
    assert obs["note"] == [{"text": "Time of reception by the cabin gateway (no usable device time)."}]


def test_blood_pressure_panel() -> None:
    obs = observation(
        reading(0x2A35, encode_blood_pressure(128, 82, 97, pulse_rate=64, timestamp=WHEN, status={"cuff-too-loose"}))
    )
    validate(obs)
    assert codes(obs["code"]) == {(LOINC, "85354-9"), (MDC, "150020")}
    assert "valueQuantity" not in obs
    components = {
        next(c["code"] for c in comp["code"]["coding"] if c["system"] == LOINC): comp for comp in obs["component"]
    }
    assert set(components) == {"8480-6", "8462-4", "8478-0", "8867-4"}
    assert codes(components["8480-6"]["code"]) == {(LOINC, "8480-6"), (MDC, "150021")}
    assert codes(components["8462-4"]["code"]) == {(LOINC, "8462-4"), (MDC, "150022")}
    assert codes(components["8478-0"]["code"]) == {(LOINC, "8478-0"), (MDC, "150023")}
    assert codes(components["8867-4"]["code"]) == {(LOINC, "8867-4"), (MDC, "149546")}
    assert components["8480-6"]["valueQuantity"] == {"value": 128.0, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    assert components["8867-4"]["valueQuantity"]["code"] == "/min"
    assert "http://hl7.org/fhir/StructureDefinition/bp" in obs["meta"]["profile"]
    assert obs["note"] == [{"text": "Device status: cuff-too-loose."}]


def test_blood_pressure_in_kpa_is_not_converted_nor_claims_the_bp_profile() -> None:
    obs = observation(reading(0x2A35, encode_blood_pressure(18.9, 11, 15.9, kpa=True)))
    validate(obs)
    assert obs["component"][0]["valueQuantity"]["code"] == "kPa"
    assert obs["component"][0]["valueQuantity"]["value"] == 18.9
    assert obs["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]


def test_missing_mean_pressure_has_a_data_absent_reason() -> None:
    obs = observation(reading(0x2A35, encode_blood_pressure(128, 82, NoValue.NAN)))
    validate(obs)
    mean = obs["component"][2]
    assert "valueQuantity" not in mean
    assert mean["dataAbsentReason"]["coding"] == [{"system": DATA_ABSENT_SYSTEM, "code": "not-a-number"}]


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (NoValue.NAN, "not-a-number"),
        (NoValue.NRES, "error"),
        (NoValue.POSITIVE_INFINITY, "positive-infinity"),
        (NoValue.NEGATIVE_INFINITY, "negative-infinity"),
        (NoValue.RESERVED, "error"),
    ],
)
def test_data_absent_reasons(reason: NoValue, code: str) -> None:
    obs = observation(reading(0x2A1C, encode_temperature(reason)))
    validate(obs)
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"] == [{"system": DATA_ABSENT_SYSTEM, "code": code}]


def test_heart_rate() -> None:
    obs = observation(reading(0x2A37, encode_heart_rate(72, sensor_contact=False)))
    validate(obs)
    assert codes(obs["code"]) == {(LOINC, "8867-4"), (MDC, "147842")}
    assert obs["valueQuantity"] == {"value": 72.0, "unit": "/min", "system": UCUM, "code": "/min"}
    assert obs["note"][-1] == {"text": "Device status: sensor-contact-not-detected, sensor-contact-supported."}
    assert "component" not in obs


def test_heart_rate_rr_intervals_are_components_in_seconds() -> None:
    obs = observation(reading(0x2A37, encode_heart_rate(72, rr_intervals=[0.8330078125, 0.5, 33 / 1024])))
    validate(obs)
    assert [codes(c["code"]) for c in obs["component"]] == [{(MDC, "147240")}] * 3
    assert obs["component"][0]["code"]["coding"][0]["display"] == "MDC_ECG_TIME_PD_RR_GL"
    assert [c["valueQuantity"] for c in obs["component"]] == [
        {"value": seconds, "unit": "s", "system": UCUM, "code": "s"} for seconds in (0.8330078125, 0.5, 33 / 1024)
    ]
    assert obs["valueQuantity"]["value"] == 72.0
    Bundle.model_validate(bundle([reading(0x2A37, encode_heart_rate(60, rr_intervals=[1.0]))], patient_display=None))


def test_oxygen_saturation_spot_check() -> None:
    obs = observation(
        reading(
            0x2A5E,
            encode_plx_spot_check(
                97, 64, timestamp=WHEN, measurement_status={"early-estimated-data"}, pulse_amplitude_index=NoValue.NAN
            ),
        )
    )
    validate(obs)
    assert codes(obs["code"]) == {(LOINC, "59408-5"), (LOINC, "2708-6"), (MDC, "150456")}
    assert obs["valueQuantity"] == {"value": 97.0, "unit": "%", "system": UCUM, "code": "%"}
    assert obs["status"] == "preliminary"
    pulse, pai = obs["component"]
    assert codes(pulse["code"]) == {(LOINC, "8889-8"), (MDC, "149530")}
    assert codes(pai["code"]) == {(MDC, "150448")}
    assert pai["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"
    assert "http://hl7.org/fhir/StructureDefinition/oxygensat" in obs["meta"]["profile"]


def test_oxygen_saturation_continuous_fast_slow() -> None:
    obs = observation(
        reading(0x2A5F, encode_plx_continuous(98, 70, fast=(97, 71), slow=(98, 69), pulse_amplitude_index=4.5))
    )
    validate(obs)
    local = [c for c in obs["component"] if c["code"]["coding"][0]["system"] == LOCAL_SYSTEM]
    assert [c["code"]["coding"][0]["code"] for c in local] == [
        "spo2-fast",
        "pulse-rate-fast",
        "spo2-slow",
        "pulse-rate-slow",
    ]
    assert obs["component"][-1]["valueQuantity"] == {"value": 4.5, "unit": "%", "system": UCUM, "code": "%"}


def test_body_weight_with_bmi_and_height() -> None:
    obs = observation(reading(0x2A9D, encode_weight(72.5, bmi=23.7, height=1.75, timestamp=WHEN)))
    validate(obs)
    assert codes(obs["code"]) == {(LOINC, "29463-7"), (MDC, "188736")}
    assert obs["valueQuantity"] == {"value": 72.5, "unit": "kg", "system": UCUM, "code": "kg"}
    bmi, height = obs["component"]
    assert codes(bmi["code"]) == {(LOINC, "39156-5"), (MDC, "188752")}
    assert bmi["valueQuantity"]["code"] == "kg/m2"
    assert codes(height["code"]) == {(LOINC, "8302-2"), (MDC, "188740")}
    assert height["valueQuantity"] == {"value": 1.75, "unit": "m", "system": UCUM, "code": "m"}


def test_body_weight_imperial_and_unsuccessful() -> None:
    obs = observation(reading(0x2A9D, encode_weight(160.2, imperial=True, bmi=24.0, height=68.5)))
    validate(obs)
    assert obs["valueQuantity"]["code"] == "[lb_av]"
    assert obs["component"][1]["valueQuantity"]["code"] == "[in_i]"
    failed = observation(reading(0x2A9D, encode_weight(None)))
    validate(failed)
    assert failed["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"


def test_bundle_validates_and_is_deterministic() -> None:
    readings = [
        reading(0x2A1C, encode_temperature(36.9)),
        reading(0x2A35, encode_blood_pressure(120, 80, 93, pulse_rate=60)),
        reading(0x2A37, encode_heart_rate(60)),
        reading(0x2A5E, encode_plx_spot_check(98, 60)),
        reading(0x2A5F, encode_plx_continuous(98, 60, fast=(97, 61))),
        reading(0x2A9D, encode_weight(80)),
    ]
    result = bundle(readings, patient_display="Camille Martin")
    model = Bundle.model_validate(result)
    assert model.type == "collection"
    assert len(result["entry"]) == 6
    for entry in result["entry"]:
        validate(entry["resource"])
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
        assert entry["resource"]["subject"] == {"display": "Camille Martin"}
    assert len({e["fullUrl"] for e in result["entry"]}) == 6
    assert bundle(readings, patient_display="Camille Martin") == result


def test_bundle_without_patient() -> None:
    result = bundle([reading(0x2A37, encode_heart_rate(60))], patient_display=None)
    Bundle.model_validate(result)
    assert "subject" not in result["entry"][0]["resource"]


def test_empty_bundle() -> None:
    result = bundle([], patient_display=None)
    Bundle.model_validate(result)
    assert result == {"resourceType": "Bundle", "type": "collection"}  # FHIR JSON arrays are never empty
