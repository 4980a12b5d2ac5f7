#!/usr/bin/env python3
"""MQTT output figures against a real mosquitto on loopback (docs/benchmarks.md):

- latency: result published by the sink -> received by a subscriber (p50 / p95 / max, ms);
- an outage: results at --rate Hz, the broker stopped for --outage seconds and started again;
  how many results reached a persistent subscriber, how many were dropped (oldest first).

    .venv/bin/python scripts/mqtt_bench.py [--messages 500] [--outage 30] [--rate 10] [--buffer 1000]
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.ops.postprocess import Prediction  # noqa: E402
from edge.outputs.mqtt import MqttSettings, MqttSink  # noqa: E402
from edge.results import OK, FrameResult, StageTimes  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser {getpass.getuser()}\n")
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.arrivals: dict[int, float] = {}
        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", clean_session=False)
        c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda client, u, m: self.arrivals.setdefault(json.loads(m.payload)["frame"],
                                                                      time.perf_counter())
        c.reconnect_delay_set(0.1, 0.5)
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        if not ready.wait(10):
            raise SystemExit("subscriber could not subscribe")
        self.client = c


def result(i: int) -> FrameResult:
    top = (Prediction(0, "mel", 0.8), Prediction(1, "nv", 0.2))
    return FrameResult(timestamp=time.time(), frame_index=i, status=OK, top=top, raw_top=top, times=StageTimes(),
                       latency_ms=1.0, fps=10.0, quality={})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--outage", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--buffer", type=int, default=1000)
    a = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    broker = Broker(folder)
    sub = Subscriber(broker.port, "skin-edge/bench/result")
    sink = MqttSink(MqttSettings(url=f"mqtt://127.0.0.1:{broker.port}", device="bench", buffer=a.buffer,
                                 discovery=False))
    while not sink.connected:
        time.sleep(0.01)
    sent: dict[int, float] = {}
    for i in range(a.messages):  # latency: one at a time, 5 ms apart
        sent[i] = time.perf_counter()
        sink.publish(result(i), None)
        time.sleep(0.005)
    time.sleep(1)
    lat = np.array([(sub.arrivals[i] - sent[i]) * 1000 for i in sent if i in sub.arrivals])
    print(f"latency result -> subscriber (QoS 1, loopback), {len(lat)}/{a.messages} messages: "
          f"p50 {np.percentile(lat, 50):.2f} ms, p95 {np.percentile(lat, 95):.2f} ms, max {lat.max():.2f} ms")

    first = a.messages
    during = int(a.outage * a.rate)
    broker.stop()
    for i in range(first, first + during):  # the outage: results keep coming at --rate Hz
        sink.publish(result(i), None)
        time.sleep(1 / a.rate)
    restarted = time.perf_counter()
    broker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(i in sub.arrivals for i in range(first + max(0, during - a.buffer),
                                                                                   first + during)):
        time.sleep(0.05)
    got = sum(1 for i in range(first, first + during) if i in sub.arrivals)
    last = max((sub.arrivals[i] for i in range(first, first + during) if i in sub.arrivals), default=restarted)
    print(f"outage of {a.outage:.0f} s at {a.rate:g} results/s: {during} results published while the broker was "
          f"away, {got} delivered after it came back ({sink.dropped} dropped from a {a.buffer}-message queue), "
          f"all within {last - restarted:.1f} s of the restart")
    sink.close()
    sub.client.loop_stop()
    broker.stop()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
