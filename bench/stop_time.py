"""Signal to exit: how long a SIGINT takes to end `longact eval`, with and without CPU burners.

    python -m bench.stop_time                   # 2 trials idle-ish, 2 beside two CPU burners
    python -m bench.stop_time --trials 3 --answers 15

Each trial starts `longact eval --model assets/tiny-qwen3-skilled --tasks tiny,tiny_passkey_far`
(the harness starting its own vLLM server) as a background job of a script would (SIGINT
inherited ignored), waits until the request cache holds `--answers` answers, sends SIGINT and
times the exit. It then checks that every process of the run's tree (listed just before the
signal) is gone, prints the harness's stop log (its timestamped lines between the signal and the
exit), and reads the identity probe's cost from run.json. Records the worst signal-to-exit time
per condition and the margin left under the 10 s promise (docs/guarantees.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMISE_S = 10.0


def cached_answers(out: Path) -> int:
    n = 0
    for f in glob.glob(str(out / ".cache" / "requests-*.sqlite")):
        try:
            with sqlite3.connect(f"file:{f}?mode=ro", uri=True, timeout=1) as db:
                n += db.execute("SELECT COUNT(*) FROM unnamed WHERE key != 'served_identity'").fetchone()[0]
        except sqlite3.Error:
            pass
    return n


def tree(pid: int) -> list[tuple[int, str]]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [(p.pid, p.name()) for p in [root, *root.children(recursive=True)]]
    except psutil.Error:
        return []


def still_there(procs: list[tuple[int, str]]) -> list[str]:
    import psutil

    left = []
    for pid, name in procs:
        try:
            p = psutil.Process(pid)
            if p.name() == name:
                left.append(f"{pid} {name} {p.status()}")
        except psutil.Error:
            continue
    return left


def trial(model: str, answers: int, timeout_s: float) -> dict:
    out = Path(tempfile.mkdtemp(prefix="stop-time-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "longact", "eval", "--model", model, "--tasks", "tiny,tiny_passkey_far",
           "--output-dir", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + timeout_s
    while cached_answers(out) < answers and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or time.monotonic() >= deadline:
        proc.kill()
        raise SystemExit(f"the run ended or stalled before {answers} answers: {proc.stderr.read()[-2000:]}")
    procs = tree(proc.pid)
    at_signal = cached_answers(out)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    seconds = time.monotonic() - t0
    left = still_there(procs)
    rec = json.loads(next(out.glob("2*/run.json")).read_text())
    return {"seconds": round(seconds, 3), "code": proc.returncode, "cached_at_signal": at_signal,
            "cached_at_exit": cached_answers(out), "processes": len(procs), "left": left,
            "requests": rec.get("requests"), "wall_time_s": rec.get("wall_time_s"), "status": rec.get("status"),
            "probe_s": rec["serving"].get("identity_probe_s"),
            "stop_log": [line for line in err.splitlines() if line.startswith("[stop ")]}


def probe_cost(model: str, repeats: int = 5) -> list[float]:
    """Seconds of each identity probe against one started server: the first is also the engine's
    first request (warm-up a run pays anyway), the rest are what the probe itself costs."""
    from harness.backends.serve import ServerConfig, VLLMServer, served_fingerprint

    with VLLMServer(ServerConfig(model=model), log_path=Path(tempfile.mkdtemp(prefix="probe-")) / "server.log") as srv:
        times = []
        for _ in range(repeats):
            t0 = time.monotonic()
            assert served_fingerprint(srv.base_url, srv.info["model"]) is not None
            times.append(round(time.monotonic() - t0, 3))
    return times


def burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "assets" / "tiny-qwen3-skilled"))
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--answers", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the answers")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    results: dict[str, list[dict]] = {}
    for condition, n_burners in (("idle", 0), ("burners", 2)):
        hogs = burners(n_burners)
        try:
            results[condition] = []
            for i in range(args.trials):
                load = os.getloadavg()
                r = trial(args.model, args.answers, args.timeout)
                r["load"] = [round(x, 2) for x in load]
                results[condition].append(r)
                print(f"{condition} trial {i + 1}: signal to exit {r['seconds']:.2f} s, exit {r['code']}, status "
                      f"{r['status']}, cached {r['cached_at_signal']} at the signal and {r['cached_at_exit']} at the "
                      f"exit, requests {r['requests']}, {r['processes']} processes, left after exit: {r['left'] or 'none'}, "
                      f"identity probe {r['probe_s']} s, load {r['load']}")
                for line in r["stop_log"]:
                    print("    " + line)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
    probe_times = probe_cost(args.model)
    print(f"identity probe against a started server, 5 in a row: {probe_times} s (load {os.getloadavg()})")
    worst = {c: max(r["seconds"] for r in rs) for c, rs in results.items()}
    probes = [r["probe_s"] for rs in results.values() for r in rs if r["probe_s"] is not None]
    print(f"worst signal to exit: idle {worst['idle']:.2f} s, beside two burners {worst['burners']:.2f} s; "
          f"margin under the {PROMISE_S:.0f} s promise: {PROMISE_S - max(worst.values()):.2f} s; identity probe "
          f"per run (the server's first request): {min(probes):.3f}-{max(probes):.3f} s, on a warm server "
          f"{sorted(probe_times[1:])[len(probe_times[1:]) // 2]:.3f} s")
    if any(r["left"] for rs in results.values() for r in rs):
        print("PROCESSES OUTLIVED THE HARNESS", file=sys.stderr)
    if not args.no_record:
        from bench.figures import record_figure

        note = f"{args.trials} trials each, SIGINT after {args.answers} cached answers, tiny skilled model"
        record_figure("stop_time.idle_max_s", worst["idle"], "s", note)
        record_figure("stop_time.burners_max_s", worst["burners"], "s", note + ", two `while True: pass` burners")
        record_figure("stop_time.margin_s", round(PROMISE_S - max(worst.values()), 2), "s", note)
        record_figure("identity_probe.per_run_s", max(probes), "s", "one 8-token greedy probe per server, the "
                      "started server's first request (warm-up included), worst of the trials")
        record_figure("identity_probe.warm_s", sorted(probe_times[1:])[len(probe_times[1:]) // 2], "s",
                      "the same probe on a warm server (median of 4): its own cost")


if __name__ == "__main__":
    main()
