"""``edge run``: load the model once, open the source, run the pipeline into its outputs.

Outputs: the terminal line, ``--jsonl``, the live page (``--http``, :mod:`edge.outputs.server`), MQTT,
the capture archive (``--archive``, :mod:`edge.archive`) and the systemd notify protocol. SIGTERM, SIGINT and SIGHUP stop capture, finish the frame in flight, flush the
outputs and release the camera; the process then exits 0 (in well under 2 s). A camera or stream
lost for good raises SourceError, which the command turns into exit status 1 so systemd restarts
the service.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any, Callable, TextIO

from edge import DISCLAIMER
from edge.backends.devices import default_threads
from edge.errors import ConfigError, EdgeError
from edge.outputs.notify import Notifier, NotifySink
from edge.outputs.sinks import JsonlSink, TerminalSink
from edge.results import RunStats, Sink
from edge.run.config import RunConfig, trusted_keys_of, with_token
from edge.run.keys import KeyReader
from edge.run.pipeline import Pipeline, PipelineOptions, RunSummary
from edge.sources.factory import make_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonRun:
    summary: RunSummary
    url: str | None  # the live page (with its token), when --http was given


def options_from(cfg: RunConfig) -> PipelineOptions:
    return PipelineOptions(top_k=cfg.top_k, threshold=cfg.threshold, smoothing=cfg.smoothing,
                           reset_after=cfg.reset_after, quality=cfg.quality, max_frames=cfg.max_frames,
                           duration=cfg.duration, realtime=cfg.realtime, reconnect=cfg.reconnect)


def _check(cfg: RunConfig) -> None:
    if not cfg.model:
        raise ConfigError("no model: pass --model or set 'model' in the config.")
    if (cfg.camera is None) == (cfg.source is None):
        raise ConfigError("give one source: --camera [N] or --source VIDEO|FOLDER|GLOB|URL "
                          "(or 'camera' / 'source' in the config).")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def summary_line(summary: RunSummary) -> str:
    s = summary.stats
    f = s.frames
    lat = s.latency_ms.p50
    return (f"{summary.reason}: {f.processed} frames processed ({f.ok} labelled, {f.uncertain} "
            f"uncertain, {f.errors} errors), {f.dropped} dropped, {s.fps:.1f} fps"
            + (f", latency p50 {lat:.0f} ms" if lat is not None else ""))


def _stderr_is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def live_page_line(server: Any, *, show_token: bool) -> str:
    """The start-up line with the page's address; its token only where ``show_token`` allows."""
    if not server.token:
        return f"live page: {server.url}"
    if show_token:
        return f"live page: {server.page_url}"
    return f"live page: {server.url} (open it with ?token=TOKEN; the token is kept out of the log)"


def _open_server(cfg: RunConfig, stats: Callable[[], RunStats], model_info: dict[str, Any], desk: Any) -> Any:
    from edge.outputs.server import LiveServer  # noqa: PLC0415

    host, port = cfg.listen  # type: ignore[misc]
    return LiveServer(host, port, token=cfg.token, stats=stats, model_info=model_info, desk=desk,
                      aspect=model_info.get("aspect")).start()


def model_info(model: Any, cfg: RunConfig) -> dict[str, Any]:
    """What the pages say runs (GET /api/model), and the model id every capture carries."""
    names = model.names
    return {**model.bundle.identity, "runtime": f"{model.runtime.name} {model.runtime.version}",
            "device": model.device, "classes": [{"code": c, "name": names.get(c, c)} for c in model.labels or ()],
            "smoothing": cfg.smoothing, "threshold": cfg.threshold, "archive": cfg.archive is not None,
            "explain": model.spec.cam is not None, "aspect": model.spec.width / model.spec.height}


def _open_desk(cfg: RunConfig, model: Any) -> Any:
    from edge.archive.desk import CaptureDesk  # noqa: PLC0415
    from edge.archive.store import Archive  # noqa: PLC0415

    archive = Archive(cfg.archive)  # type: ignore[arg-type]
    desk = CaptureDesk(archive, model=model.bundle.model_id, classes=model.labels or (), names=model.names,
                       threshold=cfg.threshold, aspect=model.spec.width / model.spec.height)
    n = archive.list(limit=1)[1]
    log.info(f"archive: {archive.root} ({n} capture{'s' if n != 1 else ''})")
    return desk



def _open_mqtt(cfg: RunConfig, stats: Callable[[], RunStats], server: Any) -> Sink:
    from edge.outputs.mqtt import MqttSettings, MqttSink, mqtt_from_environment  # noqa: PLC0415

    settings = mqtt_from_environment(MqttSettings(
        url=cfg.mqtt, device=cfg.device_name, prefix=cfg.mqtt_prefix, ca_file=cfg.mqtt_ca,  # type: ignore[arg-type]
        username=cfg.mqtt_user, password=cfg.mqtt_password, qos=cfg.mqtt_qos, buffer=cfg.mqtt_buffer,
        stats_interval=cfg.mqtt_stats_interval, keepalive=cfg.mqtt_keepalive, discovery=cfg.mqtt_discovery),
        dict(os.environ))
    sink = MqttSink(settings, stats)
    log.info(f"mqtt: publishing to {cfg.mqtt} under {sink.prefix}/")
    if server is not None:
        server.metrics.watch_mqtt(sink)
    return sink


def run_daemon(cfg: RunConfig, *, out: TextIO | None = None, notifier: Notifier | None = None, show_token: bool | None = None) -> DaemonRun:
    """Run until the source ends, a limit is reached or a signal arrives. Raises EdgeError subclasses.

    ``show_token``: print the live page's address with its access token (default: only when
    stderr is a terminal, so that the token never reaches the journal or a log file).
    """
    from edge.model.load import load_model  # noqa: PLC0415

    _check(cfg)
    cfg = with_token(cfg)
    if cfg.archive and cfg.http and not _is_loopback(cfg.listen[0]) and not cfg.token:  # type: ignore[index]
        raise ConfigError(f"--archive with --http {cfg.http} needs an access token: anyone on the network "
                          "could read and change the captures.", "Set --token, --token-file or SKIN_EDGE_TOKEN.")
    out = out or sys.stdout
    source = make_source(cfg.source, cfg.camera, camera_size=cfg.camera_size,  # a bad path fails here, first
                         controls=cfg.picamera2)
    model = load_model(cfg.model, device=cfg.device, threads=cfg.threads or default_threads(reserve=1),  # type: ignore[arg-type]
                       labels=cfg.labels, variant=cfg.variant, trusted=trusted_keys_of(cfg))
    for line in model.notes:
        log.warning(line)
    if hasattr(source, "prefer_size"):
        source.prefer_size((model.spec.width, model.spec.height))  # picamera2: the model's stream
    systemd = notifier or Notifier()
    # reconnect notices, logged by capture, also show in `systemctl status`
    explain = bool(cfg.http or cfg.archive) and model.spec.cam is not None  # the page's and the archive's maps
    pipeline = Pipeline(model, source, (), replace(options_from(cfg), explain=explain), on_notice=systemd.status)
    pipeline.stats.info = replace(pipeline.stats.info, runtime=f"{model.runtime.name} {model.runtime.version}",
                                  threads=model.threads)
    notify = NotifySink(systemd, describe=lambda: _status(pipeline))
    pipeline.on_idle = notify.idle  # a bounded reconnect keeps the watchdog fed
    sinks: list[Sink] = []
    server = desk = None
    try:
        if cfg.archive:
            desk = _open_desk(cfg, model)
            sinks.append(desk)
        if cfg.http:
            server = _open_server(cfg, pipeline.snapshot, model_info(model, cfg), desk)
            sinks.append(server)
        sinks.insert(0, TerminalSink(out, quiet=cfg.quiet))
        if cfg.jsonl:
            sinks.append(JsonlSink(cfg.jsonl, fsync=cfg.fsync))
        if cfg.mqtt:
            sinks.append(_open_mqtt(cfg, pipeline.snapshot, server))
        sinks.append(notify)
        pipeline.sinks = sinks
        log.info(f"edge run: {model.path} on {model.device} ({model.runtime.name} {model.runtime.version}, "
            f"{model.threads} thread{'s' if model.threads != 1 else ''}), source {source.name}")
        if server is not None:
            log.info(live_page_line(server, show_token=_stderr_is_tty() if show_token is None else show_token))
            host = cfg.listen[0]  # type: ignore[index]
            if not _is_loopback(host) and not cfg.token:
                log.warning(f"warning: the live page is open to every host that can reach {host}; set --token")
        log.info(DISCLAIMER)
        keys = KeyReader({"c": desk.capture} if desk is not None else {})
        if desk is not None and keys.start():
            log.info("press c to capture the sharpest frame of the last second")
        try:
            with _signals_stop(pipeline, notify):
                summary = pipeline.run()
        finally:
            keys.close()
    except BaseException:
        for sink in sinks:  # on failure before or during the run: release the port, flush the file
            sink.close()
        notify.close()
        if pipeline.summary is not None:
            log.info(summary_line(pipeline.summary))
        raise
    log.info(summary_line(summary))
    f = summary.stats.frames
    first = pipeline.stats.first_error
    if f.processed and f.errors == f.processed:  # nothing was classified: that is no success
        raise EdgeError(f"every one of the {f.processed} frames failed" + (f" (first: {first})" if first else ""),
                        "Check the source: see the JSON lines' reasons.")
    if f.errors and getattr(source, "stills", False):  # as `edge classify`: a failed image is a failed run
        raise EdgeError(f"{f.errors} of {f.processed} images failed" + (f" (first: {first})" if first else ""),
                        "The others were classified; each failed image has a result with its reason.")
    return DaemonRun(summary, server.page_url if server is not None else None)


def _status(pipeline: Pipeline) -> str:
    s = pipeline.snapshot()
    f = s.frames
    return f"running: {s.fps:.1f} fps, {f.processed} frames, {f.dropped} dropped, {f.errors} errors"


class _signals_stop:
    """SIGTERM/SIGINT/SIGHUP -> stop the pipeline after the frame in flight; a second one aborts.

    SIGHUP (the terminal closed, or `systemctl kill -s HUP`) stops as cleanly as SIGTERM: outputs
    flushed, the summary logged, STOPPING=1 sent, exit 0, instead of the default of dying on the spot.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, pipeline: Pipeline, notify: NotifySink) -> None:
        self.pipeline, self.notify = pipeline, notify
        self.previous: dict[int, Any] = {}
        self.received: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = signum
        self.notify.stop(f"stopping ({signal.Signals(signum).name})")
        self.pipeline.stop()

    def __enter__(self) -> "_signals_stop":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

