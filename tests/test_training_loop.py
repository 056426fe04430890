"""The training loop on the tiny model: exact resume (also across a mask refresh), mask refresh,
config and data errors, dry-run; rewards after the thinking and DAPO's filter on a scripted rollout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from longact.cli import main
from tasks.data_io import DataError
from training import parallel
from training.config import load_config
from training.data import DataConfig, Prompt, load_prompts
from training.mask import LongActMask
from training.rollout import Rollouts
from training.train import collect_groups, train

CONFIG = Path(__file__).resolve().parent.parent / "training" / "configs" / "tiny-cpu.yaml"


SKILLED = Path(__file__).resolve().parent.parent / "assets" / "tiny-qwen3-skilled"


def _cfg(out, *extra):
    # The skilled tiny model solves passkey, not kv; at temperature 2 some of its passkey samples
    # fail, so groups have mixed rewards and real, non-zero advantages.
    return load_config(str(CONFIG), [f"model={SKILLED}", f"out_dir={out}", "sampling.temperature=2.0", "steps=3", *extra])


def test_resume_after_step_2_equals_uninterrupted(tmp_path):
    full = train(_cfg(tmp_path / "full"), resume=False, log=lambda *_: None)
    train(_cfg(tmp_path / "part", "steps=2"), resume=False, log=lambda *_: None)
    resumed = train(_cfg(tmp_path / "part"), resume=True, log=lambda *_: None)
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    start = load_file(SKILLED / "model.safetensors")
    assert any(not torch.equal(a[k], start[k]) for k in a)  # training did move weights
    metrics = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["mask/masked_rows_changed"] == 0 for m in metrics)
    assert any(m["grad_norm"] > 0 for m in metrics)
    assert (tmp_path / "full" / "config.yaml").exists() and (full / "longact_mask" / "mask.json").exists()
    sampling = json.loads((tmp_path / "full" / "rollout.json").read_text())
    assert sampling["backend"] == "hf" and sampling["temperature"] == 2.0 and sampling["max_new_tokens"] == 8
    assert list((tmp_path / "full" / "tb").glob("events.out.tfevents.*"))   # TensorBoard scalars too


def _weights(ckpt: Path) -> dict:
    return load_file(ckpt / "model.safetensors")


@pytest.mark.slow
def test_mask_refresh_trains_newly_kept_rows_and_resumes_exactly(tmp_path):
    """mask.refresh_every: the old mask's hooks go before the new mask attaches, so rows the
    refreshed mask newly keeps get gradients (with weight decay 0 a row without gradient would not
    move at all); a run resumed right before a refresh redoes it and ends bit-identical."""
    # lr 3e-3 keeps every step's rewards mixed (at 1e-2 the first update leaves all-zero rewards
    # after it, and a step without gradient moves no row at all, kept or not)
    extra = ("mask.refresh_every=1", "weight_decay=0.0", "lr=3e-3")
    train(_cfg(tmp_path / "full", *extra, "save_every=1"), resume=False, log=lambda *_: None)
    metrics = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["grad_norm"] > 0 for m in metrics), [m["grad_norm"] for m in metrics]
    steps = [tmp_path / "full" / f"step-{i}" for i in (2, 3)]
    old, new = (LongActMask.load(s / "longact_mask") for s in steps)  # the masks steps 2 and 3 trained under
    before, after = (_weights(s) for s in steps)
    newly_kept = 0
    for name, keep in new.keep.items():
        rows = keep & ~old.keep[name]
        moved = (after[f"{name}.weight"][rows] != before[f"{name}.weight"][rows]).any(1)
        assert bool(moved.all()), (name, f"{int(moved.sum())} of {int(rows.sum())} newly kept rows moved")
        newly_kept += int(rows.sum())
    assert newly_kept > 0
    assert all(m["mask/masked_rows_changed"] == 0 for m in metrics)

    train(_cfg(tmp_path / "part", *extra, "steps=2"), resume=False, log=lambda *_: None)
    resumed = train(_cfg(tmp_path / "part", *extra), resume=True, log=lambda *_: None)
    a, b = _weights(steps[1]), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert LongActMask.load(resumed / "longact_mask").digest() == new.digest()


class _ScriptedTokenizer:
    """Only the chat template: `tail` ends the generation prompt (\"<think>\\n\" = opened there)."""

    def __init__(self, tail: str = ""):
        self.tail = tail

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **_):
        return f"<|user|>{messages[-1]['content']}<|assistant|>{self.tail}"


class _ScriptedRollout:
    """Each prompt's group of (completion text, length in tokens), as written."""

    def __init__(self, groups: dict[str, list[tuple[str, int]]], tail: str = ""):
        self.groups, self.tok = groups, _ScriptedTokenizer(tail)

    def generate(self, prompts, n, seeds=None):
        rows = [row for p in prompts for row in self.groups[p]]
        assert len(rows) == n * len(prompts)
        lengths = torch.tensor([length for _, length in rows])
        C = int(lengths.max())
        cm = (torch.arange(C) < lengths.unsqueeze(1)).long()  # [B, C]
        ids = torch.ones(len(rows), 1 + C, dtype=torch.long)
        return Rollouts(ids, torch.cat([torch.ones(len(rows), 1, dtype=torch.long), cm], 1), cm, 1,
                        [text for text, _ in rows])


def _collect(groups, *overrides, tail=""):
    prompts = [Prompt(id=p, prompt=p, answers=["12345"], reward="string_match_all") for p in groups]
    cfg = load_config(str(CONFIG), ["model=m", f"prompts_per_step={len(prompts)}", "group_size=2", *overrides])
    return collect_groups(cfg, parallel.Dist(), prompts, _ScriptedRollout(groups, tail), 0)


def test_rewards_score_the_answer_after_the_thinking():
    from training.rewards import score

    long = "<think>" + "let me look for the key in the document " * 50 + "</think>"
    assert score("qa_f1", long + "green sky", ["green sky"]) == (1.0, False)
    assert score("string_match_all", "<think>is it 12345?</think>It is 999", ["12345"]) == (0.0, False)
    assert score("string_match_all", "<think>12345 I am still thinking", ["12345"]) == (0.0, True)
    assert score("string_match_all", "12345", ["12345"]) == (1.0, False)  # no thinking: the whole text
    assert score("string_match_all", "12345</think>999", ["12345"], opened_in_prompt=True) == (0.0, False)
    assert score("string_match_all", "still 12345", ["12345"], opened_in_prompt=True) == (0.0, True)
    groups, _, counts = _collect({"a": [("<think>12345?</think>999", 3), ("<think>12345</think> 12345", 4)],
                                  "b": [("<think>12345 and on", 8), ("12345", 1)]})
    assert [g.rewards.tolist() for g in groups] == [[0.0, 1.0], [0.0, 1.0]]
    assert counts["reward/thinking_unclosed"] == 0.25  # 1 of 4 completions never closed its thinking
    groups, _, counts = _collect({"a": [("12345</think>999", 3), ("hmm</think>12345", 4)],
                                  "b": [("12345", 8), ("x</think>12345", 1)]}, tail="<think>\n")
    assert [g.rewards.tolist() for g in groups] == [[0.0, 1.0], [0.0, 1.0]]
    assert counts["reward/thinking_unclosed"] == 0.25


def test_dynamic_sampling_filters_on_accuracy_not_the_shaped_reward():
    # DAPO §3.2: a group whose answers are all right (or all wrong) is dropped, even when overlong
    # shaping gives its members different rewards; the kept group's advantages use the shaped reward.
    shaping = ("algo.overlong_max=4", "algo.overlong_cache=4")
    groups, _, counts = _collect({"same": [("12345", 1), ("12345 12345", 3)], "mixed": [("12345", 1), ("no", 3)]},
                                 "algo.dynamic_sampling=true", "algo.max_refills=0", *shaping)
    assert (counts["ds/groups_kept"], counts["ds/groups_dropped"]) == (1, 1)
    assert [g.rewards.tolist() for g in groups] == [[0.75, -0.75]]  # 1 - 1/4 and 0 - 3/4
    groups, _, counts = _collect({"same": [("12345", 1), ("12345 12345", 3)], "mixed": [("12345", 1), ("no", 3)]},
                                 *shaping)  # without dynamic sampling both groups train
    assert counts["ds/groups_kept"] == 2 and groups[0].rewards.tolist() == [0.75, 0.25]


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"override 'lrr=1': unknown key 'lrr'"):
        load_config(str(CONFIG), ["model=x", "lrr=1"])
    with pytest.raises(ValueError, match=r"override 'mask.strategy=top'.*mask.strategy: got 'top'"):
        load_config(str(CONFIG), ["model=x", "mask.strategy=top"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\nalgo: {eps_high: high}\n")
    with pytest.raises(ValueError, match=r"bad.yaml.algo.eps_high: expected a number, got 'high'"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="field 'model' is required"):
        load_config(str(CONFIG))
    with pytest.raises(ValueError, match=r"algo.dual_clip_c must be > 1 \(or 0 = off\), got 0.5"):
        load_config(str(CONFIG), ["model=x", "algo.dual_clip_c=0.5"])
    with pytest.raises(ValueError, match="mask.seed: got 'a'"):
        load_config(str(CONFIG), ["model=x", "mask.seed=a"])


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train", "--config", str(CONFIG), "--dry-run", f"model={SKILLED}", "mask.strategy=random"]) == 0
    out = capsys.readouterr().out
    assert "strategy: random" in out and f"model: {SKILLED}" in out
    assert load_config(str(CONFIG), ["model=m", "lr=1e-3"]).lr == 1e-3


@pytest.mark.parametrize("override,needle", [
    ("sampling.temperature=-1", "override 'sampling.temperature=-1': sampling.temperature must be > 0"),
    ("sampling.top_p=0", "override 'sampling.top_p=0': sampling.top_p must be in (0, 1]"),
    ("lr=0", "override 'lr=0': lr must be > 0"),
    ("steps=0", "override 'steps=0': steps must be >= 1"),
    ("model=models/no-such-model", "model=models/no-such-model: not a model directory"),
])
def test_dry_run_finds_what_the_run_would_trip_on(override, needle, capsys, tmp_path, monkeypatch):
    """Bad values fail `--dry-run` with one line blaming the override that set them, not the file."""
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--config", str(CONFIG), "--dry-run", f"model={SKILLED}", override])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err, err


def test_bad_data_rows_name_file_line_field(tmp_path):
    bad = tmp_path / "docqa.jsonl"
    bad.write_text('{"prompt": "p", "answers": ["a"]}\n{"prompt": "p", "answers": "a"}\n')
    with pytest.raises(DataError, match=r"docqa.jsonl line 2, field 'answers'"):
        load_prompts(DataConfig(source="docqa", path=str(bad)))
    with pytest.raises(ValueError, match="data.source: unknown 'nope'"):
        load_prompts(DataConfig(source="nope"))
    with pytest.raises(ValueError, match="data.tokenizer: needed to size RULER prompts"):
        load_prompts(DataConfig(source="ruler"))


def test_every_source_and_preset_loads():
    assert len(load_prompts(DataConfig(source="synthetic", n=4))) == 4
    mc = load_prompts(DataConfig(source="longbench_mc", n=3))
    assert mc[0].answers[0] in "ABCD" and "The correct answer is" in mc[0].prompt
    for preset in CONFIG.parent.glob("*.yaml"):
        load_config(str(preset), ["model=m"])


def test_preset_comments_state_the_mini_batch_they_give():
    import re

    for preset in CONFIG.parent.glob("*.yaml"):
        cfg = load_config(str(preset), ["model=m"])
        for line in preset.read_text().splitlines():
            said = re.search(r"mini-batch(?:es)?(?: of)? (\d+)", line)  # the first figure is the preset's own
            if line.startswith("mini_batches:") and said:
                assert int(said.group(1)) == cfg.prompts_per_step * cfg.group_size // cfg.mini_batches, (preset.name, line)


def test_rewards_use_the_harness_scorers():
    from training.rewards import REWARDS

    assert REWARDS["longbench_choice"]("The correct answer is (B)", ["B"]) == 1.0
    assert REWARDS["longbench_choice"]("B", ["B"]) == 0.0  # official format only
    assert REWARDS["string_match_all"]("key 123 and 456", ["123", "789"]) == 0.5
    assert REWARDS["qa_f1"]("the green sky", ["green sky blue"]) == pytest.approx(0.8)


def test_ruler_source_uses_the_benchmark_generators(tiny_model_dir):
    from training.rewards import REWARDS

    cfg = DataConfig(source="ruler", n=2, ruler_tasks=["niah_single_1", "qa_squad"], lengths=[1024],
                     tokenizer=str(tiny_model_dir))
    with pytest.raises(DataError, match="squad_path"):   # QA needs its data file offline
        load_prompts(cfg)
    cfg.ruler_tasks = ["niah_single_1", "vt"]
    prompts = load_prompts(cfg)
    assert len(prompts) == 4 and {p.reward for p in prompts} == {"string_match_all"}
    p = prompts[0]
    assert "special magic number" in p.prompt and "<|im_start|>" not in p.prompt   # a user turn
    assert all(a in p.prompt for a in p.answers)
    assert REWARDS[p.reward](" ".join(p.answers), p.answers) == 1.0
    with pytest.raises(ValueError, match="data.ruler_tasks: unknown"):
        load_prompts(DataConfig(source="ruler", ruler_tasks=["nope"], tokenizer=str(tiny_model_dir)))


def test_docqa_reads_the_hub_layout(tmp_path):
    # DocQA-RL-1.6K on the hub is in verl's layout: chat-message prompt, reward_model.ground_truth
    hub = tmp_path / "docqa_hub.jsonl"
    rows = [{"data_source": "docqa", "prompt": [{"role": "user", "content": "Doc: the key is 7.\nQ: key?"}],
             "reward_model": {"ground_truth": "7", "style": "rule"}, "extra_info": {"index": 0}},
            {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q2"}],
             "reward_model": {"ground_truth": ["a", "b"]}}]
    hub.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts = load_prompts(DataConfig(source="docqa", path=str(hub)))
    assert [(p.prompt, p.answers, p.reward) for p in prompts] == [
        ("Doc: the key is 7.\nQ: key?", ["7"], "qa_f1"), ("Q2", ["a", "b"], "qa_f1")]
    hub.write_text(json.dumps({"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": 3}}) + "\n")
    with pytest.raises(DataError, match=r"docqa_hub.jsonl line 1, field 'answers'"):
        load_prompts(DataConfig(source="docqa", path=str(hub)))


def test_long_prompts_lose_their_middle_not_their_question(tiny_tokenizer):
    from training.rollout import prompt_ids

    text = "START " + "filler words here " * 400 + "What is the pass key?"
    ids = prompt_ids(tiny_tokenizer, text, 128)
    full = prompt_ids(tiny_tokenizer, text, 10**6)
    assert len(ids) == 128 < len(full)
    assert ids[:64] == full[:64] and ids[64:] == full[-64:]   # chat header + START, question + assistant turn
    assert tiny_tokenizer.decode(ids).rstrip().endswith("assistant")


def test_learning_signal_line_counts_steps_with_a_gradient():
    from training.train import learning_signal

    flat = [{"step": i, "reward": 0.0, "grad_norm": 0.0, "updates": 1} for i in (1, 2, 3)]
    assert learning_signal(flat).startswith("learning signal: none. In all 3 steps")
    mixed = [{"step": 1, "reward": 0.25, "grad_norm": 0.5, "updates": 1},
             {"step": 2, "reward": 1.0, "grad_norm": 0.0, "updates": 1},
             {"step": 3, "reward": 0.75, "grad_norm": 0.4, "updates": 1}]
    assert learning_signal(mixed) == ("learning signal: 2 of 3 steps had a non-zero gradient; mean reward "
                                      "0.250 over the first 1 step(s), 0.750 over the last 1")


def test_the_tiny_learning_task_gives_every_step_a_gradient(tmp_path):
    """training/configs/tiny-study.yaml (the demo's task) from the skilled base: the groups have
    mixed rewards, so each step has a gradient and the weights move, the premise of any arm
    comparison on it."""
    cfg = load_config(str(CONFIG.parent / "tiny-study.yaml"),
                      [f"model={SKILLED}", f"out_dir={tmp_path}", "steps=2", "save_every=0", "mask.strategy=none"])
    lines = []
    ckpt = train(cfg, resume=False, log=lines.append)
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(m["grad_norm"] > 0 for m in metrics), metrics
    assert all(0 < m["reward"] < 1 for m in metrics)   # neither solved nor hopeless
    start, end = load_file(SKILLED / "model.safetensors"), _weights(ckpt)
    assert all(not torch.equal(start[k], end[k]) for k in end if "layers.0.self_attn.q_proj" in k)
    assert lines[-1].startswith("learning signal: 2 of 2 steps had a non-zero gradient")


def test_the_run_seed_orders_the_data():
    from training.data import run_order

    prompts = load_prompts(DataConfig(source="synthetic", n=16))
    a, b = run_order(prompts, 0), run_order(prompts, 1)
    assert [p.id for p in a] == [p.id for p in run_order(prompts, 0)]          # reproducible
    assert sorted(p.id for p in a) == sorted(p.id for p in b) == sorted(p.id for p in prompts)
    assert [p.id for p in a[:4]] != [p.id for p in b[:4]]                     # replicates differ
