"""``digitnet serve`` refuses to start, in one line, when it could not serve anything useful."""

from __future__ import annotations

import socket

import pytest

from digitnet.inference import bundled


def test_no_latest_run_says_how_to_make_one(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("serve", "--run", "latest")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "digitnet train" in err


def test_without_the_bundled_reader_serve_says_how_to_rebuild_it(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "READER_DIR", tmp_path)
    code, out, err = cli("serve")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "make reader" in err


def test_a_missing_run_directory_stops_the_start(cli, tmp_path):
    code, _, err = cli("serve", "--run", tmp_path / "nothing-here")
    assert code == 2 and err.count("\n") == 1 and "no such run directory" in err


def test_a_damaged_run_stops_the_start_before_listening(cli, trained_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained_run / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    code, _, err = cli("serve", "--run", broken, "--port", "0")
    assert code == 2 and err.count("\n") == 1 and "model.safetensors" in err


def test_a_port_in_use_is_one_line(cli, trained_run):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "--run", trained_run, "--port", port)
    assert code == 2 and err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "--port" in err


def test_serve_is_a_listed_command(cli, capsys):
    with pytest.raises(SystemExit) as stop:
        cli("serve", "--help")
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "--host" in out and "--backend" in out
