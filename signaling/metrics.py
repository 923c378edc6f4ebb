"""The server's figures for Prometheus (prometheus-client): counters of what happened, gauges of the fleet now.

Each app has its own registry (tests run several apps in one process). Cabins sit behind NAT and are never
scraped: their figures come from their heartbeats, read at scrape time. Labels name cabins, devices and reasons,
never a citizen, an appointment or a reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.alerts import AlertBook, AlertKind
from signaling.fleet import Fleet, parse_time

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class FleetCollector(Collector):
    """Gauges read from the fleet and the alert book at each scrape."""

    def __init__(self, fleet: Fleet, alerts: AlertBook, rooms: Callable[[], int], clock: Callable[[], datetime]):
        self._fleet, self._alerts, self._rooms, self._clock = fleet, alerts, rooms, clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        fleet = self._fleet
        yield _gauge("cabine_cabins_online", "Cabins connected to this server now.", fleet.online_count())
        yield _gauge("cabine_rooms", "Waiting rooms and calls held in memory.", self._rooms())
        open_alerts = GaugeMetricFamily("cabine_alerts_open", "Open alerts, by kind.", labels=["kind"])
        counts = {kind: 0 for kind in AlertKind}
        for alert in self._alerts.open_alerts():
            counts[alert.kind] += 1
        for kind, count in counts.items():
            open_alerts.add_metric([kind.value], count)
        yield open_alerts

        per_cabin = {
            name: GaugeMetricFamily(f"cabine_cabin_{name}", text, labels=["cabin"])
            for name, text in (
                ("up", "1 if the cabin is connected."),
                ("heartbeat_age_seconds", "Seconds since the cabin's last heartbeat."),
                ("uptime_seconds", "The cabin gateway's uptime."),
                ("rtt_seconds", "Round trip from the cabin to signaling."),
                ("signaling_loss_ratio", "Share of the cabin's recent pings left unanswered."),
                ("cpu_ratio", "The cabin PC's load, share of all cores."),
                ("memory_ratio", "Share of the cabin PC's memory in use."),
                ("disk_ratio", "Share of the cabin PC's system disk in use."),
                ("temperature_celsius", "The cabin PC's temperature, where it exposes one."),
                ("camera_fps", "Frames per second from the camera during a call."),
                ("clock_offset_seconds", "The cabin's clock minus the server's."),
                ("in_session", "1 while a call runs in the cabin."),
            )
        }
        info = InfoMetricFamily("cabine_cabin", "The cabin's software and configuration.", labels=["cabin"])
        battery = GaugeMetricFamily(
            "cabine_device_battery_percent", "A medical device's battery.", labels=["cabin", "device"]
        )
        connected = GaugeMetricFamily(
            "cabine_device_connected", "1 if the medical device is connected.", labels=["cabin", "device"]
        )
        last_reading = GaugeMetricFamily(
            "cabine_device_last_reading_timestamp_seconds",
            "When the device last gave a reading (Unix time; never its value).",
            labels=["cabin", "device"],
        )
        for cabin_id, life in fleet.items():
            per_cabin["up"].add_metric([cabin_id], 1.0 if life.online else 0.0)
            latest = life.latest
            if latest is None:
                continue
            hb = latest.heartbeat
            per_cabin["heartbeat_age_seconds"].add_metric([cabin_id], (now - latest.received_at).total_seconds())
            info.add_metric([cabin_id], {"software": hb.software, "config_version": hb.config_version})
            if not life.online:
                continue
            figures: Iterable[tuple[str, float | None]] = (
                ("uptime_seconds", hb.uptime_s),
                ("rtt_seconds", None if hb.rtt_ms is None else hb.rtt_ms / 1000.0),
                ("signaling_loss_ratio", hb.loss),
                ("cpu_ratio", hb.cpu),
                ("memory_ratio", hb.memory),
                ("disk_ratio", hb.disk),
                ("temperature_celsius", hb.temperature_c),
                ("camera_fps", hb.camera_fps),
                ("clock_offset_seconds", latest.clock_offset_s),
                ("in_session", 1.0 if hb.in_session else 0.0),
            )
            for name, value in figures:
                if value is not None:
                    per_cabin[name].add_metric([cabin_id], value)
            for device in hb.devices:
                labels = [cabin_id, device.address]
                connected.add_metric(labels, 1.0 if device.connected else 0.0)
                if device.battery is not None:
                    battery.add_metric(labels, device.battery)
                when = None if device.last_reading_at is None else parse_time(device.last_reading_at)
                if when is not None:
                    last_reading.add_metric(labels, when.timestamp())
        yield from per_cabin.values()
        yield from (info, battery, connected, last_reading)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class Metrics:
    """The counters the server increments, and its registry (with the fleet's gauges once `watch` is called)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.joins = Counter("cabine_joins", "Connections accepted, by role.", ["role"], registry=r)
        self.refusals = Counter(
            "cabine_refusals", "Connections refused, by role and reason.", ["role", "reason"], registry=r
        )
        self.sessions = Counter(
            "cabine_sessions", "Calls started (both ends present and admitted), by kind.", ["kind"], registry=r
        )
        self.reconnections = Counter(
            "cabine_reconnections",
            "Connections of a cabin, or of an appointment's professional, seen before (since this server started).",
            ["role"],
            registry=r,
        )
        self.restarts = Counter(
            "cabine_call_restarts", "Calls whose media path was rebuilt (restart requests).", registry=r
        )
        self.relayed = Counter(
            "cabine_relayed_messages", "Negotiation messages relayed, by type.", ["type"], registry=r
        )
        self.heartbeats = Counter("cabine_heartbeats", "Heartbeats received from cabins.", registry=r)
        self.webhooks = Counter(
            "cabine_webhook_deliveries", "Webhook delivery attempts, by outcome.", ["outcome"], registry=r
        )

    def watch(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
