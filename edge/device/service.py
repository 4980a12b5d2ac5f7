"""Install ``edge run`` as a systemd service: unit, udev rules, config, user, state and model.

The work is planned first as a list of :class:`Step` (what and where), then applied, so
``--dry-run`` prints exactly what a real run does and writes nothing. ``root`` redirects every
path into another tree (an OS image being built, or a test's temporary folder). The templates
live in ``systemd/``; ``edge/device/deploy/`` links to them, and building a wheel or sdist stores the
linked files themselves, so an installed package carries its own copies.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.device.steps import (
    CURRENT,
    MODELS_DIR,
    STATE_DIR,
    Step,
    _in_root,
    _mkdir,
    _write,
)
from edge.errors import EdgeError

SERVICE = "skin-edge"
UNIT_FILE = f"{SERVICE}.service"
RULES_FILE = "99-coral-edgetpu.rules"
CONFIG_TEMPLATE = "edge.toml"
USER = SERVICE
DEVICE_GROUPS = ("video", "plugdev", "apex")  # camera, USB Accelerator, PCIe/M.2 Coral
DEFAULT_CONFIG = Path("/etc/skin-edge/edge.toml")
LOGS_DIR = Path("/var/log/skin-edge")
UNIT_DIR = Path("/etc/systemd/system")
RULES_DIR = Path("/etc/udev/rules.d")
DEPLOY = Path(__file__).parent / "deploy"
HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))


@dataclass(frozen=True)
class Report:
    steps: tuple[Step, ...]
    next_commands: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    dry_run: bool = False


def deploy_file(name: str) -> Path:
    path = DEPLOY / name
    if not path.is_file():
        raise EdgeError(f"{path} is missing from this installation of skin-edge.", "Reinstall the package.")
    return path


def edge_executable() -> Path:
    """The ``edge`` script of the running environment (the venv's bin folder, symlinks kept)."""
    path = Path(sys.executable).absolute().parent / "edge"
    if not os.access(path, os.X_OK):
        raise EdgeError(f"{path} does not exist: skin-edge is not installed in this environment.",
                        "Run the installer with the venv's own edge (e.g. sudo /opt/skin-edge/venv/bin/edge ...).")
    return path


def hidden_paths(edge: Path, config: Path) -> list[str]:
    """What the service needs that ProtectHome=yes hides from it (/home, /root, /run/user)."""
    needed = {"the venv's edge": edge, "the venv's Python": Path(sys.executable), "Python's standard library":
              Path(sys.base_prefix), "the skin-edge package": Path(__file__).parents[1], "the config": config}
    problems = []
    for what, path in needed.items():
        for p in dict.fromkeys((path.absolute(), path.resolve())):
            hidden = next((h for h in HIDDEN_BY_PROTECT_HOME if p.is_relative_to(h)), None)
            if hidden:
                problems.append(f"{what} ({p}) is under {hidden}")
                break
    return problems


def unit_word(value: str | Path) -> str:
    """One command-line word in a unit file: specifiers and variables escaped, quoted when needed."""
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if escaped != text or any(c.isspace() for c in text) else text


def render_unit(*, edge: Path, config: Path, user: str = USER, groups: tuple[str, ...] = ()) -> str:
    text = deploy_file(UNIT_FILE).read_text(encoding="utf-8")
    values = {"@EDGE@": unit_word(edge), "@CONFIG@": unit_word(config), "@USER@": user, "@GROUP@": user,
              "@SUPPLEMENTARY_GROUPS@": " ".join(groups)}
    for key, value in values.items():
        text = text.replace(key, value)
    left = re.search(r"@[A-Z_]+@", text)
    if left:
        raise EdgeError(f"{UNIT_FILE} has a placeholder this installer does not know: {left[0]}.",
                        "Reinstall skin-edge (the template and the installer come from different versions).")
    return text


def render_config(model: Path = CURRENT) -> str:
    """The example config with ``model`` pointing at the installed bundle."""
    text = deploy_file(CONFIG_TEMPLATE).read_text(encoding="utf-8")
    line = f'model = "{model}"'
    new, n = re.subn(r'(?m)^#?\s*model\s*=.*$', line, text, count=1)
    return new if n else f"{line}\n{text}"


def _read_db(path: Path) -> dict[str, list[str]]:
    """name -> fields of /etc/passwd or /etc/group style files."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and not line.startswith("#"):
            rows[parts[0]] = parts
    return rows


def _image_root(root: Path) -> bool:
    """An OS tree with its own user database (useradd --root works there)."""
    return root != Path("/") and (root / "etc/passwd").is_file() and (root / "etc/group").is_file()


def existing_groups(root: Path, wanted: tuple[str, ...] = DEVICE_GROUPS) -> tuple[str, ...]:
    """The wanted groups that exist where the unit will run (systemd fails a unit naming a missing one)."""
    if _image_root(root):
        names = _read_db(root / "etc/group")
        return tuple(g for g in wanted if g in names)
    import grp  # noqa: PLC0415

    present = []
    for g in wanted:
        try:
            grp.getgrnam(g)
            present.append(g)
        except KeyError:
            pass
    return tuple(present)


def _user_groups(root: Path, user: str) -> set[str] | None:
    """The supplementary groups of ``user``, or None when the user does not exist."""
    if _image_root(root):
        if user not in _read_db(root / "etc/passwd"):
            return None
        return {name for name, f in _read_db(root / "etc/group").items() if user in f[3].split(",")}
    import grp  # noqa: PLC0415
    import pwd  # noqa: PLC0415

    try:
        pwd.getpwnam(user)
    except KeyError:
        return None
    return {g.gr_name for g in grp.getgrall() if user in g.gr_mem}


def _root_args(root: Path) -> list[str]:
    """useradd/usermod/userdel work on an image tree with --root."""
    return ["--root", str(root)] if root != Path("/") else []


def _group_id(root: Path, name: str) -> int | None:
    """The group's id where the unit will run; None in a tree without a user database."""
    if _image_root(root):
        fields = _read_db(root / "etc/group").get(name)
        return int(fields[2]) if fields else None
    if root != Path("/"):
        return None
    import grp  # noqa: PLC0415

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _run(argv: list[str]) -> Callable[[], None]:
    def apply() -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EdgeError(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")
    return apply


def _user_steps(root: Path, groups: tuple[str, ...]) -> list[Step]:
    if root != Path("/") and not _image_root(root):
        return [Step("skip", f"user {USER}", f"{root} has no /etc/passwd: create the user on the device")]
    prefix = _root_args(root)
    have = _user_groups(root, USER)
    if have is None:
        group = ["--gid", USER] if _group_id(root, USER) is not None else ["--user-group"]  # left by userdel
        argv = ["useradd", *prefix, "--system", *group, "--home-dir", str(STATE_DIR), "--no-create-home",
                "--shell", "/usr/sbin/nologin", "--comment", "skin-edge classifier service",
                *(["--groups", ",".join(groups)] if groups else []), USER]
        return [Step("run", shlex.join(argv), apply=_run(argv))]
    missing = [g for g in groups if g not in have]
    if not missing:
        return [Step("keep", f"user {USER}", f"already in {', '.join(groups) or 'no device groups'}")]
    argv = ["usermod", *prefix, "--append", "--groups", ",".join(missing), USER]
    return [Step("run", shlex.join(argv), apply=_run(argv))]


def _chown_state(root: Path) -> Callable[[], None]:
    def apply() -> None:
        state = _in_root(root, STATE_DIR)
        for folder, dirs, files in os.walk(state):
            for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
                os.chown(name, *_ids(USER), follow_symlinks=False)
    return apply


def _ids(user: str) -> tuple[int, int]:
    import pwd  # noqa: PLC0415

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def check_config_path(config: Path) -> None:
    """The config must be an absolute ``.toml`` path: it goes into ExecStart, and ``--purge`` deletes it."""
    if not config.is_absolute() or config.suffix != ".toml":
        raise EdgeError(f"--config {config} is not an absolute path to a .toml file.",
                        "Give the full path, e.g. /etc/skin-edge/edge.toml.")


def _needs_root(root: Path, dry_run: bool, command: str) -> None:
    if root == Path("/") and not dry_run and os.geteuid() != 0:
        raise EdgeError(f"{command} changes /etc and /var and needs root.",
                        f"Run: sudo {edge_executable()} {command} (or --dry-run to see what it would do).")


def install_service(*, root: Path = Path("/"), config: Path = DEFAULT_CONFIG, model: Path | None = None,
                    dry_run: bool = False, trust: tuple[Path, ...] = ()) -> Report:
    """Plan the installation and, unless ``dry_run``, carry it out."""
    root = root.resolve()  # "/", "//" and "/tmp/.." are all the running system
    check_config_path(config)
    _needs_root(root, dry_run, "install-service")
    edge = edge_executable()
    hidden = hidden_paths(edge, config)
    if hidden and root == Path("/"):
        raise EdgeError(f"{hidden[0][0].upper()}{hidden[0][1:]}, which the service cannot see (ProtectHome=yes).",
                        "Make the venv with the system Python under /opt/skin-edge and install skin-edge "
                        "into it, not editable (see docs/deploy-pi.md).")
    groups = existing_groups(root)
    unit = render_unit(edge=edge, config=config, groups=groups)
    unit_path, rules_path, config_path = (_in_root(root, p) for p in
                                          (UNIT_DIR / UNIT_FILE, RULES_DIR / RULES_FILE, config))
    steps = [
        Step("write", str(unit_path), f"ExecStart={unit_word(edge)} run --config {unit_word(config)}; "
             f"groups: {' '.join(groups) or 'none'}", _write(unit_path, unit)),
        Step("write", str(rules_path), "Coral USB 1a6e:089a and 18d1:9302 -> plugdev, apex -> apex",
             _write(rules_path, deploy_file(RULES_FILE).read_text(encoding="utf-8"))),
    ]
    steps += _user_steps(root, groups)
    if config_path.is_dir():
        raise EdgeError(f"--config {config} is a folder.",
                        "Give the path of the TOML file, e.g. /etc/skin-edge/edge.toml.")
    if config_path.exists():
        steps.append(Step("keep", str(config_path), "an existing config is never overwritten"))
    else:  # readable by the service's group only: it may hold the live page's token
        steps.append(Step("write", str(config_path), f"model = {CURRENT}; mode 0640, group {USER}",
                          _write(config_path, render_config(), 0o640, lambda: _group_id(root, USER))))
    steps.append(Step("mkdir", str(_in_root(root, MODELS_DIR)), apply=_mkdir(_in_root(root, MODELS_DIR), 0o755)))
    from edge.device.install_bundle import bundle_steps, device_keys, trust_steps  # noqa: PLC0415

    added, new_keys = trust_steps(root, list(trust))
    steps += added
    if model is not None:
        steps += bundle_steps(root, model, device_keys(root, config, new_keys))
    if root == Path("/"):
        steps.append(Step("chown", f"{STATE_DIR} -> {USER}", apply=_chown_state(root)))
    warnings = [f"{h}, which the service cannot see (ProtectHome=yes): the unit will not start" for h in hidden]
    missing = [g for g in DEVICE_GROUPS if g not in groups]
    if missing:
        warnings.append(f"group(s) {', '.join(missing)} do not exist here and are left out of the unit"
                        + ("; for the PCIe/M.2 Coral run `sudo groupadd --system apex` and install again"
                           if "apex" in missing else ""))
    if model is None and not _in_root(root, CURRENT).exists():
        warnings.append(f"no model at {CURRENT}: install one with `edge install-service --model BUNDLE`")
    _carry_out(steps, dry_run)
    return Report(tuple(steps), _next_install(root), tuple(warnings), dry_run)


def _carry_out(steps: list[Step], dry_run: bool) -> None:
    if not dry_run:
        for step in steps:
            if step.apply:
                step.apply()


def _next_install(root: Path) -> tuple[str, ...]:
    if root != Path("/"):
        return (f"sudo systemctl --root={root} enable {UNIT_FILE}   # starts at the image's first boot",)
    return ("sudo udevadm control --reload-rules && sudo udevadm trigger   # then replug the USB Accelerator",
            "sudo systemctl daemon-reload",
            f"sudo systemctl enable --now {SERVICE}",
            f"systemctl status {SERVICE}",
            f"journalctl -u {SERVICE} -f")


def uninstall_service(*, root: Path = Path("/"), config: Path = DEFAULT_CONFIG, purge: bool = False,
                      dry_run: bool = False) -> Report:
    """Remove the unit and the udev rules; with ``purge`` also the config, state, logs and user."""
    root = root.resolve()
    check_config_path(config)
    _needs_root(root, dry_run, "uninstall-service")
    enabled = [link for wants in sorted(_in_root(root, UNIT_DIR).glob("*.wants"))
               if (link := wants / UNIT_FILE).is_symlink()]  # in an image the link's target is outside
    if enabled:
        raise EdgeError(f"{SERVICE} is enabled ({enabled[0]}).",
                        f"First run: sudo systemctl disable --now {SERVICE}" +
                        (f" (or systemctl --root={root} disable {UNIT_FILE})" if root != Path("/") else ""))
    targets = [UNIT_DIR / UNIT_FILE, UNIT_DIR / f"{UNIT_FILE}.d", RULES_DIR / RULES_FILE]  # .d: systemctl edit
    if purge:  # the whole /etc/skin-edge folder when the config lives in the default one
        targets += [config.parent if config.parent == DEFAULT_CONFIG.parent else config, STATE_DIR, LOGS_DIR]
    steps = []
    for target in (_in_root(root, t) for t in targets):
        if target.is_dir() and not target.is_symlink():
            steps.append(Step("remove", str(target), "folder", lambda t=target: shutil.rmtree(t)))
        elif target.exists() or target.is_symlink():
            steps.append(Step("remove", str(target), apply=target.unlink))
        else:
            steps.append(Step("skip", str(target), "not there"))
    if purge and (root == Path("/") or _image_root(root)) and _user_groups(root, USER) is not None:
        argv = ["userdel", *_root_args(root), USER]
        steps.append(Step("run", shlex.join(argv), apply=_run(argv)))
    _carry_out(steps, dry_run)
    kept = () if purge else (f"kept {STATE_DIR} and {config} (remove them with --purge)",)
    nxt = () if root != Path("/") else ("sudo systemctl daemon-reload", "sudo udevadm control --reload-rules")
    return Report(tuple(steps), nxt, kept, dry_run)
