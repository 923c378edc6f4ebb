"""`cabine decode CHARACTERISTIC HEX`: JSON on stdout, or exit 2 and one error line on stderr.

The temperature payload is [NordicHT] (NordicSemiconductor/Android-BLE-Common-Library,
ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/ht/TemperatureMeasurementDataCallbackTest.java);
the blood-pressure one is [NordicBP] _minimal from .../callback/bps/BloodPressureMeasurementDataCallbackTest.java;
the heart-rate one extends [NordicHR] _uint8 from .../callback/hr/HeartRateMeasurementDataCallbackTest.java.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from cabine.cli.decode import CLI_DEVICE, parse_hex, run
from gateway.errors import DecodeError

NORDIC_HT = "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def ok(*argv: str) -> dict[str, Any]:
    code, out, err = cli(*argv)
    assert (code, err) == (0, "")
    result: dict[str, Any] = json.loads(out)
    assert out.startswith('{\n  "characteristic"')  # indent 2
    return result


def fails(*argv: str) -> str:
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1
    assert err.startswith("cabine decode: error: ")
    return err.removeprefix("cabine decode: error: ").rstrip("\n")


def test_temperature() -> None:
    result = ok("2A1C", NORDIC_HT)
    assert result["characteristic"] == "0x2A1C"
    assert result["kind"] == "body-temperature"
    assert (result["value"], result["unit"], result["no_value"]) == (37.6, "Cel", None)
    assert result["measured_at"] == "2012-12-05T11:50:27+00:00"
    assert result["time_source"] == "device"
    assert (
        result["device"]
        == CLI_DEVICE.to_wire()
        == {
            "address": "cli",
            "name": "",
            "manufacturer": "",
            "model": "",
            "serial": "",
            "firmware": "",
        }
    )
    assert result["details"] == {"temperature-type": "finger"}
    assert set(result) == {
        "characteristic",
        "kind",
        "value",
        "unit",
        "no_value",
        "quantities",
        "measured_at",
        "time_source",
        "device",
        "status",
        "details",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ("0x2a35", "00BDF00B009FF0"),
        ("00002a35-0000-1000-8000-00805f9b34fb", "00:BD:F0:0B:00:9F:F0"),
        ("2A35", "0x00 0xBD 0xF0 0x0B 0x00 0x9F 0xF0"),
        ("2A35", "00", "BD", "F0", "0B", "00", "9F", "F0"),
        ("2A35", "00bdf0,0b009f f0"),
    ],
)
def test_hex_forms(argv: tuple[str, ...]) -> None:
    result = ok(*argv)
    assert [q["value"] for q in result["quantities"]] == [18.9, 11.0, 15.9]


def test_special_value_is_null_with_a_reason() -> None:
    result = ok("2A1C", "00 FF FF 7F 00")
    assert result["value"] is None
    assert result["no_value"] == "nan"


def test_heart_rate_rr_intervals_are_an_array_of_seconds() -> None:
    result = ok("2A37", "1E 55 32 00 21 00 00 04")  # [NordicHR] _uint8 plus a second interval of 1024/1024 s
    assert result["details"] == {"energy-expended-kj": 50, "rr-intervals": [33 / 1024, 1.0]}
    assert result["value"] == 85.0


def test_battery_and_strings() -> None:
    assert ok("2A19", "64") == {"characteristic": "0x2A19", "name": "Battery Level", "value": 100, "unit": "%"}
    assert ok("2A1D", "03")["value"] == "ear"
    assert ok("2A29", "41 26 44 00")["value"] == "A&D"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("2A35", "02 78 00 50 00"),
            "0x2A35 Blood Pressure Measurement: payload is 5 bytes, flags 0x02 need 14",
        ),
        (("2A1C", "06 6"), "HEX group '6' has an odd number of digits (1)"),
        (("2A1C", "0x"), "HEX group '0x' has no digits"),
        (("2A1C", "06 zz"), "HEX has a non-hex character 'z' in 'zz'"),
        (("2A1C", "   "), "HEX is empty: give the payload bytes, e.g. '06 6D 01 00 FF'"),
        (("2A19", "65"), "0x2A19 Battery Level: 101 is not a percentage (0..100)"),
        (("2A29", "ff"), "0x2A29 Manufacturer Name String: not valid UTF-8 at byte 0 (invalid start byte)"),
        (("12345", "00"), "characteristic '12345' is not a UUID"),
        (("1234", "00"), "characteristic 0x1234 is not supported (supported: 2A19"),
        (("2A1C",), "expected CHARACTERISTIC and HEX; usage: cabine decode CHARACTERISTIC HEX"),
        ((), "expected CHARACTERISTIC and HEX"),
    ],
)
def test_errors(argv: tuple[str, ...], message: str) -> None:
    assert fails(*argv).startswith(message)


def test_help() -> None:
    code, out, err = cli("--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: cabine decode CHARACTERISTIC HEX")


def test_parse_hex() -> None:
    assert parse_hex("0x066D0100FF") == bytes.fromhex("066D0100FF")
    with pytest.raises(DecodeError):
        parse_hex("-")


def test_module_entry_point_has_no_traceback() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "cabine.cli.decode", "2A1C", NORDIC_HT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0
    assert json.loads(good.stdout)["value"] == 37.6
    bad = subprocess.run(
        [sys.executable, "-m", "cabine.cli.decode", "2A1C", "06 B0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert (
        bad.stderr == "cabine decode: error: 0x2A1C Temperature Measurement: payload is 2 bytes, flags 0x06 need 13\n"
    )
