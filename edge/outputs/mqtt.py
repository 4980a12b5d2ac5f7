"""Results over MQTT (``edge run --mqtt mqtt://HOST[:PORT]``), with paho-mqtt, in Frigate's topic layout.

Topics under a prefix (default ``skin-edge/<device name>``):

- ``<prefix>/availability``: ``online`` once connected, ``offline`` on a clean stop; retained, and
  the broker's last will publishes ``offline`` when the device dies without saying goodbye;
- ``<prefix>/result``: every result, the same JSON object as a ``--jsonl`` line, not retained;
- ``<prefix>/stats``: the run's statistics (the ``/api/stats`` object) every few seconds;
- ``homeassistant/sensor/<device>/<entity>/config``: Home Assistant MQTT discovery (retained), so
  label, score, status, FPS and latency appear as entities with no YAML.

Nothing is lost while the broker is away, within a bound: messages wait in a queue of
``mqtt_buffer`` entries (the oldest dropped first, and counted), and go out in order on
reconnect, at QoS 1 by default. A broker that is down at start, or goes away, never stops
inference or the other outputs: paho's network thread reconnects with a back-off.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from edge.errors import ConfigError, first_line
from edge.results import FrameResult, RunStats

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
ENV_USER, ENV_PASSWORD = "SKIN_EDGE_MQTT_USER", "SKIN_EDGE_MQTT_PASSWORD"


@dataclass(frozen=True)
class MqttSettings:
    url: str
    device: str | None = None  # default: the host name
    prefix: str | None = None  # default: skin-edge/<device>
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    qos: int = 1
    buffer: int = 1000
    stats_interval: float = 5.0
    keepalive: int = 30
    discovery: bool = True
    discovery_prefix: str = "homeassistant"

    @property
    def device_name(self) -> str:
        return self.device or socket.gethostname() or "skin-edge"

    @property
    def topic_prefix(self) -> str:
        return (self.prefix or f"skin-edge/{node_id(self.device_name)}").rstrip("/")


def parse_broker(url: str, key: str = "--mqtt") -> tuple[str, str, int]:
    """"mqtt://HOST[:PORT]" or "mqtts://HOST[:PORT]" -> (scheme, host, port); ConfigError naming `key`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{key}: {url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT].") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{key}: {url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT].")
    if parts.username or parts.password:
        raise ConfigError(f"{key}: a user or password in the broker address is visible to every local user; "
                          f"put them in the config (mqtt_user, mqtt_password) or in {ENV_USER} / {ENV_PASSWORD}.")
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def check_prefix(prefix: str, key: str = "mqtt_prefix") -> str:
    """A topic prefix MQTT can publish under: no wildcards, no empty level, no NUL, not too long."""
    p = prefix.strip().rstrip("/")
    if not p or len(p) > 200 or any(c in p for c in "#+\0") or "//" in p or p.startswith("/"):
        raise ConfigError(f"{key}: {prefix!r} is not a topic prefix MQTT can publish under.",
                          "Use levels of letters, digits, - and _ joined by /, e.g. \"clinic/room-2\" "
                          "(no # or +, no empty level).")
    return p


def node_id(name: str) -> str:
    """A device name as Home Assistant accepts it in a discovery topic: [a-zA-Z0-9_-]."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_") or "skin-edge"


# Home Assistant sensors: (entity, name, topic, value template, unit)
ENTITIES = (
    ("label", "Label", "result", "{{ value_json.label if value_json.label is not none else 'none' }}", None),
    ("score", "Score", "result", "{{ value_json.score if value_json.score is not none else 0 }}", None),
    ("status", "Status", "result", "{{ value_json.status }}", None),
    ("fps", "FPS", "stats", "{{ value_json.fps }}", "fps"),
    ("latency", "Latency", "stats", "{{ value_json.latency_ms.p50 if value_json.latency_ms.p50 is not none else 0 }}",
     "ms"),
)


class MqttSink:
    """A Sink that publishes results and statistics to an MQTT broker; thread-safe."""

    wants_frame = False  # results only: the pipeline need not make an RGB frame for this output

    def __init__(self, settings: MqttSettings, stats: Callable[[], RunStats | None] | None = None) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415

        self.settings, self._stats = settings, stats
        self.scheme, self.host, self.port = parse_broker(settings.url)
        self.prefix = settings.topic_prefix
        self.availability = f"{self.prefix}/availability"
        self._wake = threading.Condition()
        self._closing = False
        self._queue: deque[tuple[str, bytes, bool]] = deque()
        self.published = self.dropped = 0
        self.connected = False
        self._ever_connected = self._lost_logged = False
        self._last_stats = time.monotonic()
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"skin-edge-{node_id(settings.device_name)}",
                              protocol=mqtt.MQTTv311)
        self.client.will_set(self.availability, "offline", qos=settings.qos, retain=True)
        user = settings.username
        if user:
            self.client.username_pw_set(user, settings.password)
        if self.scheme == "mqtts":
            try:
                self.client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"mqtt_ca: cannot use {settings.ca_file!r} as the broker's CA ({e}).",
                                  "Give a PEM file with the CA that signed the broker's certificate.") from None
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(self.host, self.port, keepalive=settings.keepalive)
        self.client.loop_start()  # paho's network thread: connects, reconnects, sends
        self._thread = threading.Thread(target=self._sender, name="mqtt-sender", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        with self._wake:
            return len(self._queue)

    # ------------------------------------------------------------ the Sink protocol

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        payload = result.json_line.encode("utf-8")
        self._send(f"{self.prefix}/result", payload)
        now = time.monotonic()
        if now - self._last_stats >= self.settings.stats_interval:
            self._last_stats = now
            self.publish_stats()

    def publish_stats(self) -> None:
        stats = self._stats() if self._stats is not None else None
        if stats is not None:
            self._send(f"{self.prefix}/stats", json.dumps(stats.as_dict(), separators=(",", ":")).encode("utf-8"))

    def close(self, timeout: float = 3.0) -> None:
        """Last statistics, ``offline`` (retained), then wait up to `timeout` s for what is queued."""
        self.publish_stats()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.connected and (self.queued or self._inflight()):
            time.sleep(0.02)
        if self.connected:
            info = self.client.publish(self.availability, "offline", qos=self.settings.qos, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout=1.0)
        left = self.queued
        if left:
            log.warning(f"mqtt: {left} message(s) not delivered to {self.host}:{self.port} before stopping")
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------ sending and the queue

    def _send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue a message for the sender thread (the oldest is dropped, and counted, when full)."""
        with self._wake:
            if len(self._queue) >= self.settings.buffer:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((topic, payload, retain))
            self._wake.notify()

    def _sender(self) -> None:
        """The only caller of client.publish for queued messages, so they leave in order. It never
        holds the queue's lock while paho works (paho's own locks are taken by its callbacks)."""
        while True:
            with self._wake:
                while not (self._closing or (self.connected and self._queue)):
                    self._wake.wait()
                if not (self.connected and self._queue):
                    return
                topic, payload, retain = self._queue.popleft()
            try:
                info = self.client.publish(topic, payload, qos=self.settings.qos, retain=retain)
            except (ValueError, OSError) as e:  # paho refused this one message: drop it, keep going
                log.warning(f"mqtt: cannot publish to {topic!r} ({first_line(e)}); message dropped")
                with self._wake:
                    self.dropped += 1
                continue
            with self._wake:
                if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                    self.published += 1
                else:  # the connection went in between: back to the front, sent after reconnecting
                    self._queue.appendleft((topic, payload, retain))
                    self.connected = False

    def _inflight(self) -> int:
        try:
            return len(self.client._out_messages)  # paho keeps unacknowledged QoS 1 messages here
        except AttributeError:
            return 0

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning(f"mqtt: {self.host}:{self.port} refused the connection ({reason_code}); will retry")
            return
        client.publish(self.availability, "online", qos=self.settings.qos, retain=True)
        if self.settings.discovery:
            for topic, config in self.discovery_messages():
                client.publish(topic, json.dumps(config), qos=self.settings.qos, retain=True)
        with self._wake:
            self.connected = True
            backlog = len(self._queue)
            self._wake.notify()
        again = self._ever_connected
        self._ever_connected, self._lost_logged = True, False
        log.info(f"mqtt: {'connected again' if again else 'connected'} to {self.scheme}://{self.host}:{self.port} "
                 f"as {self.prefix}" + (f"; sending {backlog} queued message(s)" if backlog else ""))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected = False  # no lock: paho holds its callback lock here (see _sender)
        if not self._lost_logged and reason_code != 0:
            log.warning(f"mqtt: lost the broker {self.host}:{self.port} ({reason_code}); queueing up to "
                        f"{self.settings.buffer} messages and reconnecting")
            self._lost_logged = True

    # ------------------------------------------------------------ Home Assistant discovery

    def discovery_messages(self) -> list[tuple[str, dict]]:
        s, node = self.settings, node_id(self.settings.device_name)
        device = {"identifiers": [f"skin-edge-{node}"], "name": f"skin-edge {s.device_name}",
                  "manufacturer": "skin-edge", "model": "skin-lesion classifier (not a medical device)"}
        out = []
        for entity, name, topic, template, unit in ENTITIES:
            config = {"name": name, "unique_id": f"skin-edge-{node}-{entity}", "object_id": f"skin_edge_{node}_{entity}",
                      "state_topic": f"{self.prefix}/{topic}", "value_template": template,
                      "availability_topic": self.availability, "payload_available": "online",
                      "payload_not_available": "offline", "device": device}
            if unit:
                config.update(unit_of_measurement=unit, state_class="measurement")
            out.append((f"{s.discovery_prefix}/sensor/{node}/{entity}/config", config))
        return out


def mqtt_from_environment(settings: MqttSettings, environ: dict[str, str]) -> MqttSettings:
    """The user and password from SKIN_EDGE_MQTT_USER / SKIN_EDGE_MQTT_PASSWORD when set."""
    user, password = environ.get(ENV_USER), environ.get(ENV_PASSWORD)
    return replace(settings, username=user if user else settings.username,
                   password=password if password else settings.password)
