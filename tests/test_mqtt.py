"""The MQTT output against a real broker: Debian's mosquitto on a free loopback port, subscribed to
with paho-mqtt. End to end through `edge run`, the retained availability and its last will after
kill -9, the queue across a broker restart, TLS with a certificate made here, a broker that is
down at start.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import colour_image
from helpers import free_port, wait_until, write_video
from prometheus_client import generate_latest

from edge.errors import ConfigError
from edge.ops.postprocess import Prediction
from edge.outputs.mqtt import MqttSettings, MqttSink, parse_broker
from edge.outputs.telemetry import ServerMetrics
from edge.results import OK, FrameResult, StageTimes

ROOT = Path(__file__).resolve().parents[1]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed "
                                "(scripts/test.sh installs it)")


class Broker:
    """mosquitto in the foreground with a config of its own; stop() and start() keep the port."""

    def __init__(self, folder: Path, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.folder, self.port = folder, free_port()
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"user {getpass.getuser()}",  # as root it would switch to 'mosquitto', who cannot write here
                 f"persistence_location {folder}/", "log_dest stderr"]
        if tls:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "broker.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start:\n" + (self.folder / "broker.log").read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture()
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Subscriber:
    """A paho client collecting (topic, payload, retained, arrival time) of everything under `topics`."""

    def __init__(self, port: int, topics: list[str], *, client_id: str | None = None, tls_ca: Path | None = None,
                 clean: bool = True) -> None:
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=clean,
                        protocol=mqtt.MQTTv311)
        if tls_ca:
            c.tls_set(ca_certs=str(tls_ca))
        c.on_connect = lambda client, u, f, rc, p=None: [client.subscribe(t, qos=1) for t in topics]
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)
        c.connect_async("localhost" if tls_ca else "127.0.0.1", port, keepalive=10)
        c.loop_start()
        self.client = c
        assert self.subscribed.wait(10), "the test's subscriber could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain), time.time()))

    def on(self, topic: str) -> list[tuple[bytes, bool, float]]:
        with self._lock:
            return [(p, r, t) for tp, p, r, t in self.messages if tp == topic]

    def close(self) -> None:
        # A QoS 1 round trip first: the broker answers it only after the acknowledgements of what this
        # session received, so a persistent session never gets those messages again after reconnecting.
        if self.client.is_connected():
            self.client.publish("test/sync", b"", qos=1).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


def result(i: int) -> FrameResult:
    top = (Prediction(0, "mel", 0.8), Prediction(1, "nv", 0.2))
    return FrameResult(timestamp=time.time(), frame_index=i, status=OK, top=top, raw_top=top, times=StageTimes(),
                       latency_ms=1.0, fps=10.0, quality={})


def edge_env() -> dict[str, str]:
    return {**os.environ, "SKIN_EDGE_CONFIG": "", "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------- end to end through `edge run`


def test_edge_run_publishes_results_stats_availability_and_discovery(bundle_dir, broker, tmp_path):
    video = write_video(tmp_path / "v.mp4", [colour_image(n, seed=i) for i in range(8) for n in ("red", "green")])
    sub = Subscriber(broker.port, ["skin-edge/#", "homeassistant/#"])
    cfg = tmp_path / "edge.toml"
    cfg.write_text('device_name = "station 1"\nmqtt_stats_interval = 0.1\n')
    jsonl = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
                           "--no-realtime", "--jsonl", str(jsonl), "--config", str(cfg),
                           "--mqtt", f"mqtt://127.0.0.1:{broker.port}"],
                          capture_output=True, text=True, env=edge_env(), timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    prefix = "skin-edge/station_1"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    wait_until(lambda: len(sub.on(f"{prefix}/result")) == len(lines), timeout=10)
    results = [json.loads(p) for p, retained, _ in sub.on(f"{prefix}/result")]
    assert results == lines and len(lines) == 16  # the same JSON as the JSON lines, in order, none lost
    assert not any(retained for _, retained, _ in sub.on(f"{prefix}/result"))
    stats = [json.loads(p) for p, _, _ in sub.on(f"{prefix}/stats")]
    assert stats and stats[-1]["frames"]["processed"] == 16
    wait_until(lambda: [p for p, _, _ in sub.on(f"{prefix}/availability")][-1:] == [b"offline"], timeout=5)
    assert [p for p, _, _ in sub.on(f"{prefix}/availability")] == [b"online", b"offline"]
    sub.close()
    # retained: a subscriber arriving later learns availability and the Home Assistant entities
    late = Subscriber(broker.port, [f"{prefix}/availability", "homeassistant/#"])
    wait_until(lambda: len([m for m in late.messages if m[0].startswith("homeassistant/")]) == 5, timeout=5)
    assert late.on(f"{prefix}/availability")[0][:2] == (b"offline", True)
    configs = {m[0]: json.loads(m[1]) for m in late.messages if m[0].startswith("homeassistant/")}
    assert set(configs) == {f"homeassistant/sensor/station_1/{e}/config" for e in
                            ("label", "score", "status", "fps", "latency")}
    label = configs["homeassistant/sensor/station_1/label/config"]
    assert label["state_topic"] == f"{prefix}/result" and label["availability_topic"] == f"{prefix}/availability"
    assert configs["homeassistant/sensor/station_1/fps/config"]["state_topic"] == f"{prefix}/stats"
    assert all(m[2] for m in late.messages)  # every one retained
    late.close()


def test_last_will_says_offline_after_kill_9(bundle_dir, broker, tmp_path):
    frames = [colour_image(n, seed=i) for i in range(10) for n in ("red", "yellow", "green")]
    video = write_video(tmp_path / "long.mp4", frames * 10, fps=30.0)  # 10 s at its rate
    sub = Subscriber(broker.port, ["skin-edge/pi/#"])
    cfg = tmp_path / "edge.toml"
    cfg.write_text('device_name = "pi"\n')
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
                             "--config", str(cfg), "--mqtt", f"mqtt://127.0.0.1:{broker.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=edge_env(), cwd=ROOT)
    try:
        wait_until(lambda: len(sub.on("skin-edge/pi/result")) >= 3, timeout=30)
        assert [p for p, _, _ in sub.on("skin-edge/pi/availability")] == [b"online"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: [p for p, _, _ in sub.on("skin-edge/pi/availability")][-1:] == [b"offline"], timeout=10)
    finally:
        proc.kill()
        proc.wait()
    sub.close()
    late = Subscriber(broker.port, ["skin-edge/pi/availability"])
    wait_until(lambda: late.on("skin-edge/pi/availability"), timeout=5)
    assert late.on("skin-edge/pi/availability")[0][:2] == (b"offline", True)  # the will is retained
    late.close()


def test_broker_down_at_start_does_not_stop_the_run(bundle_dir, tmp_path):
    video = write_video(tmp_path / "v.mp4", [colour_image("red", seed=i) for i in range(6)])
    jsonl = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
                           "--no-realtime", "--jsonl", str(jsonl), "--mqtt", f"mqtt://127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=edge_env(), timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert len(jsonl.read_text().splitlines()) == 6  # inference and the other outputs went on
    assert "message(s) not delivered" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- the queue, QoS 1, TLS


def test_results_queued_during_an_outage_arrive_after_it(broker):
    # a persistent subscriber session: the broker keeps what arrives for it across its restart
    sub = Subscriber(broker.port, ["skin-edge/q/result"], client_id="test-sub", clean=False)
    sink = MqttSink(MqttSettings(url=f"mqtt://127.0.0.1:{broker.port}", device="q", buffer=10, discovery=False))
    try:
        wait_until(lambda: sink.connected, timeout=10)
        for i in range(5):
            sink.publish(result(i), None)
        wait_until(lambda: len(sub.on("skin-edge/q/result")) == 5, timeout=10)
        before = [json.loads(p)["frame"] for p, _, _ in sub.on("skin-edge/q/result")]
        sub.close()
        broker.stop()
        wait_until(lambda: not sink.connected, timeout=10)
        for i in range(5, 25):  # 20 results while the broker is away; the queue holds the newest 10
            sink.publish(result(i), None)
        assert (sink.queued, sink.dropped) == (10, 10)
        metrics = ServerMetrics(lambda: None, lambda: 0)
        metrics.watch_mqtt(sink)
        text = generate_latest(metrics.registry).decode()
        assert "edge_mqtt_dropped_total 10.0" in text and "edge_mqtt_queued 10.0" in text
        assert "edge_mqtt_connected 0.0" in text
        broker.start()
        wait_until(lambda: sink.connected and sink.queued == 0, timeout=30)
        sub = Subscriber(broker.port, ["skin-edge/q/result"], client_id="test-sub", clean=False)
        wait_until(lambda: len(sub.on("skin-edge/q/result")) >= 10, timeout=15)
        frames = before + [json.loads(p)["frame"] for p, _, _ in sub.on("skin-edge/q/result")]
        assert frames == [*range(5), *range(15, 25)]  # in order; the 10 oldest of the outage dropped
    finally:
        sink.close()
        sub.close()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for localhost, made with openssl."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=skin-edge test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls_with_a_certificate_made_here(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    tls_broker = Broker(tmp_path, tls=(ca, cert, key))
    try:
        sub = Subscriber(tls_broker.port, ["skin-edge/tls/#"], tls_ca=ca)
        sink = MqttSink(MqttSettings(url=f"mqtts://localhost:{tls_broker.port}", device="tls", ca_file=str(ca)))
        wait_until(lambda: sink.connected, timeout=10)
        sink.publish(result(7), None)
        wait_until(lambda: sub.on("skin-edge/tls/result"), timeout=10)
        assert json.loads(sub.on("skin-edge/tls/result")[0][0])["frame"] == 7
        sink.close()
        sub.close()
        # a CA that did not sign the broker's certificate: never connected, nothing sent in clear
        other = tmp_path / "other"
        other.mkdir()
        wrong_ca = make_certificates(other)[0]
        sink = MqttSink(MqttSettings(url=f"mqtts://localhost:{tls_broker.port}", device="tls2", ca_file=str(wrong_ca)))
        time.sleep(1.5)
        assert not sink.connected
        sink.close(timeout=0.2)
    finally:
        tls_broker.stop()


# ---------------------------------------------------------------- addresses and settings


@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker.local", ("mqtt", "broker.local", 1883)),
    ("mqtts://10.0.0.2", ("mqtts", "10.0.0.2", 8883)),
    ("mqtt://[::1]:1884", ("mqtt", "::1", 1884)),
])
def test_broker_addresses(url, expected):
    assert parse_broker(url) == expected


@pytest.mark.parametrize("url, needle", [
    ("http://broker", "is not mqtt://HOST"), ("mqtt://", "is not mqtt://HOST"), ("mqtt://h:99999", "is not"),
    ("mqtt://user:secret@broker", "visible to every local user"), ("broker:1883", "is not mqtt://HOST"),
])
def test_bad_broker_addresses(url, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_broker(url)


def test_credentials_on_the_command_line_are_refused(bundle_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", "x.mp4",
                           "--mqtt", "mqtt://me:pw@127.0.0.1"], capture_output=True, text=True, env=edge_env(),
                          timeout=60, cwd=ROOT)
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()[-1]
    assert err.startswith("error: --mqtt") and "SKIN_EDGE_MQTT_PASSWORD" in err and "Traceback" not in done.stderr


def test_user_and_password_from_config_and_environment(tmp_path, broker):
    from edge.outputs.mqtt import mqtt_from_environment
    from edge.run.config import load_config

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'mqtt = "mqtt://127.0.0.1:{broker.port}"\nmqtt_user = "station"\nmqtt_password = "from-config"\n'
                   'mqtt_buffer = 50\nmqtt_prefix = "clinic/room-2"\n')
    c = load_config(cfg)
    assert (c.mqtt_user, c.mqtt_password, c.mqtt_buffer, c.mqtt_prefix) == ("station", "from-config", 50,
                                                                            "clinic/room-2")
    s = MqttSettings(url=c.mqtt, username=c.mqtt_user, password=c.mqtt_password, prefix=c.mqtt_prefix)
    s = mqtt_from_environment(s, {"SKIN_EDGE_MQTT_PASSWORD": "from-env"})
    assert (s.username, s.password, s.topic_prefix) == ("station", "from-env", "clinic/room-2")
    bad = tmp_path / "bad.toml"
    bad.write_text('mqtt = "tcp://x"\n')
    with pytest.raises(ConfigError, match="mqtt: 'tcp://x' is not mqtt://HOST"):
        load_config(bad)
    for prefix in ("clinic/#", "a//b", "+/x", "/abs"):
        bad.write_text(f'mqtt_prefix = "{prefix}"\n')
        with pytest.raises(ConfigError, match="not a topic prefix"):
            load_config(bad)


def test_a_ca_file_that_cannot_be_read_is_one_line(bundle_dir, tmp_path):
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'mqtt_ca = "{tmp_path / "missing.pem"}"\n')
    video = write_video(tmp_path / "v.mp4", [colour_image("red", seed=i) for i in range(3)])
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
                           "--config", str(cfg), "--mqtt", f"mqtts://127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=edge_env(), timeout=60, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip().splitlines()
    assert any(line.startswith("error: mqtt_ca: cannot use") for line in err), done.stderr
    assert "Traceback" not in done.stderr
