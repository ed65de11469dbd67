"""The one code server that ``cryptorun schedule start`` shares between the daemon and the web UI.

Given ``workspace.yaml`` (a ``python_module`` entry), the daemon and the web server each spawn a
code server of their own, and the daemon replaces its one whenever a heartbeat is late ("No
heartbeat received in 20 seconds, shutting down", about once a minute). As Dagster's deployment
docs do, ``start`` runs ``dagster code-server start`` itself on a free loopback port and hands both
a generated workspace file with a ``grpc_server`` entry pointing to it. The code server reloads
the definitions when the UI's "Reload" is clicked (it restarts its own child server).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from cryptorun_pipelines.cli.errors import EXIT_JOB_FAILED, CliError
from cryptorun_pipelines.cli.instance import CODE_LOCATION, DEFINITIONS_MODULE

HOST = "127.0.0.1"
READY_TIMEOUT_S = 180.0
WORKSPACE_NAME = "cryptorun_workspace.{pid}.yaml"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def command(dagster: str, port: int, project_root: Path) -> list[str]:
    return [
        dagster, "code-server", "start", "-m", DEFINITIONS_MODULE, "-d", str(project_root),
        "-h", HOST, "-p", str(port), "--location-name", CODE_LOCATION,
    ]


def workspace_text(port: int) -> str:
    return (
        "# Written by `cryptorun schedule start` (removed when it stops): the daemon and the web UI\n"
        "# share its one code server. `dagster dev` uses the repository's workspace.yaml instead.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {HOST}\n"
        f"      port: {port}\n"
        f"      location_name: {CODE_LOCATION}\n"
    )


def write_workspace(home: Path, port: int, pid: int) -> Path:
    path = home / WORKSPACE_NAME.format(pid=pid)
    path.write_text(workspace_text(port), encoding="utf-8")
    return path


def serving(port: int, host: str = HOST) -> bool:
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host=host).ping("cryptorun")
        return True
    except DagsterUserCodeUnreachableError:
        return False


def wait_serving(port: int, alive, stop_requested, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the code server answers a ping; ``alive()`` returns a problem string when it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop_requested.is_set():
            return
        problem = alive()
        if problem:
            raise CliError(f"the code server did not start: {problem}", EXIT_JOB_FAILED)
        if serving(port):
            return
        stop_requested.wait(0.25)
    raise CliError(f"the code server did not answer on {HOST}:{port} within {timeout_s:.0f}s", EXIT_JOB_FAILED)
