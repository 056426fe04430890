"""Peak memory of one trainer update against context length: today's path next to the one at b4ef08e.

    python bench/train_memory.py [--lengths 1024,2048,4096,8192,16384,32768] [--old-up-to 8192]
                                 [--completion 256] [--device cpu|cuda] [--with-step] [--dtype bfloat16]

One update = forward + backward of one sequence (context = prompt + `--completion` tokens) through
the log-prob function and the loss, and gradient clipping (`--with-step`: and the AdamW step, whose
two moments add 2 x 4 bytes per parameter to both paths alike), on a probe Qwen3 with Qwen3's
vocabulary (151,936; 4 layers, hidden 256, random init from a config, nothing downloaded):
- `new`: `training.update.update` as the trainer runs it (packed row, output layer on completion
  positions only in chunks, entropy without grad, `gradient_checkpointing: true`);
- `old`: the log-prob function of b4ef08e, reproduced below (full-vocabulary logits at every
  position, float32 log_softmax and exp over [C, V] in the graph, no checkpointing).
`--dtype bfloat16` holds the probe's weights in bf16, so every activation is bf16 as under FSDP2's
`param_dtype=bfloat16` (the GPU presets). Each (path, length) runs in its own process. Peak RSS
is the kernel's high-water mark (VmHWM), reset just before the update (/proc/self/clear_refs), so
model building does not count; `delta` = peak - RSS before the update. On CUDA the peak
allocated GPU memory is printed as well. Bytes per context token = delta / length, and the marginal slope between consecutive lengths.
Goals (issue 15): slope <= 1/10 of the old path's; >= 4x less at 4k; 32k updates on a 24 GiB machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = dict(vocab_size=151_936, hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=64, tie_word_embeddings=False, max_position_embeddings=40_960)


def old_token_logps(model, ids, am, P):
    """training/train.py:token_logps at b4ef08e, verbatim: the path this bench measures against."""
    import torch

    pos = (am.cumsum(1) - 1).clamp(min=0)  # left padding: positions as generate used them
    logits = model(input_ids=ids, attention_mask=am, position_ids=pos).logits[:, P - 1:-1].float()
    lp_all = torch.log_softmax(logits, -1)  # [B, C, V]
    lp = lp_all.gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)
    entropy = -(lp_all.exp() * lp_all).sum(-1)
    return lp, entropy


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(path: str, length: int, completion: int, device: str, with_step: bool, dtype: str) -> dict:
    """One update in this process; returns the measurements."""
    import time

    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from training import losses as L
    from training import parallel
    from training.config import load_config
    from training.logprobs import prepare
    from training.mask import LongActMask, MaskConfig
    from training.update import Learner, Row, update

    torch.manual_seed(0)
    dev = torch.device(device)
    model = AutoModelForCausalLM.from_config(Qwen3Config(**PROBE), dtype=getattr(torch, dtype)).to(dev)
    cfg = load_config(None, ["model=probe", "gradient_checkpointing=true", f"device={device}"])
    if path == "new":
        prepare(model, cfg.gradient_checkpointing)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    if not with_step:  # the optimizer's memory is the same for both paths: measure what differs
        opt.step = lambda *a, **k: None
    P = length - completion
    ids = torch.randint(3, PROBE["vocab_size"], (length,))
    row = Row(ids, torch.ones(length, dtype=torch.long), torch.ones(completion), P, torch.tensor(1.0))
    policy, aggregate = L.POLICY_LOSSES["ppo_clip"], L.AGGREGATIONS["seq_mean_token_mean"]

    def old_update():  # b4ef08e's update for one row: loss, backward, clip, step
        lp, _ = old_token_logps(model, ids[None].to(dev), row.attention[None].to(dev), P)
        cm = torch.ones(1, completion, device=dev)
        loss = aggregate(policy(lp, lp.detach(), torch.ones(1, device=dev), cm)[0], cm, num_seqs=1.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def new_update():
        mask = LongActMask.calibrate(model, [], MaskConfig(strategy="none"))
        update(Learner(cfg, parallel.Dist(device=dev), model, model, opt, mask, policy, aggregate), [row])

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss_bytes("VmRSS")
    t0 = time.perf_counter()
    (new_update if path == "new" else old_update)()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    out = {"path": path, "length": length, "seconds": time.perf_counter() - t0, "rss_before": before,
           "rss_peak": _rss_bytes("VmHWM")}
    if dev.type == "cuda":
        out["cuda_peak"] = torch.cuda.max_memory_allocated()
    return out


def run(path: str, length: int, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", path, str(length), "--completion", str(args.completion), "--device", args.device,
           "--dtype", args.dtype, *(["--with-step"] if args.with_step else [])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {path} {length}: failed (rc {proc.returncode}) {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="1024,2048,4096,8192,16384,32768")
    ap.add_argument("--old-up-to", type=int, default=8192, help="longest context for the old path (~0.7 GiB per 1k tokens)")
    ap.add_argument("--completion", type=int, default=256)
    ap.add_argument("--paths", default="old,new")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--with-step", action="store_true", help="include the AdamW step (its moments: 8 bytes per parameter)")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child[0], int(args.child[1]), args.completion, args.device, args.with_step, args.dtype)))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    results: dict[str, dict[int, dict]] = {"old": {}, "new": {}}
    for length in lengths:  # one at a time: each process alone on the machine's memory
        for path in ("old", "new"):
            if path == "old" and length > args.old_up_to or path not in args.paths.split(","):
                continue
            r = run(path, length, args)
            if r:
                results[path][length] = r
                print(f"  {path} {length}: delta {(r['rss_peak'] - r['rss_before']) / 2**30:.2f} GiB, "
                      f"{r['seconds']:.1f} s", flush=True)
    _table(results, lengths, args.device == "cuda")


def _table(results, lengths, cuda: bool) -> None:
    GiB = 2**30

    def delta(r):
        return r["rss_peak"] - r["rss_before"]

    print(f"\n{'context':>8} | {'old peak GiB':>12} {'old delta GiB':>13} {'old B/tok':>9} | "
          f"{'new peak GiB':>12} {'new delta GiB':>13} {'new B/tok':>9} {'new slope B/tok':>15}"
          + (f" {'new CUDA GiB':>12}" if cuda else "") + f" | {'old/new delta':>13}")
    prev = None
    for n in lengths:
        o, w = results["old"].get(n), results["new"].get(n)
        cells = [f"{o['rss_peak'] / GiB:12.2f} {delta(o) / GiB:13.2f} {delta(o) / n:9.0f}" if o else f"{'-':>12} {'-':>13} {'-':>9}"]
        if w:
            slope = f"{(delta(w) - delta(prev)) / (n - prev['length']):15.0f}" if prev else f"{'-':>15}"
            cells.append(f"{w['rss_peak'] / GiB:12.2f} {delta(w) / GiB:13.2f} {delta(w) / n:9.0f} {slope}"
                         + (f" {w['cuda_peak'] / GiB:12.2f}" if cuda else ""))
            prev = w
        else:
            cells.append(f"{'-':>12} {'-':>13} {'-':>9} {'-':>15}" + (f" {'-':>12}" if cuda else ""))
        ratio = f"{delta(o) / delta(w):13.1f}" if o and w else f"{'-':>13}"
        print(f"{n:8d} | {cells[0]} | {cells[1]} | {ratio}")
    for path in ("old", "new"):  # least-squares slope of delta over length: bytes per context token
        pts = [(n, delta(r)) for n, r in sorted(results[path].items())]
        if len(pts) >= 2:
            mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
            slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
            print(f"{path}: {slope:,.0f} bytes per context token (fit over {pts[0][0]}..{pts[-1][0]})")
            sys.path.insert(0, str(ROOT))
            from bench.figures import record_figure

            record_figure(f"train_memory.{path}_bytes_per_token", round(slope), "bytes/token",
                          f"fit over {pts[0][0]}..{pts[-1][0]}" + (", CUDA" if cuda else ""))


if __name__ == "__main__":
    main()
