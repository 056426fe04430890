"""Trainer step time: LongAct mask vs no mask, and our loop vs TRL's GRPOTrainer (tiny model, CPU).

    python bench/train_step.py [--model models/tiny-qwen3] [--steps 6] [--repeats 3] [--vllm]

Same model, prompts, batch (prompts_per_step x group_size completions), completion length and
optimizer settings on every side; the first step (warm-up, mask calibration) is excluded. The
learning rate is tiny (1e-6) so that our arms sample the same completions step after step (rollouts
are seeded per prompt): with and without the mask they then do identical work except the mask's. Each arm
runs in its own process so peak RSS is its own. Goals: mask/no-mask <= 1.03, ours/TRL <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import scratch_dir, tiny_model  # noqa: E402
from bench.figures import record_figure  # noqa: E402

PROMPTS, GROUP, NEW_TOKENS = 2, 4, 16

OURS = """
import json, resource, sys
from training.config import load_config
from training.train import train
cfg = load_config(None, [f"model={sys.argv[1]}", f"out_dir={sys.argv[2]}", f"steps={sys.argv[3]}",
    f"mask.strategy={sys.argv[4]}", "prompts_per_step=%d", "group_size=%d", "micro_batch=8",
    "sampling.max_new_tokens=%d", "max_prompt_tokens=2048", "lr=1e-6", "data.n=32", *sys.argv[5:]])
train(cfg, resume=False, log=lambda *_: None)
rows = [json.loads(l) for l in open(f"{sys.argv[2]}/metrics.jsonl")][1:]
mean = lambda k: sum(r[k] for r in rows) / len(rows)
print(json.dumps({"step_s": mean("time/step_s"), "update_s": mean("time/update_s"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % (PROMPTS, GROUP, NEW_TOKENS)

# The mask's own cost, isolated: two copies of the model (no mask / LongAct mask), each with its
# own AdamW, take turns updating on the same rollout rows in one process; medians over many turns.
MASK_ONLY = """
import json, statistics, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from training import losses as L, parallel
from training.data import load_prompts
from training.logprobs import prepare
from training.mask import LongActMask, MaskConfig
from training.rollout import HFRollout
from training.config import load_config
from training.train import build_rows, calibration_batches, collect_groups
from training.update import Learner, update
cfg = load_config(None, [f"model={sys.argv[1]}", "prompts_per_step=%d", "group_size=%d", "micro_batch=8",
    "sampling.max_new_tokens=%d", "max_prompt_tokens=2048", "lr=1e-6", "data.n=32", f"data.tokenizer={sys.argv[1]}"])
d = parallel.init("none")
tok = AutoTokenizer.from_pretrained(cfg.model)
prompts = load_prompts(cfg.data)
arms = {}
for strategy in ("none", "longact"):
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    prepare(model)  # attention within packed rows, as train() sets it up
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    mask = LongActMask.calibrate(model, calibration_batches(tok, prompts, cfg, d.device), MaskConfig(strategy=strategy))
    mask.attach(model, opt)
    arms[strategy] = (model, opt, mask)
sampler = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)  # neither arm: generate leaves caches behind
groups, _, _ = collect_groups(cfg, d, prompts, HFRollout(sampler, tok, cfg.sampling, cfg.max_prompt_tokens), 0)
rows = build_rows(groups, L.ADVANTAGES["grpo"], cfg.group_size)
fns = (L.POLICY_LOSSES["ppo_clip"], L.AGGREGATIONS["seq_mean_token_mean"])
times = {k: [] for k in arms}
for turn in range(int(sys.argv[2]) + 2):
    for k in (("none", "longact") if turn %% 2 else ("longact", "none")):  # alternate who goes first
        model, opt, mask = arms[k]
        t = time.perf_counter()
        update(Learner(cfg, d, model, model, opt, mask, *fns), rows)
        if turn >= 2:  # warm-up turns excluded
            times[k].append(time.perf_counter() - t)
mask = arms["longact"][2]
t = time.perf_counter()
for _ in range(1000):  # the mask's own per-update work outside backward (the hooks run inside it)
    mask.zero_grads()
    mask.after_step()
ops = (time.perf_counter() - t) / 1000
print(json.dumps({**{k: statistics.median(v) for k, v in times.items()}, "mask_ops": ops}))
""" % (PROMPTS, GROUP, NEW_TOKENS)

TRL = """
import json, resource, sys, time
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from training.data import DataConfig, load_prompts
from training.rewards import REWARDS
prompts = load_prompts(DataConfig(n=32))
ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p.prompt}], "answers": p.answers} for p in prompts])
def reward(prompts, completions, answers, **_):
    return [REWARDS["string_match_all"](c[0]["content"] if isinstance(c, list) else c, a) for c, a in zip(completions, answers)]
times = []
class Clock(TrainerCallback):
    def on_step_begin(self, *a, **k): self.t = time.perf_counter()
    def on_step_end(self, *a, **k): times.append(time.perf_counter() - self.t)
args = GRPOConfig(output_dir=sys.argv[2], max_steps=int(sys.argv[3]), per_device_train_batch_size=%d,
    num_generations=%d, max_completion_length=%d, learning_rate=1e-6, weight_decay=0.1, max_grad_norm=1.0,
    use_cpu=True, bf16=False, report_to=[], logging_steps=1000, save_strategy="no", beta=0.0, seed=0,
    disable_tqdm=True)
GRPOTrainer(model=sys.argv[1], reward_funcs=reward, args=args, train_dataset=ds, callbacks=[Clock()]).train()
print(json.dumps({"step_s": sum(times[1:]) / len(times[1:]), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % (PROMPTS * GROUP, GROUP, NEW_TOKENS)


def run(code: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1,
                    help="run every arm this many times, interleaved; figures are medians (shared machines drift)")
    ap.add_argument("--mask-turns", type=int, default=40, help="updates per arm in the in-process mask timing")
    ap.add_argument("--vllm", action="store_true", help="also time our loop with vLLM rollouts (the CPU build here)")
    args = ap.parse_args()
    model, steps = tiny_model(args.model), str(args.steps)
    arms = {"ours_nomask": (OURS, "none"), "ours_longact": (OURS, "longact")}
    if args.vllm:
        arms["ours_vllm"] = (OURS, "longact", "backend=vllm", "vllm={enforce_eager: true}")
    try:
        import trl  # noqa: F401
        arms["trl_grpo"] = (TRL,)
    except ImportError:
        print("TRL not installed (pip install '.[bench]'): skipping the TRL comparison")
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for _ in range(args.repeats):  # interleaved, so slow phases of the machine hit every arm alike
        for name, (code, *extra) in arms.items():
            runs[name].append(run(code, model, scratch_dir(f"bench-{name}-"), steps, *extra))
    res = {name: {k: median([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    mask_only = run(MASK_ONLY, model, str(args.mask_turns))
    for name, r in res.items():
        print(f"{name:14s} step {r['step_s'] * 1000:8.1f} ms   peak RSS {r['peak_rss_mb']:7.0f} MB")
    print(f"mask / no mask step time: {res['ours_longact']['step_s'] / res['ours_nomask']['step_s']:.3f}  (goal <= 1.03)")
    record_figure("train_step.mask_ratio", round(res["ours_longact"]["step_s"] / res["ours_nomask"]["step_s"], 3), "",
                  f"{args.steps} steps, median of {args.repeats}")
    print(f"mask / no mask update phase (loss, backward, mask, clip, step): "
          f"{res['ours_longact']['update_s'] / res['ours_nomask']['update_s']:.3f}")
    print(f"mask / no mask, one optimizer update on the same rows, one process, median of {args.mask_turns} turns: "
          f"{mask_only['longact'] / mask_only['none']:.3f}  ({mask_only['none'] * 1000:.1f} vs {mask_only['longact'] * 1000:.1f} ms; "
          f"zero_grads + after_step: {mask_only['mask_ops'] * 1e6:.0f} us per update)")
    if "trl_grpo" in res:
        print(f"ours / TRL step time:     {res['ours_nomask']['step_s'] / res['trl_grpo']['step_s']:.3f}  (goal <= 1.0)")
        record_figure("train_step.ours_over_trl", round(res["ours_nomask"]["step_s"] / res["trl_grpo"]["step_s"], 3), "")
    if "ours_vllm" in res:
        print(f"vLLM / HF rollouts (LongAct) step time: {res['ours_vllm']['step_s'] / res['ours_longact']['step_s']:.3f}")
        record_figure("train_step.vllm_over_hf", round(res["ours_vllm"]["step_s"] / res["ours_longact"]["step_s"], 3), "")


if __name__ == "__main__":
    main()
