"""Evaluation modes and k samples per item.

* `official`: each task exactly as its benchmark defines it (prompts, decoding, scorers).
* `reasoning`: for thinking models (Qwen3 thinks by default). Every task goes to the chat
  endpoint with thinking enabled in the chat template, without an answer prefill, with a larger
  output budget (the task's `metadata.reasoning_max_gen_toks`, else 8192; `--reasoning-budget`
  overrides), and the thinking is removed before the task's own scorer runs: the answer is the
  text after the last `</think>`. An output whose thinking never closed is scored as wrong and
  counted. Per sample the metrics `thinking_found` and `thinking_unclosed` (0/100) record it.
* `--samples-per-item k`: every item is sampled k times (lm-eval `repeats`); each metric is the
  per-item mean over the k outputs (mean@k, n = items), and 0/100 metrics also get
  `<metric>_pass@k` (100 when any output scores). Pairing in comparisons uses the per-item means.

The raw outputs (thinking included) are what the request cache stores and what samples files
keep, so a rerun or a different parser never needs the model again.
"""

from __future__ import annotations

from statistics import mean

from harness.errors import UserError
from harness.run import lm_eval_internals
from tasks.thinking import strip_thinking

MODES = ("official", "reasoning")
DEFAULT_REASONING_BUDGET = 8192
# Qwen3's recommended sampling for thinking; --gen-kwargs overrides.
REASONING_SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}
def reasoning_budget(task_metadata: dict | None, override: int | None) -> int:
    if override:
        return int(override)
    return int((task_metadata or {}).get("reasoning_max_gen_toks") or DEFAULT_REASONING_BUDGET)


def wrap_process_results(process_results, k: int, reasoning: bool, opened_in_prompt: bool = False):
    """The task's scorer applied per output (after thinking removal), averaged over k outputs."""

    def wrapped(doc, results):
        outputs = results[0] if results and isinstance(results[0], list) else list(results[:1])
        per_output = []
        for out in outputs:
            extra = {}
            if reasoning:
                split = strip_thinking(out, opened_in_prompt)
                out = split.answer
                extra = {"thinking_found": 100.0 * split.found, "thinking_unclosed": 100.0 * (not split.closed)}
            per_output.append({**process_results(doc, [out]), **extra})
        keys = [key for key in per_output[0] if all(isinstance(p.get(key), (int, float)) for p in per_output)]
        metrics = {key: mean(float(p[key]) for p in per_output) for key in keys}
        if len(per_output) > 1:
            for key in keys:
                values = {float(p[key]) for p in per_output}
                if key not in ("thinking_found", "thinking_unclosed") and values <= {0.0, 100.0}:
                    metrics[f"{key}_pass@{len(per_output)}"] = max(values)
        return metrics

    return wrapped


def apply_to_task(task, mode: str, k: int, budget_override: int | None, opened_in_prompt: bool = False) -> None:
    """Reconfigure one loaded lm-eval task for `mode` and k samples per item."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "official" and k == 1:
        return
    cfg = task.config
    names = [m["metric"] for m in cfg.metric_list or []]
    extra: list[tuple[str, bool]] = []
    if mode == "reasoning":
        gen = dict(cfg.generation_kwargs or {})
        gen.update(REASONING_SAMPLING)
        gen["max_gen_toks"] = reasoning_budget(cfg.metadata, budget_override)
        gen["until"] = []
        task.set_config(key="generation_kwargs", value=gen)
        extra += [("thinking_found", False), ("thinking_unclosed", False)]
    if k > 1:
        cfg.repeats = k
        lm_eval_internals.keep_every_output(task)  # all k outputs reach the scorer
        extra += [(f"{n}_pass@{k}", task.higher_is_better().get(n, True)) for n in names]
    if callable(cfg.process_results):
        cfg.process_results = wrap_process_results(cfg.process_results, k, mode == "reasoning", opened_in_prompt)
    for name, higher in extra:
        lm_eval_internals.add_metric(task, name, higher)
        cfg.metric_list = list(cfg.metric_list or []) + [{"metric": name, "aggregation": "mean", "higher_is_better": higher}]


def thinking_opened_in_prompt(tokenizer) -> bool:
    """Does the chat template open the thinking block itself (outputs then lack `<think>`)?"""
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                                 add_generation_prompt=True, enable_thinking=True)
    except Exception as e:  # noqa: BLE001 - tokenizers without a chat template
        raise UserError(f"reasoning mode needs a chat template in the tokenizer ({e})") from e
    return rendered.rstrip().endswith("<think>")


def apply_mode(tasks: dict, mode: str, k: int, budget_override: int | None, tokenizer) -> None:
    """Configure every loaded task for `mode` and k samples per item (before its spec is read)."""
    opened = mode == "reasoning" and thinking_opened_in_prompt(tokenizer)
    for name, task in tasks.items():
        if mode != "official" and not callable(task.config.process_results):
            raise UserError(f"task {name} scores with lm-eval metrics, not a process_results hook; "
                            "reasoning mode needs the hook to remove thinking first")
        apply_to_task(task, mode, k, budget_override, opened)
