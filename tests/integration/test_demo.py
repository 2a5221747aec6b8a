"""make demo's script (tools/demo.sh) shows what the README says it
shows (issue 13.6): DirectPush (a Ping held until the simulator's new
mail wakes it) and a lockout, with the gateway's own lines; and a port
another program holds is reported by name instead of a failed start.
The demo uses the module built in this tree and lives in demo/."""

import os
import pathlib
import socket
import subprocess

import pytest

from eastest.nginx import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.sh"


def run(action, port, backend_port):
    env = dict(os.environ, DEMO_PORT=str(port),
               DEMO_BACKEND_PORT=str(backend_port))
    return subprocess.run([str(DEMO), action], env=env, cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


@pytest.fixture
def ports(module_path):
    if not (ROOT / "build" / "ngx_http_eas_module.so").exists():
        pytest.skip("the demo runs the module built in this tree")
    ports = free_port(), free_port()
    yield ports
    run("stop", *ports)


def test_demo_shows_directpush_and_a_lockout(ports):
    result = run("start", *ports)

    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "Ping (heartbeat 300 s) -> 200 Status 2, changes in folder 5" \
        in out
    assert ('eas: preauth refused: invalid password for user "amy", user '
            '"amy" locked out for 120 s after 3 failures') in out
    assert 'eas: preauth refused: user "amy" is locked out for' in out
    # the known-good phone is not locked out with its user
    assert out.rstrip().count("FolderSync -> 200 Status 1") >= 2
    assert '"first_seen_iso":"' in out


def test_demo_names_a_busy_port(ports):
    port, backend_port = ports
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        result = run("start", port, backend_port)
    finally:
        holder.close()

    assert result.returncode != 0
    assert "127.0.0.1:%d is already in use" % port in result.stdout
    assert "DEMO_PORT=" in result.stdout
