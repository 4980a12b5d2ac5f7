"""``edge run``'s TOML configuration: read, validated into a frozen dataclass, overridden by flags.

``--config FILE``, else ``/etc/skin-edge/edge.toml`` when it exists (``SKIN_EDGE_CONFIG``
names another default; set it empty for none). Every error names the key: an unknown key, a
wrong type, a value out of range. ``systemd/edge.toml`` documents every key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from edge.backends.devices import parse_device
from edge.errors import ConfigError, DelegateError
from edge.model.variants import CHOICES as VARIANT_CHOICES
from edge.model.variants import parse_variant
from edge.ops.quality import QualityThresholds
from edge.sources.capture import Reconnect
from edge.sources.picam import AF_MODES, CameraControls
from edge.util.files import read_capped

DEFAULT_CONFIG = Path("/etc/skin-edge/edge.toml")
CONFIG_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class RunConfig:
    model: str | None = None
    labels: str | None = None
    device: str = "auto"
    variant: str | None = None  # which of the bundle's files (edge/model/variants.py); None: model.tflite
    threads: int | None = None
    top_k: int = 3
    threshold: float = 0.5
    smoothing: float = 0.4
    reset_after: int = 10
    camera: str | None = None
    source: str | None = None
    camera_size: tuple[int, int] | None = None
    realtime: bool = True
    max_frames: int | None = None
    duration: float | None = None
    jsonl: str | None = None
    fsync: bool = False
    http: str | None = None
    token: str | None = None
    token_file: str | None = None  # read at start when no token is given (keeps it out of the command line)
    quiet: bool = False
    mqtt: str | None = None  # mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (edge/outputs/mqtt.py)
    mqtt_prefix: str | None = None
    mqtt_ca: str | None = None
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    mqtt_qos: int = 1
    mqtt_buffer: int = 1000
    mqtt_stats_interval: float = 5.0
    mqtt_keepalive: int = 30
    mqtt_discovery: bool = True
    device_name: str | None = None
    archive: str | None = None  # keep captures here (edge/archive): POST /api/captures, /review
    trusted_keys: tuple[str, ...] = ()  # public keys (lines, .pub files, folders): only bundles they signed run
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    reconnect: Reconnect = field(default_factory=Reconnect)
    picamera2: CameraControls = field(default_factory=CameraControls)
    path: str | None = None  # the file these values came from

    @property
    def listen(self) -> tuple[str, int] | None:
        return parse_listen(self.http, "http") if self.http else None


# ---------------------------------------------------------------- value checks


Check = Callable[[str, Any], Any]


def _type_error(key: str, want: str, value: Any) -> ConfigError:
    got = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
           dict: "a table"}.get(type(value), type(value).__name__)
    return ConfigError(f"{key}: expected {want}, got {got} ({value!r}).")


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(key, "a string", value)
    return value


def _optional_string(key: str, value: Any) -> str | None:
    return _string(key, value) or None


def _int(low: int, high: int | None = None) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "an integer", value)
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{key}: {value} is out of range ({low}..{high if high is not None else ''}).")
        return value
    return check


def _float(low: float, high: float | None = None, *, low_open: bool = False) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, "a number", value)
        v = float(value)
        if v < low or (low_open and v == low) or (high is not None and v > high) or v != v:
            bracket = "(" if low_open else "["
            raise ConfigError(f"{key}: {value} is out of range ({bracket}{low}, {high if high is not None else 'inf'}]).")
        return v
    return check


def _choice(names: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> str:
        v = _string(key, value).strip().lower()
        if v not in names:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(names)}.")
        return v
    return check


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "true or false", value)
    return value


def _variant(key: str, value: Any) -> str | None:
    v = _optional_string(key, value)
    try:
        parse_variant(v)
    except ConfigError:
        raise ConfigError(f"{key}: {v!r} is not a variant; use {', '.join(VARIANT_CHOICES)}.") from None
    return v


def _device(key: str, value: Any) -> str:
    v = _string(key, value)
    try:
        parse_device(v)
    except DelegateError:
        raise ConfigError(f"{key}: {v!r} is not a device; use auto, cpu, edgetpu, usb[:N] or pci[:N].") from None
    return v


def _camera(key: str, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{key}: {value} is out of range (0..).")
        return str(value)
    v = _string(key, value).strip().lower()
    if not v:
        return None
    if not (v.isdigit() or v in ("auto", "picamera2", "opencv") or v.startswith("/dev/video")):
        raise ConfigError(f"{key}: {value!r} is not a camera; use \"auto\", \"picamera2\", \"opencv\" or an index.")
    return v


def _size(key: str, value: Any) -> tuple[int, int] | None:
    if not isinstance(value, list) or len(value) != 2:
        raise _type_error(key, "[width, height]", value)
    w, h = (_int(16, 8192)(key, v) for v in value)
    return (w, h)


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _type_error(key, "a list of non-empty strings", value)
    if len(value) > 256:
        raise ConfigError(f"{key}: {len(value)} entries; at most 256.")
    return tuple(v.strip() for v in value)


def _listen(key: str, value: Any) -> str | None:
    v = _string(key, value).strip()
    if v:
        parse_listen(v, key)
    return v or None


def _broker(key: str, value: Any) -> str | None:
    from edge.outputs.mqtt import parse_broker  # noqa: PLC0415

    v = _string(key, value).strip()
    if v:
        parse_broker(v, key)
    return v or None


def _prefix(key: str, value: Any) -> str | None:
    from edge.outputs.mqtt import check_prefix  # noqa: PLC0415

    v = _string(key, value)
    return check_prefix(v, key) if v.strip() else None


def parse_listen(text: str, key: str = "--http") -> tuple[str, int]:
    """"HOST:PORT", ":PORT" (127.0.0.1) or "[v6]:PORT" -> (host, port); ConfigError naming ``key``."""
    m = re.match(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$", text.strip())
    if not m or int(m["port"]) > 65535:
        raise ConfigError(f"{key}: {text!r} is not HOST:PORT (for example 127.0.0.1:8080).")
    return (m["v6"] or m["host"] or "127.0.0.1"), int(m["port"])


TOP: dict[str, Check] = {
    "model": _optional_string, "labels": _optional_string, "device": _device, "variant": _variant, "threads": _int(1, 256),
    "top_k": _int(1, 1000), "threshold": _float(0.0, 1.0), "smoothing": _float(0.0, 1.0, low_open=True),
    "reset_after": _int(0), "camera": _camera, "source": _optional_string, "camera_size": _size,
    "realtime": _bool, "max_frames": _int(1), "duration": _float(0.0, low_open=True),
    "jsonl": _optional_string, "fsync": _bool, "http": _listen, "token": _optional_string,
    "token_file": _optional_string, "quiet": _bool,
    "mqtt": _broker, "mqtt_prefix": _prefix, "mqtt_ca": _optional_string, "mqtt_user": _optional_string,
    "mqtt_password": _optional_string, "mqtt_qos": _int(0, 2), "mqtt_buffer": _int(1, 1_000_000),
    "mqtt_stats_interval": _float(0.1, 3600.0), "mqtt_keepalive": _int(5, 3600), "mqtt_discovery": _bool,
    "device_name": _optional_string, "archive": _optional_string, "trusted_keys": _strings,
}
TABLES: dict[str, tuple[type, dict[str, Check]]] = {
    "quality": (QualityThresholds, {"min_sharpness": _float(0.0), "min_brightness": _float(0.0, 255.0),
                                    "max_brightness": _float(0.0, 255.0)}),
    "reconnect": (Reconnect, {"delay": _float(0.0, 3600.0, low_open=True),
                              "max_delay": _float(0.0, 3600.0, low_open=True), "attempts": _int(0),
                              "open_timeout": _float(0.0, 3600.0, low_open=True)}),
    # camera controls, by picamera2's names (docs/run.md)
    "picamera2": (CameraControls, {"AfMode": _choice(tuple(AF_MODES)), "LensPosition": _float(0.0, 32.0),
                                   "AeEnable": _bool, "AwbEnable": _bool, "ExposureTime": _int(1, 10_000_000),
                                   "AnalogueGain": _float(1.0, 64.0)}),
}


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(known)}."
    return ConfigError(f"unknown key {key!r}.", hint)


def validate(data: dict[str, Any]) -> RunConfig:
    """A parsed TOML document -> RunConfig; ConfigError naming the first bad key."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in TABLES:
            values[key] = _table(key, value)
        elif key in TOP:
            values[key] = TOP[key](key, value)
        else:
            raise _unknown(key, [*TOP, *TABLES])
    cfg = RunConfig(**values)
    _cross_check(cfg)
    return cfg


def _table(name: str, value: Any) -> Any:
    cls, checks = TABLES[name]
    if not isinstance(value, dict):
        raise _type_error(name, "a table", value)
    out = {}
    for key, v in value.items():
        if key not in checks:
            raise _unknown(f"{name}.{key}", list(checks))
        out[key] = checks[key](f"{name}.{key}", v)
    return cls(**out)


def _cross_check(cfg: RunConfig) -> None:
    q, r = cfg.quality, cfg.reconnect
    if q.min_brightness >= q.max_brightness:
        raise ConfigError(f"quality.min_brightness ({q.min_brightness}) must be below "
                          f"quality.max_brightness ({q.max_brightness}).")
    if r.max_delay < r.delay:
        raise ConfigError(f"reconnect.max_delay ({r.max_delay}) must not be below reconnect.delay ({r.delay}).")


TOKEN_FILE_MAX = 4096


def read_token_file(path: str, key: str = "token_file") -> str:
    """The access token in ``path`` (first line, stripped): a regular file, small, not empty."""
    import stat  # noqa: PLC0415

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{key}: {path} is not a regular file.", "Give a file holding the token.")
        if info.st_size > TOKEN_FILE_MAX:
            raise ConfigError(f"{key}: {path} is {info.st_size} bytes; a token file holds one short line.")
        with open(path, "rb") as f:
            text = f.read(TOKEN_FILE_MAX).decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path} ({e.strerror}).", "Check the path and its permissions.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text.") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise ConfigError(f"{key}: {path} is empty.", "Write the token on its first line.")
    return token


def with_token(cfg: RunConfig) -> RunConfig:
    """``token_file`` read into ``token`` when no token was given (a given token wins)."""
    if cfg.token or not cfg.token_file:
        return cfg
    return replace(cfg, token=read_token_file(cfg.token_file))


def trusted_keys_of(cfg: RunConfig) -> tuple[Any, ...]:
    """The public keys this device trusts: the config's ``trusted_keys`` and the trusted-keys folder."""
    from edge.model.signing import trusted_keys  # noqa: PLC0415

    return trusted_keys(cfg.trusted_keys)


def default_config_path() -> Path | None:
    """The system config when it exists (``SKIN_EDGE_CONFIG`` overrides where to look)."""
    override = os.environ.get("SKIN_EDGE_CONFIG")
    path = DEFAULT_CONFIG if override is None else (Path(override) if override else None)
    return path if path is not None and path.is_file() else None


def load_config(path: str | Path | None = None) -> RunConfig:
    """Read ``path`` (or the default system config, or nothing) into a validated RunConfig."""
    hint = None
    if path is None:
        path = default_config_path()
        if path is None:
            return RunConfig()
        hint = "Give another with --config FILE, or none with SKIN_EDGE_CONFIG= (empty)."
    path = Path(path)
    try:
        text = read_capped(path, CONFIG_MAX_BYTES, "config", ConfigError).decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror}).", hint) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file.") from None
    return parse_config(text, str(path))


def parse_config(text: str, where: str = "config") -> RunConfig:
    """A config's TOML text -> a validated RunConfig; ConfigError naming ``where`` and the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML ({e}).") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config.") from None
    try:
        return replace(validate(data), path=where)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}", e.hint) from None


def with_camera_controls(cfg: RunConfig, **controls: Any) -> RunConfig:
    """Command-line camera controls (picamera2's names, None = not given) over the config's, checked alike."""
    checks = TABLES["picamera2"][1]

    def flag(name: str) -> str:  # LensPosition -> --lens-position
        return "--" + re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()

    given = {k: checks[k](flag(k), v) for k, v in controls.items() if v is not None}
    return replace(cfg, picamera2=replace(cfg.picamera2, **given)) if given else cfg


def with_overrides(cfg: RunConfig, **flags: Any) -> RunConfig:
    """Command-line values (None = not given) replace the config's, validated the same way."""
    names = {f.name for f in fields(RunConfig)}
    values = {}
    for key, value in flags.items():
        if key not in names:
            raise ValueError(f"not a config key: {key}")
        if value is None:
            continue
        check = TOP.get(key)
        if check is not None:
            flag = "--" + key.replace("_", "-")
            value = check(flag, [*value] if isinstance(value, tuple) else value)
        values[key] = value
    cfg = replace(cfg, **values)
    if cfg.camera is not None and cfg.source is not None and ("camera" in values) != ("source" in values):
        # a flag for one kind of source replaces the config's other kind
        cfg = replace(cfg, source=None) if "camera" in values else replace(cfg, camera=None)
    _cross_check(cfg)
    return cfg
