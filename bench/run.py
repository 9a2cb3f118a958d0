"""Measure Portcullis beside the apps a Flask developer would otherwise pick: ``make bench``.

The systems run under the same server (gunicorn, 2 sync workers on
127.0.0.1), each from its own temporary directory and SQLite database: a bare
Flask route (the floor every ratio is taken against), the tutorial-style app
(``tutorial_app.py``), Flask-Security-Too (``fst_app.py``, in its own venv)
and the Portcullis demo, once per session store (``sql``; ``redis`` on the
machine's Redis under a prefix of the run's own; ``memcached`` on a server
the run starts and stops). Pages, sign-in and sign-up go through ``wrk``, whose
Lua hook checks every response; token refresh, where each request needs the
answer to the one before, through a bounded client here. Scenarios are
interleaved across systems in each round, so a busy machine hurts all alike,
and each figure is the median of the rounds. Server CPU per request comes
from ``/proc`` (master and workers), the steadiest figure on a shared machine.

The tables go to ``bench/RESULTS.md`` above the notes marker; the notes
below it (what the profile showed, what changed) are kept as they are.
``--profile`` also samples a Portcullis worker with py-spy and writes the
hottest frames to ``bench/out/``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent  # the project venv: Portcullis, the tutorial app, py-spy
FST_VENV = BENCH / ".venv-fst"
FST_REQUIREMENTS = BENCH / "requirements-fst.txt"
OUT = BENCH / "out"
REDIS_URL = "redis://127.0.0.1:6379/0"
RESULTS = BENCH / "RESULTS.md"
NOTES_MARKER = "<!-- Everything below this line is written by hand; bench/run.py keeps it. -->"

WORKERS = 2
WRK_THREADS, WRK_CONNECTIONS = 2, 16
POST_CLIENTS = 4  # token refresh: two per worker, one being served and one waiting
USER_AGENT = "portcullis-bench/1"
USERNAME, EMAIL = "bench", "bench@example.com"
PASSWORD = "correct horse battery staple"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1

# wrk counts any 2xx or 3xx as a success; here a signed-in page that redirects to the
# sign-in form is a failure, and so is a sign-in that does not redirect where a success
# goes with a session cookie. Arguments: the status, the Location ("" for none) and the
# form body ("" for a GET); "{n}" in the body becomes a number no other request used.
WRK_SCRIPT = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  expected, location, body = tonumber(args[1]), args[2], args[3]
  unexpected, counter = 0, 0
  if body ~= "" then
    wrk.method, wrk.body = "POST", body
    if body:find("{n}", 1, true) then
      request = function()
        counter = counter + 1
        local unique = string.format("%st%dn%d", args[4], id, counter)
        return wrk.format(nil, nil, nil, (body:gsub("{n}", unique)))
      end
    end
  end
end
function response(status, headers, body)
  local ok = status == expected
  if ok and location ~= "" then
    ok = (headers["Location"] or ""):gsub("^https?://[^/]+", "") == location
      and (headers["Set-Cookie"] or ""):find("session=", 1, true) ~= nil
  end
  if not ok then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "unexpected": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, total, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class BenchError(RuntimeError):
    """A response or a server was not what the benchmark needs: the figures would lie."""


# -- processes -------------------------------------------------------------------------------


def run(command: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a set-up command to completion, raising with its output when it fails."""
    result = subprocess.run(  # noqa: S603 (our own fixed commands)
        [str(part) for part in command], capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode:
        raise BenchError(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def children_cpu_seconds() -> float:
    """CPU used by this process's finished children (wrk), user plus system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_memory_kib(pid: int) -> tuple[int, int]:
    """Resident set size now and at its peak (VmRSS, VmHWM), in KiB."""
    values = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])


def control_socket_off(gunicorn: Path) -> list[str]:
    """gunicorn 25.1+ keeps a control socket at one path per user ($HOME/.gunicorn), which
    servers running side by side would take from each other: turn it off where it exists."""
    usage = subprocess.run(  # noqa: S603 (our own fixed command)
        [str(gunicorn), "--help"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    return ["--no-control-socket"] if "--no-control-socket" in usage else []


class Server:
    """A gunicorn master and its sync workers, started and stopped by PID."""

    def __init__(self, gunicorn: Path, app: str, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "server.log"
        command = [
            str(gunicorn),
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--pythonpath",
            str(BENCH),
            "--log-level",
            "warning",
            *control_socket_off(gunicorn),
            app,
        ]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own fixed command)
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.workers: list[int] = []

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"server exited; its log:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if Client(self.port).get(path).status < 500 and self._all_workers_up():
                    self.workers = self._children()
                    return
            time.sleep(0.2)
        raise BenchError(f"server on port {self.port} not ready; its log:\n{self.log.read_text()}")

    def _children(self) -> list[int]:
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(child) for child in children)

    def _all_workers_up(self) -> bool:
        return len(self._children()) == WORKERS

    def cpu_seconds(self) -> float:
        """CPU used so far by the master and every worker; fails if a worker was replaced."""
        if self._children() != self.workers:
            raise BenchError(f"a worker restarted; server log:\n{self.log.read_text()[-3000:]}")
        return sum(proc_cpu_seconds(pid) for pid in [self.process.pid, *self.workers])

    def memory_kib(self) -> list[tuple[int, int]]:
        """(RSS, peak RSS) of each worker, in KiB."""
        return [proc_memory_kib(pid) for pid in self.workers]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- an HTTP client with a cookie jar -----------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def set_cookies(self) -> dict[str, str]:
        pairs = (v.split(";", 1)[0] for k, v in self.headers if k.lower() == "set-cookie")
        return dict(pair.split("=", 1) for pair in pairs)

    def csrf_token(self) -> str:
        match = re.search(rb'name="csrf_token"[^>]*?value="([^"]+)"', self.body)
        if match is None:
            raise BenchError(f"no csrf_token in the form (status {self.status})")
        return match.group(1).decode()

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One browser: a cookie jar, and a new connection per request (sync workers close them)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.getheaders(), response.read())
        finally:
            connection.close()
        for name, value in reply.set_cookies().items():
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return reply

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str]) -> Reply:
        body = urlencode(fields).encode()
        return self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )

    def post_json(self, path: str, payload: dict[str, str]) -> Reply:
        return self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )


# -- the systems ---------------------------------------------------------------------------------


@dataclass
class System:
    """One contestant: how to build it, serve it, sign in to it and register on it."""

    key: str
    title: str
    bin: Path  # the bin/ of its venv (python, gunicorn)
    app: str  # gunicorn's APP argument
    scenarios: tuple[str, ...]
    identity_field: str = "identity"
    register_fields: tuple[str, ...] = ("username", "email", "password", "password_confirm")
    signed_in_path: str = "/account"
    after_sign_in: str = "/account"  # where a successful sign-in or sign-up redirects
    env: dict[str, str] = field(default_factory=dict)
    server: Server | None = None
    workdir: Path = Path()
    auth_cookie: str = ""
    access_token: str = ""

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port


def make_systems(workdir: Path, stores: dict[str, str]) -> list[System]:
    """The contestants; ``stores`` maps a session store's name to its URL (beside ``sql``)."""
    secret = secrets.token_hex(32)
    portcullis_env = {
        "FLASK_SECRET_KEY": secret,
        "PORTCULLIS_INSTANCE_PATH": str(workdir / "portcullis"),
        "FLASK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'portcullis' / 'bench.db'}",
        # Flask-Limiter's standard switch: measure the system, not its throttles.
        "FLASK_RATELIMIT_ENABLED": "false",
        # Plain HTTP on loopback: no Secure flag on the cookie (browsers would drop it).
        "FLASK_PORTCULLIS_SECURE_COOKIES": "false",
    }
    systems = [
        System("bare", "bare Flask route", VENV_BIN, "bare_app:app", ("bare",)),
        System(
            "tutorial",
            "tutorial app (Flask-Login + Flask-SQLAlchemy, scrypt)",
            VENV_BIN,
            "tutorial_app:create_app()",
            ("auth", "anon", "login", "register"),
        ),
        System(
            "fst",
            f"Flask-Security-Too {fst_version()} (argon2)",
            FST_VENV / "bin",
            "fst_app:create_app()",
            ("auth", "anon", "login", "register"),
            identity_field="email",
            register_fields=("email", "password", "password_confirm"),
        ),
        System(
            "portcullis",
            "Portcullis demo",
            VENV_BIN,
            "flask_portcullis.demo:create_app()",
            ("auth", "anon", "me", "login", "register", "refresh"),
            after_sign_in="/",  # the demo's PORTCULLIS_POST_LOGIN_VIEW is its home page
            env=portcullis_env,
        ),
    ]
    for store, url in stores.items():  # the pages a store changes: those behind a session
        systems.append(
            System(
                f"portcullis-{store}",
                f"Portcullis demo, {store} sessions",
                VENV_BIN,
                "flask_portcullis.demo:create_app()",
                ("auth", "me"),
                after_sign_in="/",
                env={
                    **portcullis_env,
                    "PORTCULLIS_INSTANCE_PATH": str(workdir / f"portcullis-{store}"),
                    "FLASK_SQLALCHEMY_DATABASE_URI": (
                        f"sqlite:///{workdir / f'portcullis-{store}' / 'bench.db'}"
                    ),
                    "FLASK_PORTCULLIS_SESSION_STORE": url,
                    "FLASK_PORTCULLIS_REDIS_PREFIX": BENCH_PREFIX,
                },
            )
        )
    for system in systems:
        system.workdir = workdir / system.key
        system.workdir.mkdir(parents=True, exist_ok=True)
        system.env.setdefault("BENCH_SECRET_KEY", secret)
        system.env.setdefault("BENCH_DATABASE_URI", f"sqlite:///{system.workdir / 'bench.db'}")
    return systems


def environment(system: System) -> dict[str, str]:
    """The caller's environment without its Flask settings, plus the system's own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PORTCULLIS_"))}
    return {**base, **system.env, "PYTHONPATH": str(BENCH)}


def fst_version() -> str:
    python = FST_VENV / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('Flask-Security-Too'))"
    return run([python, "-c", code]).stdout.strip()


def ensure_fst_venv() -> None:
    """Install Flask-Security-Too into its own venv, again only when its requirements change."""
    stamp = FST_VENV / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= FST_REQUIREMENTS.stat().st_mtime:
        return
    print(f"installing Flask-Security-Too into {FST_VENV.relative_to(ROOT)} ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", "--clear", FST_VENV])
    run([FST_VENV / "bin" / "python", "-m", "pip", "install", "-q", "-r", FST_REQUIREMENTS])
    stamp.touch()


def prepare(system: System) -> None:
    """Create the schema and the bench user the way each system's docs say to."""
    env = environment(system)
    python = system.bin / "python"
    if system.key in ("tutorial", "fst"):
        script = BENCH / f"{system.key}_app.py"
        run([python, script, "init", USERNAME, EMAIL, PASSWORD], env=env, cwd=system.workdir)
    elif system.key.startswith("portcullis"):
        flask: list[str | Path] = [system.bin / "flask", "--app", "flask_portcullis.demo"]
        run([*flask, "db", "upgrade"], env=env, cwd=system.workdir)
        create = ["users", "create", "--username", USERNAME, "--email", EMAIL, "--password-stdin"]
        run([*flask, *create], env=env, cwd=system.workdir, input=PASSWORD + "\n")


def start(system: System) -> None:
    system.server = Server(system.bin / "gunicorn", system.app, environment(system), system.workdir)
    system.server.wait_ready("/" if system.key == "bare" else "/login")


def sign_in(system: System) -> Client:
    """Sign in through the HTML form, check it worked, and return the signed-in browser."""
    client = Client(system.port)
    token = client.get("/login").csrf_token()
    fields = {"csrf_token": token, system.identity_field: login_name(system), "password": PASSWORD}
    reply = client.post_form("/login", fields)
    if reply.status != 302 or not reply.header("Location").endswith(system.after_sign_in):
        raise BenchError(f"{system.key}: sign-in failed ({reply.status})")
    page = client.get(system.signed_in_path)  # consumes the sign-in flash: the steady state
    if page.status != 200:
        raise BenchError(f"{system.key}: signed-in page answered {page.status}")
    return client


def login_name(system: System) -> str:
    return EMAIL if system.identity_field == "email" else USERNAME


def refresh_credentials(system: System) -> None:
    """A fresh session cookie (and API token) for the read scenarios of this round."""
    if system.key == "bare":
        return
    client = sign_in(system)
    system.auth_cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    if "me" in system.scenarios:
        tokens = Client(system.port).post_json(
            "/api/v1/login", {"identity": USERNAME, "password": PASSWORD}
        )
        if tokens.status != 200:
            raise BenchError(f"{system.key}: API sign-in answered {tokens.status}")
        system.access_token = tokens.json()["access_token"]


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One run of one scenario against one system."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per request: master and workers
    client_cpu_ms: float  # the load generator's, on the same cores

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def idle_rps(self) -> float:
        """Requests per second if server and client had every core to themselves."""
        return CORES * 1000 / (self.cpu_ms + self.client_cpu_ms)


def wrk(system: System, scenario: str, seconds: float, script: Path, tag: str = "") -> Sample:
    """Drive a scenario with wrk and check every response (see WRK_SCRIPT)."""
    assert system.server is not None
    path, headers = {
        "bare": ("/", {}),
        "auth": (system.signed_in_path, {"Cookie": system.auth_cookie}),
        "anon": ("/login", {}),
        "me": ("/api/v1/me", {"Authorization": f"Bearer {system.access_token}"}),
        "login": ("/login", {}),
        "register": ("/register", {}),
    }[scenario]
    status, location, body, connections = "200", "", "", WRK_CONNECTIONS
    if scenario in HASHED:
        # The form's own cookie and token, sent again with every POST: each request
        # signs in (or up) afresh, as a browser that just loaded the form would.
        browser = Client(system.port)
        token = browser.get(path).csrf_token()
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        status, location, body = "302", system.after_sign_in, form_body(system, scenario, token)
        # Two per worker, so no worker idles and few are in flight when the run stops.
        connections = 2 * WORKERS
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{math.ceil(seconds)}s",  # wrk takes whole seconds
        "--timeout",
        "10s",
        "-s",
        str(script),
        "-H",
        f"User-Agent: {USER_AGENT}",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += [f"http://127.0.0.1:{system.port}{path}", "--", status, location, body, tag]
    cpu_before, client_before = system.server.cpu_seconds(), children_cpu_seconds()
    output = run(command).stdout
    cpu = system.server.cpu_seconds() - cpu_before
    client = children_cpu_seconds() - client_before
    line = next((x for x in output.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary:\n{output}")
    stats = json.loads(line[4:])
    if not stats["requests"] or stats["unexpected"] or stats["socket_errors"]:
        raise BenchError(f"{system.key}/{scenario}: not every response succeeded: {stats}")
    return Sample(
        requests=stats["requests"],
        seconds=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        cpu_ms=cpu * 1000 / stats["requests"],
        client_cpu_ms=client * 1000 / stats["requests"],
    )


def form_body(system: System, scenario: str, token: str) -> str:
    """The url-encoded sign-in or sign-up form; sign-ups get a new name each ({n})."""
    if scenario == "login":
        fields = {system.identity_field: login_name(system), "password": PASSWORD}
    else:
        every = {
            "username": "r{n}",
            "email": "r{n}@example.com",
            "password": "a long bench passphrase",
            "password_confirm": "a long bench passphrase",
        }
        fields = {name: every[name] for name in system.register_fields}
    return urlencode({"csrf_token": token, **fields}, safe="{}@")


def refresh(system: System, seconds: float, limit: int = 5000) -> Sample:
    """Token refresh from POST_CLIENTS API clients, each trading its own token again and again.

    Each request needs the token the one before it returned, so this is a client of
    our own, not wrk; it stops after ``seconds`` or ``limit`` requests, whichever first.
    """
    assert system.server is not None
    clients = []
    for _ in range(POST_CLIENTS):  # signing in is set-up, not measured
        reply = Client(system.port).post_json(
            "/api/v1/login", {"identity": USERNAME, "password": PASSWORD}
        )
        if reply.status != 200:
            raise BenchError(f"{system.key}: API sign-in answered {reply.status}")
        clients.append(reply.json()["refresh_token"])
    deadline = time.monotonic() + seconds

    def loop(token: str) -> list[float]:
        api, latencies = Client(system.port), []
        for _ in range(limit // POST_CLIENTS):
            if time.monotonic() >= deadline:
                break
            sent = time.perf_counter()
            answer = api.post_json("/api/v1/refresh", {"refresh_token": token})
            latencies.append(time.perf_counter() - sent)
            if answer.status != 200:
                raise BenchError(f"{system.key}: refresh answered {answer.status}")
            token = answer.json()["refresh_token"]
        return latencies

    cpu_before, client_before = system.server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(POST_CLIENTS) as pool:
        latencies = sorted(t for ts in pool.map(loop, clients) for t in ts)
    elapsed = time.perf_counter() - started
    cpu = system.server.cpu_seconds() - cpu_before
    client = time.process_time() - client_before
    return Sample(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        cpu_ms=cpu * 1000 / len(latencies),
        client_cpu_ms=client * 1000 / len(latencies),
    )


@dataclass(frozen=True)
class HashCost:
    """One password check (and one new hash) of a system's configured hasher."""

    hasher: str
    verify_cpu_ms: float
    verify_wall_ms: float

    @property
    def bound(self) -> float:
        """Sign-ins per second the machine's cores could do if they did nothing but hash."""
        return CORES * 1000 / self.verify_cpu_ms


def hash_cost(system: System, rounds: int) -> HashCost:
    if system.key == "portcullis":
        cost = portcullis_hash_cost(rounds)
    else:
        script = BENCH / f"{system.key}_app.py"
        output = run(
            [system.bin / "python", script, "hashtime", str(rounds)], env=environment(system)
        )
        cost = json.loads(output.stdout)
    return HashCost(cost["hasher"], cost["cpu_ms"], cost["wall_ms"])


def portcullis_hash_cost(rounds: int) -> dict[str, Any]:
    """Time Portcullis's configured verify: argon2id at the settings' defaults (OWASP)."""
    from flask_portcullis.passwords import PasswordHashing
    from flask_portcullis.settings import Settings

    hashing = PasswordHashing.from_settings(Settings())
    encoded = hashing.hash(PASSWORD)
    hashing.verify(PASSWORD, encoded)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        if not hashing.verify(PASSWORD, encoded).ok:
            raise BenchError("Portcullis rejected its own hash")
    return {
        "hasher": encoded.rsplit("$", 2)[0],
        "cpu_ms": (time.process_time() - cpu) * 1000 / rounds,
        "wall_ms": (time.perf_counter() - wall) * 1000 / rounds,
    }


# -- the run ---------------------------------------------------------------------------------

HASHED = ("login", "register")  # bounded by the password hash: compared with that bound
PAGES = ("auth", "anon", "me")  # compared with the bare route
SCENARIOS = {
    "bare": "bare route GET /",
    "auth": "authenticated page view",
    "anon": "anonymous login page",
    "me": "JSON /api/v1/me, bearer token",
    "login": "login POST",
    "register": "registration POST",
    "refresh": "API token refresh POST",
}


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    ratios: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # x bare
    idle_ratios: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    hashes: dict[str, list[HashCost]] = field(default_factory=dict)
    memory_runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per Portcullis
    peak_rss_kib: dict[str, int] = field(default_factory=dict)


def one_run(system: System, scenario: str, seconds: float, script: Path, tag: str) -> Sample:
    if scenario == "refresh":
        return refresh(system, seconds)
    return wrk(system, scenario, seconds, script, tag)


def measure(systems: list[System], args: argparse.Namespace, script: Path) -> Results:
    results = Results()
    order = [s for s in SCENARIOS if any(s in system.scenarios for system in systems)]
    print(f"warming up ({len(systems)} systems) ...", flush=True)
    for system in systems:
        refresh_credentials(system)
        for scenario in system.scenarios:
            one_run(system, scenario, 1.0, script, "w")
    for round_number in range(args.rounds):
        # Rotate who goes first each round, so drift in the machine's load hurts no one system.
        shift = round_number % len(systems)
        rotated = systems[shift:] + systems[:shift]
        for system in rotated:
            refresh_credentials(system)
            if "login" in system.scenarios:
                results.hashes.setdefault(system.key, []).append(
                    hash_cost(system, args.hash_rounds)
                )
        bare: Sample | None = None
        for scenario in order:
            for system in rotated:
                if scenario not in system.scenarios:
                    continue
                sample = one_run(system, scenario, args.seconds, script, f"{round_number}")
                results.samples.setdefault((system.key, scenario), []).append(sample)
                if scenario == "bare":
                    bare = sample
                elif bare is not None and scenario in PAGES:
                    key = (system.key, scenario)
                    results.ratios.setdefault(key, []).append(sample.rps / bare.rps)
                    idle = sample.idle_rps / bare.idle_rps
                    results.idle_ratios.setdefault(key, []).append(idle)
                print(
                    f"round {round_number + 1}/{args.rounds} {system.key:>10} {scenario:>8}: "
                    f"{sample.rps:8.1f} req/s  p50 {sample.p50_ms:6.1f} ms  "
                    f"p99 {sample.p99_ms:6.1f} ms  CPU ms/req {sample.cpu_ms:6.2f} server "
                    f"{sample.client_cpu_ms:5.2f} client",
                    flush=True,
                )
    return results


def memory_run(system: System, script: Path, total: int, results: Results) -> None:
    """Serve ``total`` signed-in pages in chunks; record each worker's RSS and the server's
    CPU per request as it goes (neither may grow)."""
    assert system.server is not None
    refresh_credentials(system)
    before = system.server.memory_kib()
    served, chunks, costs = 0, [], []
    rate = median(s.rps for s in results.samples[(system.key, "auth")])
    for _ in range(20):  # bounded, whatever the rate turns out to be
        if served >= total:
            break
        seconds = max(2.0, min(10.0, (total - served) / rate + 0.5))
        sample = wrk(system, "auth", seconds, script)
        served += sample.requests
        chunks.append([rss for rss, _ in system.server.memory_kib()])
        costs.append(sample.cpu_ms)
    run = {
        "requests": served,
        "before": [rss for rss, _ in before],
        "chunks": chunks,
        "costs": costs,
        "after": [rss for rss, _ in system.server.memory_kib()],
    }
    results.memory_runs[system.key] = run
    print(f"memory of {system.key}: {served} signed-in pages, {run}", flush=True)


def profile(system: System, script: Path, seconds: float) -> None:
    """Sample one Portcullis worker with py-spy under load; write the hottest frames."""
    assert system.server is not None
    OUT.mkdir(exist_ok=True)
    refresh_credentials(system)
    for scenario in ("auth", "anon", "me"):
        if scenario not in system.scenarios:
            continue
        raw = OUT / f"profile-{system.key}-{scenario}.txt"
        spy = subprocess.Popen(  # noqa: S603 (our own fixed command)
            [
                str(VENV_BIN / "py-spy"),
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--duration",
                str(int(seconds)),
                "--pid",
                str(system.server.workers[0]),
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        time.sleep(0.5)
        wrk(system, scenario, seconds + 1, script)
        spy.wait(timeout=60)
        summary = OUT / f"profile-{system.key}-{scenario}-top.txt"
        summary.write_text(hottest_frames(raw.read_text()))
        print(f"profile of {scenario}: {summary.relative_to(ROOT)}", flush=True)


def hottest_frames(collapsed: str, top: int = 45) -> str:
    """Share of samples in which each function is on the stack (inclusive) and on top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [
            re.sub(r"\s\((?:.*/)?([^/]+/[^/]+?):\d+\)$", r" (\1)", f) for f in stack.split(";")
        ]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples; inclusive%  self%  function (file)"]
    for frame, n in inclusive.most_common(top):
        if n > 0.97 * total:
            continue  # the server's own loop, under every sample
        lines.append(f"{100 * n / total:6.1f} {100 * own[frame] / total:6.1f}  {frame}")
    return "\n".join(lines) + "\n"


# -- the report -------------------------------------------------------------------------------


def report(systems: list[System], results: Results) -> str:
    """Every system side by side: one row per scenario and figure."""
    keys = [s.key for s in systems]

    def cell(key: str, scenario: str, what: str) -> str:
        samples = results.samples.get((key, scenario))
        if not samples:
            return "—"
        if what == "rps":
            rps = median([s.rps for s in samples])
            if (key, scenario) in results.ratios:
                return f"{rps:,.0f} ({median(results.ratios[(key, scenario)]):.2f}x)"
            if scenario in HASHED:
                return f"{rps:,.1f} ({hash_share(results, key, scenario):.0%} of bound)"
            return f"{rps:,.0f}"
        if what == "latency":
            p50, p99 = median([s.p50_ms for s in samples]), median([s.p99_ms for s in samples])
            return f"{p50:.1f} / {p99:.1f}"
        server, client = (
            median([s.cpu_ms for s in samples]),
            median([s.client_cpu_ms for s in samples]),
        )
        return f"{server:.2f} + {client:.2f}"

    lines = [
        "| scenario | " + " | ".join(s.title for s in systems) + " |",
        "| --- |" + " --- |" * len(keys),
    ]
    for scenario, title in SCENARIOS.items():
        if not any((k, scenario) in results.samples for k in keys):
            continue
        unit = "req/s (share of hash bound)" if scenario in HASHED else "req/s (x bare)"
        for what, label in (
            ("rps", unit),
            ("latency", "p50 / p99 ms"),
            ("cpu", "CPU ms/req, server + client"),
        ):
            lines.append(
                f"| {title}: {label} | {' | '.join(cell(k, scenario, what) for k in keys)} |"
            )
    verify, bound = [], []
    for key in keys:
        costs = results.hashes.get(key, [])
        if costs:
            cpu, wall = (
                median([c.verify_cpu_ms for c in costs]),
                median([c.verify_wall_ms for c in costs]),
            )
            verify.append(f"{cpu:.1f} ({wall:.1f} wall; `{costs[0].hasher}`)")
        else:
            verify.append("—")
        bound.append(f"{median([c.bound for c in costs]):.1f}" if costs else "—")
    lines.append(f"| one password verify, CPU ms | {' | '.join(verify)} |")
    lines.append(f"| hash bound: sign-ins/s on {CORES} cores | {' | '.join(bound)} |")
    peaks = [f"{results.peak_rss_kib[k] / 1024:.1f}" for k in keys]
    lines.append(f"| peak RSS per worker, MiB | {' | '.join(peaks)} |")
    return "\n".join(lines)


def hash_share(results: Results, key: str, scenario: str, *, idle: bool = False) -> float:
    """Median over rounds of sign-ins per second over the hash bound of the same round."""
    pairs = zip(results.samples[(key, scenario)], results.hashes[key], strict=True)
    return median([(s.idle_rps if idle else s.rps) / cost.bound for s, cost in pairs])


def rps_of(results: Results, key: str, scenario: str) -> float:
    return median([sample.rps for sample in results.samples[(key, scenario)]])


def targets(results: Results) -> str:
    """The issue's targets for Portcullis, as ratios of medians in this run."""
    rows = []
    tutorial, fst = rps_of(results, "tutorial", "auth"), rps_of(results, "fst", "auth")
    for key, scenario, versus, base, target in (
        ("portcullis", "auth", "the tutorial app's", tutorial, 1.2),
        ("portcullis-redis", "auth", "the tutorial app's", tutorial, 1.5),
        ("portcullis-memcached", "auth", "the tutorial app's", tutorial, 1.2),
        ("portcullis", "auth", "Flask-Security-Too's", fst, 2.0),
        ("portcullis-redis", "auth", "Flask-Security-Too's", fst, 2.0),
        ("portcullis", "anon", "the tutorial app's", rps_of(results, "tutorial", "anon"), 1.3),
        ("portcullis", "me", "the tutorial app's signed-in page:", tutorial, 1.5),
    ):
        if (key, scenario) not in results.samples:
            continue
        got = rps_of(results, key, scenario) / base
        title = f"{key}: {SCENARIOS[scenario]} ≥ {target}x {versus}"
        rows.append((title, f"{got:.2f}x", got >= target))
    for scenario, title in (("login", "login"), ("register", "registration")):
        got = hash_share(results, "portcullis", scenario)
        rows.append((f"portcullis: {title} ≥ 90% of the hash bound", f"{got:.0%}", got >= 0.9))
    for key, run in results.memory_runs.items():
        growth = max(a - b for a, b in zip(run["after"], run["before"], strict=True)) / 1024
        rows.append(
            (
                f"{key}: no RSS growth over {run['requests']:,} signed-in pages",
                f"{growth:+.1f} MiB per worker at most",
                growth < 1.0,
            )
        )
        first, last = run["costs"][0], run["costs"][-1]
        rows.append(
            (
                f"{key}: no CPU cost growth over the same run",
                f"{first:.2f} → {last:.2f} ms/request",
                last <= first * 1.15,
            )
        )
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {'met' if ok else '**not met**'} |" for t, m, ok in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    system = f"{platform.system()} {platform.release()}"
    return f"{CORES} cores ({cpu}), {system}, Python {platform.python_version()}"


def versions() -> str:
    names = (
        "Flask",
        "Werkzeug",
        "SQLAlchemy",
        "Flask-Login",
        "Flask-WTF",
        "gunicorn",
        "argon2-cffi",
    )
    return ", ".join(f"{name} {metadata.version(name)}" for name in names)


def write_results(text: str) -> None:
    notes = ""
    if RESULTS.exists():
        _, marker, notes = RESULTS.read_text().partition(NOTES_MARKER)
        if not marker:
            notes = ""
    RESULTS.write_text(text.rstrip() + "\n\n" + NOTES_MARKER + (notes or "\n"))


BENCH_PREFIX = f"portcullis-bench-{secrets.token_hex(4)}"  # the run's own Redis keys


@contextlib.contextmanager
def session_stores() -> Iterator[dict[str, str]]:
    """Redis (the machine's, keys under BENCH_PREFIX, deleted afterwards) and a Memcached of
    the run's own, when each is there; a store that is missing is left out, and said so."""
    stores: dict[str, str] = {}
    memcached: subprocess.Popen[bytes] | None = None
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
        stores["redis"] = REDIS_URL
    except Exception as exc:  # any failure: no Redis to measure
        print(f"no Redis at {REDIS_URL} ({exc}): the redis store is not measured", flush=True)
        client = None
    binary = shutil.which("memcached")
    if binary:
        port = free_port()
        command = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
        command += ["-u", "root"] if os.geteuid() == 0 else []
        memcached = subprocess.Popen(  # noqa: S603 (our own fixed command)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        stores["memcached"] = f"memcached://127.0.0.1:{port}"
    else:
        print("no memcached binary (apt-get install memcached): not measured", flush=True)
    try:
        yield stores
    finally:
        if memcached is not None:
            memcached.terminate()
            memcached.wait(timeout=10)
        if client is not None:
            keys = list(client.scan_iter(f"{BENCH_PREFIX}*"))
            if keys:
                client.delete(*keys)
            client.close()


@contextlib.contextmanager
def servers(systems: list[System]) -> Iterator[None]:
    try:
        for system in systems:
            start(system)
        yield
    finally:
        for system in systems:
            if system.server is not None:
                system.server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (medians)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--hash-rounds", type=int, default=10, help="verifies timed per round")
    parser.add_argument("--memory-requests", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true", help="also py-spy a Portcullis worker")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()
    ensure_fst_venv()
    workdir = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    script = workdir / "check.lua"
    script.write_text(WRK_SCRIPT)
    try:
        with session_stores() as stores:
            systems = make_systems(workdir, stores)
            for system in systems:
                prepare(system)
            with servers(systems):
                results = measure(systems, args, script)
                for system in systems:
                    if system.key.startswith("portcullis"):
                        memory_run(system, script, args.memory_requests, results)
                for system in systems:
                    assert system.server is not None
                    peak = max(p for _, p in system.server.memory_kib())
                    results.peak_rss_kib[system.key] = peak
                if args.profile:
                    for system in systems:
                        if system.key.startswith("portcullis"):
                            profile(system, script, args.seconds)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    took = time.monotonic() - started
    table = report(systems, results)
    text = "\n\n".join(
        [
            "# Benchmark results",
            f"Written by `make bench` (`{' '.join(['python bench/run.py', *sys.argv[1:]])}`) "
            f"on {datetime.date.today().isoformat()} in {took / 60:.1f} minutes. "
            f"Machine: {machine()}; "
            f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after. "
            f"{versions()}, Flask-Security-Too {fst_version()}.",
            f"Each system: gunicorn, {WORKERS} sync workers on 127.0.0.1, its own SQLite "
            f"database. wrk, {WRK_THREADS} threads, {args.seconds:g} s per run: "
            f"{WRK_CONNECTIONS} connections for pages, {2 * WORKERS} for sign-in and sign-up "
            "(each POST sends the form's own cookie and CSRF token again; sign-ups a new "
            f"name each). Token refresh: {POST_CLIENTS} client threads of our own, each "
            f"trading its token. Medians of {args.rounds} interleaved rounds; ratios are "
            "taken against the bare route of the same round. Every response was checked "
            "(status, redirect target, cookie). Portcullis runs with "
            "`FLASK_RATELIMIT_ENABLED=false`.",
            table,
            "## Targets",
            "The hash bound is the sign-ins per second the cores could do if they did nothing "
            "but verify passwords (cores / CPU time of one verify). *From CPU cost alone*: "
            "what the measured CPU per request (server plus load generator) allows on cores "
            "that do nothing else; it ignores waits (disk, locks), and is the figure to read "
            "when other work shared the machine (see the load average above).",
            targets(results),
            memory_section(results),
        ]
    )
    write_results(text)
    print()
    print(table)
    print()
    print(targets(results))
    print(f"\nwrote {RESULTS.relative_to(ROOT)} in {took / 60:.1f} minutes")
    return 0


def memory_section(results: Results) -> str:
    if not results.memory_runs:
        return ""

    def mib(kib: list[int]) -> str:
        return ", ".join(f"{k / 1024:.1f}" for k in kib)

    lines = ["## Memory and cost over a long run"]
    for key, run in results.memory_runs.items():
        lines.append(
            f"{key}, {run['requests']:,} signed-in page views after the rounds: RSS per "
            f"worker {mib(run['before'])} MiB before, {mib(run['after'])} MiB after "
            f"(after each chunk: {'; '.join(mib(c) for c in run['chunks'])}); server CPU "
            f"ms per request by chunk: {', '.join(f'{c:.2f}' for c in run['costs'])}."
        )
    return "\n\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
