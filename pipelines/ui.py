"""``cti ui`` (``make ui``): the Dagster UI and daemon on the data directory, with the key ``cti run`` uses.

The code location the UI loads reads its settings from the environment (``Settings.from_env``), so the child
process gets the same data directory, configuration directory, instance and key source as ``cti run``:
:func:`environment` builds that environment (for the child only; this process's environment is not
changed). ``dg dev`` starts a code server, a webserver and the daemon; they run in their own process group,
which :func:`serve` stops as a whole when it is stopped (Ctrl-C, SIGTERM) or when ``dg dev`` ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from pipelines.instance import WORKSPACE
from pipelines.settings import KEY_FILE_VARIABLE, KEY_VARIABLE, ExtractSource, MockSource, Settings

#: How long ``dg dev``'s processes get to stop after SIGTERM before the group is killed.
STOP_SECONDS = 10.0


def environment(settings: Settings, /, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the UI's processes: ``base`` (default: this process's) plus the settings."""
    env = dict(os.environ if base is None else base)
    layout = settings.layout
    env["CTI_DATA_DIR"] = str(layout.root)
    env["DAGSTER_HOME"] = str(layout.dagster_home)
    if settings.config.path is not None:
        env["CTI_CONFIG_DIR"] = str(settings.config.path)
    if settings.key.file is not None:  # a key file (e.g. the demo key): the variable must not shadow it
        env.pop(KEY_VARIABLE, None)
        env[KEY_FILE_VARIABLE] = str(settings.key.file)
    if isinstance(settings.source, ExtractSource):
        env["CTI_REGISTER_SOURCE"], env["CTI_EXTRACTS_DIR"] = "extracts", str(settings.source.directory)
    elif isinstance(settings.source, MockSource):
        env["CTI_REGISTER_SOURCE"] = "mock"
        env["CTI_PERSONS"], env["CTI_SEED"] = str(settings.source.persons), str(settings.source.seed)
    env.setdefault("GX_ANALYTICS_ENABLED", "False")
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return env


def command(*, host: str, port: int) -> list[str]:
    """``dg dev`` of this virtual environment on the repository's workspace."""
    dg = Path(sys.executable).with_name("dg")
    return [str(dg), "dev", "--host", host, "--port", str(port), "--workspace", str(WORKSPACE)]


def serve(settings: Settings, /, *, host: str, port: int, key_id: str,
          echo: Callable[[str], None] = print) -> int:
    """Run ``dg dev`` in its own process group until it ends or this process is stopped; return its status."""
    child = subprocess.Popen(command(host=host, port=port), env=environment(settings), cwd=WORKSPACE.parent,
                             start_new_session=True)
    echo(f"Dagster UI on http://{host}:{port} for {settings.layout.root} (key id {key_id}; key from "
         f"{settings.key.describe()}). dg dev runs as process group {child.pid}: stop it with Ctrl-C "
         f"(or `kill -TERM -- -{child.pid}`).")

    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = child.wait()
        return 128 - status if status < 0 else status
    except KeyboardInterrupt:
        stop_group(child)
        echo("Dagster UI stopped (its whole process group).")
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        if child.poll() is None:
            stop_group(child)


def stop_group(child: subprocess.Popen, /) -> int:
    """SIGTERM the child's process group, SIGKILL it after :data:`STOP_SECONDS`; return the child's status."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            child.wait(STOP_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # the code server and daemon may outlive dg dev itself: nothing of the group may stay behind
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return child.wait()
