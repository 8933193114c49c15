"""``python -m fl_sim.deploy``: a SuperLink and N SuperNodes on this machine, for ``flwr run``.

The Deployment Engine with real processes talking over the loopback network:
one ``flower-superlink`` and one ``flower-supernode`` per client, SuperNode ``i``
holding partition ``i`` of ``N`` (``--node-config "partition-id=i num-partitions=N"``).
Secure by default: TLS with a CA made here (:mod:`fl_sim.certs`), and SuperNode
authentication, so only the node keys registered with the SuperLink may join.
``--insecure`` turns both off.

It writes the SuperLink connection ``fl-sim-deployment`` into Flower's config
(``$FLWR_HOME/config.toml``, by default ``~/.flwr/``) so that
``flwr run . fl-sim-deployment --stream`` runs the app on it, and stops every
process it started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from fl_sim.certs import LOOPBACK, write_node_key, write_tls
from fl_sim.processes import server_env, start, stop

CONNECTION = "fl-sim-deployment"
STARTUP_S = 60.0


class Deployment:
    """The SuperLink and SuperNodes of one local deployment; a context manager.

    Everything lives in ``folder``: ``certs/``, ``keys/node_<i>[.pub]``,
    ``logs/`` and one Flower home per process under ``home/`` (as if each ran on
    its own machine). The ServerApp runs in ``cwd``, so relative outputs land there.
    """

    def __init__(
        self,
        folder: Path,
        nodes: int = 5,
        port: int = 8000,
        node_port: int = 9094,
        insecure: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.folder, self.nodes, self.insecure = folder.resolve(), nodes, insecure
        self.port, self.node_port, self.cwd = port, node_port, cwd
        self.certs = self.folder / "certs"
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def node_key(self, i: int) -> Path:
        return self.folder / "keys" / f"node_{i}"

    def start(self) -> None:
        """Keys, the connection, the SuperLink, node registrations, the SuperNodes."""
        self._prepare_keys()
        write_connection(self.address, None if self.insecure else self.certs / "ca.crt")
        self._start_superlink()
        for i in range(self.nodes):
            if not self.insecure:
                register(self.node_key(i))
            self.start_node(i)
        wait_online(self.nodes)

    def start_node(
        self, i: int, key: Path | None = None, port: int | None = None
    ) -> subprocess.Popen:
        """SuperNode ``i`` with partition ``i``, authenticated by ``key`` (its own by default).

        Its API for its ClientApps listens on ``port`` (``node_port + i`` by default).
        """
        command = [
            "flower-supernode",
            "--superlink",
            self.address,
            "--node-config",
            f"partition-id={i} num-partitions={self.nodes}",
            "--host",
            LOOPBACK,
            "--port",
            str(port or self.node_port + i),
        ]
        if self.insecure:
            command.append("--insecure")
        else:
            command += ["--root-certificates", str(self.certs / "ca.crt")]
            command += ["--auth-supernode-private-key", str(key or self.node_key(i))]
            command += self._tls_server_args()
        name = f"node_{i}" if key is None else f"node_{i}_{key.name}"
        return self._start(command, name)

    def close(self) -> None:
        """Stop every process started and still running, the SuperLink last."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                stop(proc)

    def _prepare_keys(self) -> None:
        """Make the CA, certificate and node keys that are not there yet."""
        if self.insecure:
            return
        if not (self.certs / "server.key").exists():
            write_tls(self.certs)
        for i in range(self.nodes):
            if not self.node_key(i).exists():
                write_node_key(self.node_key(i))

    def _start_superlink(self) -> None:
        command = ["flower-superlink", "--host", LOOPBACK, "--port", str(self.port)]
        command.append("--disable-runtime-dependency-installation")
        if self.insecure:
            command.append("--insecure")
        else:
            command += [*self._tls_server_args(), "--enable-supernode-auth"]
        self._start(command, "superlink", cwd=self.cwd)
        wait_healthy(self.address, None if self.insecure else self.certs / "ca.crt")

    def _tls_server_args(self) -> list[str]:
        """The SuperLink's APIs, and each SuperNode's API for its ClientApps, over TLS."""
        return [
            *("--ssl-ca-certfile", str(self.certs / "ca.crt")),
            *("--ssl-certfile", str(self.certs / "server.crt")),
            *("--ssl-keyfile", str(self.certs / "server.key")),
        ]

    def _start(self, command: list[str], name: str, cwd: Path | None = None) -> subprocess.Popen:
        home = self.folder / "home" / name
        home.mkdir(parents=True, exist_ok=True)
        proc = start(
            command,
            self.folder / "logs" / f"{name}.log",
            server_env(FLWR_HOME=str(home)),
            cwd=cwd or home,
        )
        self.processes.append(proc)
        return proc


def write_connection(address: str, ca: Path | None) -> None:
    """Add (or update) the ``fl-sim-deployment`` connection in Flower's config."""
    from flwr.cli.flower_config import write_superlink_connection
    from flwr.cli.typing import SuperLinkConnection

    write_superlink_connection(
        SuperLinkConnection(
            name=CONNECTION,
            address=address,
            root_certificates=str(ca) if ca else None,
            insecure=ca is None,
        )
    )


def wait_healthy(address: str, ca: Path | None) -> None:
    """Return once the SuperLink answers on its HTTP(S) port."""
    verify = ssl.create_default_context(cafile=str(ca)) if ca else False
    url = f"{'https' if ca else 'http'}://{address}/health"
    _until(lambda: _answers(url, verify), "the SuperLink to answer on " + url)


def register(public_key: Path) -> None:
    """``flwr supernode register``: allow the node holding this key's private half to join."""
    pub = public_key.with_name(public_key.name + ".pub")
    flwr(["supernode", "register", str(pub), CONNECTION])


def wait_online(count: int) -> None:
    """Return once ``count`` SuperNodes are online at the SuperLink."""

    def online() -> bool:
        nodes = json.loads(flwr(["supernode", "list", CONNECTION, "--format", "json"]))["nodes"]
        return sum(node["status"] == "online" for node in nodes) >= count

    _until(online, f"{count} SuperNodes to come online")


def flwr(args: list[str]) -> str:
    """Run the ``flwr`` CLI quietly; its stdout, or RuntimeError with its output."""
    result = subprocess.run(
        ["flwr", *args], capture_output=True, text=True, env=server_env(), timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"flwr {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _answers(url: str, verify) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=2).is_success
    except httpx.HTTPError:
        return False


def _until(ready, what: str, timeout: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fl_sim.deploy", description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path("deployment"))
    parser.add_argument("--nodes", type=int, default=5, help="SuperNodes (= --num-clients)")
    parser.add_argument("--port", type=int, default=8000, help="the SuperLink's port")
    parser.add_argument("--node-port", type=int, default=9094, help="SuperNode i uses this + i")
    parser.add_argument("--insecure", action="store_true", help="no TLS, no node authentication")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deployment = Deployment(
        args.folder, args.nodes, args.port, args.node_port, args.insecure, cwd=Path.cwd()
    )
    with deployment:
        mode = "insecure" if args.insecure else "TLS, SuperNode authentication"
        print(f"SuperLink on {deployment.address} ({mode}), {args.nodes} SuperNodes online.")
        print(f"Logs in {deployment.folder / 'logs'}/. Run the app from the project folder with")
        print(f"  flwr run . {CONNECTION} --stream")
        print("Ctrl-C stops the SuperLink and the SuperNodes.", flush=True)
        try:
            while all(p.poll() is None for p in deployment.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
    print("a SuperLink or SuperNode stopped; see the logs", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
