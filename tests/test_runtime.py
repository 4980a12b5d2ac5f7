"""Runtime choice (LiteRT > tflite-runtime > TensorFlow Lite) and Edge TPU device strings."""

from __future__ import annotations

import importlib

import pytest

from edge.backends import edgetpu, runtime
from edge.errors import DelegateError, RuntimeNotFound


@pytest.fixture(autouse=True)
def _fresh_choice():
    runtime.get_runtime.cache_clear()
    yield
    runtime.get_runtime.cache_clear()


def test_litert_preferred():
    rt = runtime.get_runtime()
    assert rt.name == "ai-edge-litert" and rt.version[0].isdigit()


def test_falls_back_in_order_and_says_why(monkeypatch):
    real = importlib.import_module

    def without_litert(name, *a, **k):
        if name.startswith(("ai_edge_litert", "tflite_runtime")):
            raise ImportError(f"No module named '{name.split('.')[0]}'")
        return real(name, *a, **k)

    monkeypatch.setattr(runtime.importlib, "import_module", without_litert)
    rt = runtime.get_runtime()
    assert rt.name == "tensorflow"
    assert rt.skipped[0].startswith("ai-edge-litert:") and rt.skipped[1].startswith("tflite-runtime:")


def test_nothing_importable(monkeypatch):
    def nothing(name, *a, **k):
        raise ImportError("numpy.core.multiarray failed to import")

    monkeypatch.setattr(runtime.importlib, "import_module", nothing)
    with pytest.raises(RuntimeNotFound, match="pip install ai-edge-litert"):
        runtime.get_runtime()


def test_forced_by_environment(monkeypatch):
    monkeypatch.setenv("SKIN_EDGE_RUNTIME", "bogus")
    with pytest.raises(RuntimeNotFound, match="Unknown runtime"):
        runtime.get_runtime()


@pytest.mark.parametrize("system,name", [("Linux", "libedgetpu.so.1"), ("Darwin", "libedgetpu.1.dylib"),
                                         ("Windows", "edgetpu.dll")])
def test_delegate_library_names(system, name):
    assert edgetpu.delegate_library(system) == name


@pytest.mark.parametrize("device,parsed", [("usb", ("edgetpu", "usb")), ("usb:0", ("edgetpu", "usb:0")),
                                           ("pci:1", ("edgetpu", "pci:1")), ("pci", ("edgetpu", "pci")),
                                           ("edgetpu", ("edgetpu", None)), ("cpu", ("cpu", None)),
                                           (None, ("auto", None))])
def test_device_strings(device, parsed):
    from edge.backends.devices import parse_device

    choice = parse_device(device)
    assert (choice.mode, choice.coral) == parsed


@pytest.mark.parametrize("device", ["usb:", "gpu", "pci:x", "usb:0:1", ""])
def test_one_parser_refuses_a_bad_device_everywhere(device, tmp_path):
    """The CLI, the config file and doctor all refuse it with the same words."""
    from edge.backends.devices import parse_device
    from edge.errors import ConfigError, DelegateError
    from edge.run.config import load_config

    with pytest.raises(DelegateError, match="Unknown (Edge TPU )?device"):
        parse_device(device)
    (tmp_path / "edge.toml").write_text(f'device = "{device}"\n')
    with pytest.raises(ConfigError, match="is not a device"):
        load_config(tmp_path / "edge.toml")


def test_delegate_options_and_missing_library():
    calls = []

    def fake_load_delegate(library, options):
        calls.append((library, options))
        raise ValueError("Failed to load delegate from libedgetpu.so.1")

    with pytest.raises(DelegateError, match="not installed"):
        edgetpu.load_edgetpu_delegate(fake_load_delegate, "usb:1")
    assert calls == []  # never handed to the runtime when the library is absent


def test_library_present_but_no_device(monkeypatch):
    monkeypatch.setattr(edgetpu, "_library_missing", lambda library: False)

    def fake_load_delegate(library, options):
        raise ValueError("Failed to load delegate from libedgetpu.so.1")

    with pytest.raises(DelegateError, match="no Edge TPU pci:0 could be opened"):
        edgetpu.load_edgetpu_delegate(fake_load_delegate, "pci:0")


def test_delegate_options_passed_to_the_runtime(monkeypatch):
    monkeypatch.setattr(edgetpu, "_library_missing", lambda library: False)
    calls = []
    assert edgetpu.load_edgetpu_delegate(lambda lib, opts: calls.append((lib, opts)) or "delegate", "usb:1") == "delegate"
    assert edgetpu.load_edgetpu_delegate(lambda lib, opts: calls.append((lib, opts)) or "delegate") == "delegate"
    assert calls == [("libedgetpu.so.1", {"device": "usb:1"}), ("libedgetpu.so.1", {})]
