"""edge.util.atomic: one way to write a file or a folder so that it is complete or absent."""

from __future__ import annotations

import pytest

from edge.util.atomic import atomic_folder, write_text


def test_a_failed_build_leaves_the_previous_folder_whole(tmp_path):
    out = tmp_path / "set"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(KeyboardInterrupt), atomic_folder(out, replace=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary left behind


def test_replace_swaps_in_the_new_folder_and_removes_the_old(tmp_path):
    out = tmp_path / "set"
    with atomic_folder(out) as tmp:
        (tmp / "old.txt").write_text("x")
    with pytest.raises(FileExistsError), atomic_folder(out):
        pass
    with atomic_folder(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_write_text_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = write_text(tmp_path / "f.json", "{}\n", mode=0o600)
    assert target.read_text() == "{}\n" and (target.stat().st_mode & 0o777) == 0o600

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    with pytest.raises(OSError):
        write_text(target, '{"new": 1}\n')
    assert target.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["f.json"]
