"""The cabin's configuration file: every key, every refusal with the file, the key and the reason; the command line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import (
    CabinSettings,
    DeviceAllowlist,
    load_settings,
    parse_override,
    settings_from_mapping,
)
from gateway.errors import ConfigError
from gateway.identity import default_key_file
from gateway.media.spec import SourceSpec, VideoCodec

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
[signaling]
server = "https://visio.example.org"
ca_file = "/etc/cabine/ca.crt"
key_file = "/etc/cabine/cabin.key"

[camera]
source = "v4l2:/dev/video0"
width = 1280
height = 720
fps = 25
codec = "h264"

[microphone]
source = "pulse:default"

[devices]
allow = ["a4:c1:38:12:34:56", "Blood-Pressure"]
adapter = "hci1"

[screen]
port = 8090
languages = ["en", "fr"]

[ice]
addresses = ["192.168.1.10"]

[calls]
auto_checkin = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cabin.toml"
    path.write_text(text)
    return path


def test_every_key_is_read(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.signaling.server == "https://visio.example.org"
    assert settings.signaling.ws_url == "wss://visio.example.org"
    assert settings.signaling.ca_file == Path("/etc/cabine/ca.crt")
    assert settings.camera.source == SourceSpec("v4l2", "/dev/video0")
    assert (settings.camera.width, settings.camera.height, settings.camera.fps) == (1280, 720, 25)
    assert settings.camera.codec is VideoCodec.H264
    assert settings.microphone.source == SourceSpec("pulse", "default")
    assert settings.devices.allow == DeviceAllowlist(addresses=("A4:C1:38:12:34:56",), services=("blood-pressure",))
    assert settings.devices.allow.service_uuids == (0x1810,)
    assert settings.devices.adapter == "hci1"
    assert settings.screen.port == 8090 and settings.screen.languages == ("en", "fr")
    assert settings.ice.addresses == ("192.168.1.10",)
    assert settings.calls.auto_checkin is True


def test_defaults_and_one_key_file_for_enroll_and_gateway() -> None:
    settings = settings_from_mapping({"signaling": {"server": "https://s.example.org"}}, "test")
    assert settings.camera.source == SourceSpec("test") and settings.camera.codec is VideoCodec.VP8
    assert settings.screen.port == 8088 and settings.screen.languages == ("fr", "en")
    assert not settings.devices.allow
    assert settings.signaling.key_file == default_key_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[camera]\nfps = 0\n", "camera.fps: must be from 1 to 60, got 0"),
        ('[camera]\nfps = "30"\n', "camera.fps: must be a whole number, got '30'"),
        ("[camera]\nwidth = 641\n", "camera.width/height: the codecs need even sizes, got 641x480"),
        ('[camera]\nsource = "webcam"\n', "camera.source: unknown video source 'webcam'"),
        ('[camera]\ncodec = "av1"\n', "camera.codec: must be one of vp8, h264, got 'av1'"),
        (
            "[camera]\nzoom = 2\n",
            "camera.zoom: unknown key (known in [camera]: source, width, height, fps, codec, adapt, stamp)",
        ),
        ("[speaker]\nvolume = 3\n", "unknown section [speaker]"),
        ('[devices]\nallow = ["kettle"]\n', "devices.allow: 'kettle' is neither a Bluetooth address"),
        ('[devices]\nadapter = "usb0"\n', "devices.adapter: must be a BlueZ adapter name such as hci0"),
        ("[screen]\nport = 70000\n", "screen.port: must be from 1 to 65535 (or 0 for none), got 70000"),
        ('[screen]\nlanguages = ["de"]\n', "screen.languages: unknown language 'de': known are fr, en"),
        ("[screen]\nlanguages = []\n", "screen.languages: must name at least one language"),
        ('[ice]\naddresses = ["bogus"]\n', "ice.addresses: 'bogus' is not an IP address"),
        ('[calls]\nauto_checkin = "yes"\n', "calls.auto_checkin: must be true or false, got 'yes'"),
        ('[signaling]\nserver = "notaurl"\n', "signaling.server: must be the server's https:// URL"),
        ("camera = 3\n", "[camera] must be a table of keys"),
    ],
)
def test_a_wrong_key_or_value_names_the_file_the_key_and_the_reason(tmp_path: Path, text: str, message: str) -> None:
    server = '\n[signaling]\nserver = "https://s.example.org"\n'
    path = write(tmp_path, text if "[signaling]" in text else text + server)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_only_the_test_pattern_is_stamped(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r'cabin.toml: camera.stamp: only the test pattern is stamped \(camera.source = "test"\)$'
    ):
        load_settings(write(tmp_path, GOOD.replace("[camera]", "[camera]\nstamp = true")))
    stamped = load_settings(
        write(tmp_path, GOOD.replace('source = "v4l2:/dev/video0"', 'source = "test"\nstamp = true'))
    )
    assert stamped.camera.stamp is True


def test_a_file_that_is_not_toml_or_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cabin.toml: not valid TOML: .*line 1"):
        load_settings(write(tmp_path, "camera fps 30"))
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the configuration file: No such file"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"signaling.server: required"):
        load_settings(write(tmp_path, "[camera]\nfps = 15\n"))


def test_the_command_line_overrides_any_key_and_is_named_when_wrong(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    overrides = [parse_override("camera.fps=15"), parse_override('devices.allow=["thermometer"]')]
    overrides.append(parse_override("camera.source=v4l2:/dev/video1"))  # a bare word is a string
    settings = load_settings(path, overrides)
    assert settings.camera.fps == 15
    assert settings.devices.allow == DeviceAllowlist(services=("thermometer",))
    assert settings.camera.source == SourceSpec("v4l2", "/dev/video1")
    with pytest.raises(ConfigError, match=r"^--set camera.fps: must be from 1 to 60, got 99$"):
        load_settings(path, [parse_override("camera.fps=99")])
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        parse_override("fps=3")
    # A mistake in the file is reported against the file, even when the command line sets that key too.
    broken = write(tmp_path, GOOD.replace("fps = 25", "fps = 0"))
    with pytest.raises(ConfigError, match=r"cabin.toml: camera.fps"):
        load_settings(broken, [parse_override("camera.fps=15")])


def test_the_effective_configuration_reads_back_the_same(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    again = settings_from_mapping(tomllib.loads(settings.to_toml()), "printed")
    assert again == settings
    assert settings_from_mapping(tomllib.loads(CabinSettings().to_toml()), "printed", require_server=False) == (
        CabinSettings()
    )


def test_the_sample_in_deploy_is_a_valid_configuration() -> None:
    settings = load_settings(ROOT / "deploy" / "cabin.toml")
    assert settings.signaling.server.startswith("https://")


def cabine(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cabine", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_cabine_gateway_config_and_its_errors(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    shown = cabine("gateway", "config", "--config", str(path), "--fps", "12", "--device", "thermometer", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    printed = tomllib.loads(shown.stdout)
    assert printed["camera"]["fps"] == 12 and printed["devices"]["allow"] == ["thermometer"]
    assert printed["camera"]["codec"] == "h264"

    bad = write(tmp_path, GOOD.replace("fps = 25", "fps = 0"))
    refused = cabine("gateway", "--config", str(bad), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == f"cabine gateway: error: {bad}: camera.fps: must be from 1 to 60, got 0\n"

    here = GOOD.replace('ca_file = "/etc/cabine/ca.crt"', 'ca_file = ""')
    no_key = write(tmp_path, here.replace("/etc/cabine/cabin.key", str(tmp_path / "absent.key")))
    refused = cabine("gateway", "selftest", "--config", str(no_key), "--video", "test", "--audio", "test", cwd=tmp_path)
    assert refused.returncode == 2
    assert "cannot read the cabin key" in refused.stderr and "cabine cabin enroll" in refused.stderr
    assert "Traceback" not in refused.stderr

    refused = cabine("gateway", "selftest", "--config", str(write(tmp_path, here)), cwd=tmp_path)
    assert refused.returncode == 2
    assert "camera.source: camera /dev/video0 does not exist" in refused.stderr


def test_the_paper_section_names_a_cups_queue_and_a_sane_device() -> None:
    from gateway.config import settings_from_mapping
    from gateway.errors import ConfigError

    paper = {"printer": "Brother_HL-L2350DW", "scanner": "epson2:libusb:001:004"}
    settings = settings_from_mapping({"paper": paper}, "cabin.toml", require_server=False)
    assert (settings.paper.printer, settings.paper.scanner) == ("Brother_HL-L2350DW", "epson2:libusb:001:004")
    with pytest.raises(ConfigError, match=r"paper\.printer: a CUPS queue name has letters"):
        settings_from_mapping({"paper": {"printer": "my printer"}}, "cabin.toml", require_server=False)
    with pytest.raises(ConfigError, match=r"paper\.scanner: a SANE device name is backend:address"):
        settings_from_mapping({"paper": {"scanner": "scanner"}}, "cabin.toml", require_server=False)


def test_the_microphone_processing_can_be_turned_off_each_part_alone() -> None:
    from gateway.config import CabinConfig, settings_from_mapping
    from gateway.errors import ConfigError
    from gateway.identity import CabinIdentity
    from gateway.sound.settings import SoundSettings

    defaults = settings_from_mapping({}, "cabin.toml", require_server=False).microphone
    assert (defaults.echo_cancellation, defaults.noise_suppression, defaults.gain_control) == (True, True, False)
    speakerphone = {"microphone": {"echo_cancellation": False, "noise_suppression": False, "gain_control": True}}
    settings = settings_from_mapping(
        {**speakerphone, "signaling": {"server": "https://s.example.org"}}, "cabin.toml", require_server=True
    )
    config = CabinConfig.from_settings(settings, CabinIdentity.generate("cab-1"))
    assert config.sound == SoundSettings(echo_cancellation=False, noise_suppression=False, gain_control=True)
    with pytest.raises(ConfigError, match=r"microphone\.echo_cancellation: must be true or false, got 'off'"):
        settings_from_mapping({"microphone": {"echo_cancellation": "off"}}, "cabin.toml", require_server=False)
