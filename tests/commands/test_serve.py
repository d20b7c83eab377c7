"""``digitnet serve`` refuses to start, in one line, when it could not serve anything useful."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_port_out_of_range_is_one_line(cli, trained_run, port):
    code, _, err = cli("serve", "--run", trained_run, "--port", port)
    assert code == 2 and err.count("\n") == 1
    assert f"--port must be 0-65535 (0: any free port), got {port}" in err


def test_workers_must_be_at_least_one(cli, trained_run):
    code, _, err = cli("serve", "--run", trained_run, "--workers", "0")
    assert code == 2 and err.count("\n") == 1 and "--workers" in err


def test_workers_hand_the_bound_port_to_uvicorns_process_manager(cli, trained_run, monkeypatch,
                                                                 tmp_path, capsys):
    from digitnet.commands import serve
    from digitnet.web.app import SETTINGS_VARIABLE, Settings

    class Replaced(Exception):  # what os.execve would do: this process becomes the command
        pass

    def execve(path, argv, env):
        raise Replaced(argv, env)

    monkeypatch.setattr(serve.os, "execve", execve)
    with pytest.raises(Replaced) as replaced:
        cli("serve", "--run", trained_run, "--port", "0", "--workers", "3", "--backend", "torch",
            "--store", tmp_path / "store", "--allow-origin", "https://Digits.example.org/",
            "--corrections-per-client", "5")
    argv, env = replaced.value.args
    assert argv[1:4] == ["-m", "uvicorn", "digitnet.web.app:from_environment"] and "--factory" in argv
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--http") + 1] == "digitnet.web.guard:GuardedH11"  # header and body deadlines
    fd = int(argv[argv.index("--fd") + 1])
    with socket.socket(fileno=os.dup(fd)) as bound:  # the port bound and checked before
        assert os.get_inheritable(fd) and bound.getsockname()[0] == "127.0.0.1"
        port = bound.getsockname()[1]
    # fd itself stays open: it is the socket serve made, which closes it when freed (closing
    # it here too would close whatever file took the number meanwhile: once, the event loop
    # of a later test's client)
    # --port 0 took a free port: the line says which, and the runtime in use
    assert f"(tutorial_cnn, torch, 3 worker processes) at http://127.0.0.1:{port}/" in capsys.readouterr().out
    settings = Settings.from_json(env[SETTINGS_VARIABLE])
    assert settings.run_dir == trained_run.resolve() and settings.backend == "torch"
    assert settings.store == tmp_path / "store"  # every worker keeps corrections in one database
    assert settings.allowed_origins == ("https://digits.example.org",)
    assert settings.corrections_per_client == 5
    assert (tmp_path / "store" / "corrections.sqlite").is_file()


def test_serve_is_a_listed_command(cli, capsys):
    with pytest.raises(SystemExit) as stop:
        cli("serve", "--help")
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "--host" in out and "--backend" in out


def test_an_empty_admin_token_or_a_bad_origin_stops_the_start(cli, trained_run, tmp_path, monkeypatch):
    from digitnet.commands import serve

    started = []
    monkeypatch.setattr(serve, "listen", lambda *a: started.append(a))
    monkeypatch.setenv("DIGITNET_ADMIN_TOKEN", "")
    code, _, err = cli("serve", "--run", trained_run, "--port", "0", "--store", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "set but empty" in err
    monkeypatch.delenv("DIGITNET_ADMIN_TOKEN")
    code, _, err = cli("serve", "--run", trained_run, "--allow-origin", "digits.example.org")
    assert code == 2 and err.count("\n") == 1 and "not an origin" in err and not started
