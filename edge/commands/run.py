"""``edge run``: classify a camera, video, stream or image folder continuously (the device daemon)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from edge.commands._common import (
    DeviceOpt,
    LabelsOpt,
    ModelOpt,
    VariantOpt,
    handles_errors,
)

DEFAULT_CAMERA = "auto"


def camera_without_value(args: list[str]) -> list[str]:
    """``--camera`` alone (last, or before another option) means ``--camera auto``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[i + 1:]
        if arg == "--camera" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(DEFAULT_CAMERA)
    return out


class _RunCommand(TyperCommand):
    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        return super().parse_args(ctx, camera_without_value(list(args)))


def register(app: typer.Typer) -> None:
    app.command("run", cls=_RunCommand)(run)


@handles_errors
def run(
    model: ModelOpt = None,  # type: ignore[assignment]
    camera: Annotated[str | None, typer.Option(
        "--camera", show_default=False, metavar="[N|/dev/videoN|picamera2]",
        help="Read a camera: alone, picamera2 on a Raspberry Pi when present, else OpenCV camera 0; "
             "N or /dev/videoN for that OpenCV (V4L2) camera; picamera2 to insist on it.")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", show_default=False,
        help="A video file, an image folder or glob, a single image, or a stream URL (rtsp://, http://).")] = None,
    device: DeviceOpt = None,  # type: ignore[assignment]
    variant: VariantOpt = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", "-t", min=1, max=256, show_default=False,
        help="CPU threads for the interpreter \\[default: all cores but one, left to capture].")] = None,
    labels: LabelsOpt = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, show_default=False,
                                              help="Classes per result \\[default: 3].")] = None,
    smoothing: Annotated[float | None, typer.Option(
        "--smoothing", show_default=False,
        help="Low-pass factor for the class probabilities over frames, in (0, 1]; 1 = off \\[default: 0.4].")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", show_default=False,
        help="Smoothed top score below this gives \"uncertain\" \\[default: 0.5].")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, show_default=False,
                                                   help="Stop after this many results.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", show_default=False,
                                                   help="Stop after this many seconds.")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", show_default=False, dir_okay=False,
                                               help="Append one JSON object per result to this file.")] = None,
    http: Annotated[str | None, typer.Option(
        "--http", show_default=False, metavar="HOST:PORT",
        help="Serve the live page, /api/latest, /api/stats, /healthz and /metrics (e.g. 127.0.0.1:8080; "
             "0.0.0.0:8080 for the local network, with --token).")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="SKIN_EDGE_TOKEN", show_default=False,
                                              help="Access token the live page requires (visible to local "
                                                   "users on a command line: prefer SKIN_EDGE_TOKEN or "
                                                   "--token-file).")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", show_default=False, dir_okay=False,
                                                    help="Read the access token from this file (its first "
                                                         "line).")] = None,
    mqtt: Annotated[str | None, typer.Option(
        "--mqtt", show_default=False, metavar="URL",
        help="Publish results, stats and Home Assistant discovery to this broker: mqtt://HOST[:PORT] or "
             "mqtts://HOST[:PORT] (user, password and CA from the config or SKIN_EDGE_MQTT_USER / "
             "SKIN_EDGE_MQTT_PASSWORD).")] = None,
    archive: Annotated[Path | None, typer.Option(
        "--archive", show_default=False, file_okay=False, metavar="DIR",
        help="Keep captures here (SQLite + JPEG): the page's Capture button, POST /api/captures, the c key; "
             "review them at /review. On a non-loopback --http it needs --token.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", show_default=False, dir_okay=False,
        help="TOML config \\[default: /etc/skin-edge/edge.toml when it exists]; flags override it.")] = None,
    realtime: Annotated[bool | None, typer.Option(
        "--realtime/--no-realtime", show_default=False,
        help="Play a video file at its frame rate like a camera, dropping frames inference misses "
             "\\[default], or process every frame as fast as possible.")] = None,
    quiet: Annotated[bool | None, typer.Option("--quiet", "-q", show_default=False,
                                               help="No live line on the terminal.")] = None,
    lens_position: Annotated[float | None, typer.Option(
        "--lens-position", show_default=False, rich_help_panel="Camera (picamera2)",
        help="Manual focus in dioptres (1 / metres: 10 = 10 cm); picamera2's LensPosition.")] = None,
    af_mode: Annotated[str | None, typer.Option(
        "--af-mode", show_default=False, rich_help_panel="Camera (picamera2)",
        help="Autofocus: manual, auto or continuous; picamera2's AfMode.")] = None,
    lock_exposure: Annotated[bool, typer.Option(
        "--lock-exposure", rich_help_panel="Camera (picamera2)",
        help="Exposure locked (AeEnable off; with ExposureTime/AnalogueGain from the config).")] = False,
    lock_awb: Annotated[bool, typer.Option(
        "--lock-awb", rich_help_panel="Camera (picamera2)", help="White balance locked (AwbEnable off).")] = False,
) -> None:
    """Classify frames continuously: the live line, JSON lines, a live web page, systemd notify.

    Every label is for research and education, not a medical diagnosis. SIGTERM or Ctrl-C stops
    cleanly (exit 0); a camera or stream that stays lost exits 1 after the reconnect attempts.
    """
    from edge.run.config import load_config, with_camera_controls, with_overrides  # noqa: PLC0415
    from edge.run.daemon import run_daemon  # noqa: PLC0415

    cfg = with_overrides(
        load_config(config), model=str(model) if model else None, camera=camera, source=source,
        device=device, variant=variant, threads=threads, labels=str(labels) if labels else None, top_k=top_k,
        smoothing=smoothing, threshold=threshold, max_frames=max_frames, duration=duration,
        jsonl=str(jsonl) if jsonl else None, http=http, token=token,
        token_file=str(token_file) if token_file else None, realtime=realtime, quiet=quiet,
        mqtt=mqtt, archive=str(archive) if archive else None)
    cfg = with_camera_controls(cfg, LensPosition=lens_position, AfMode=af_mode,
                               AeEnable=False if lock_exposure else None, AwbEnable=False if lock_awb else None)
    run_daemon(cfg)
