"""Reasoning mode and k samples per item: thinking removal, mean@k, budgets, end to end."""

import json

import pytest

from harness.run.modes import reasoning_budget, wrap_process_results
from tasks.thinking import join_reasoning, strip_thinking


@pytest.mark.parametrize("text,opened,answer,found,closed", [
    ("<think>\nlet me see\n</think>\n\nThe correct answer is (B)", False, "The correct answer is (B)", True, True),
    ("<think>a</think>draft<think>b</think> final", False, "final", True, True),            # several blocks
    ("<think>went on and on", False, "", True, False),                                       # never closed
    ("<think>done</think>\n", False, "", True, True),                                        # empty answer
    ("plain answer 42 ", False, "plain answer 42", False, True),                             # no thinking
    ("reasoning in an opened block</think>B", True, "B", True, True),                        # template opened it
    ("reasoning cut off by the budget", True, "", True, False),
])
def test_strip_thinking(text, opened, answer, found, closed):
    split = strip_thinking(text, opened_in_prompt=opened)
    assert (split.answer, split.found, split.closed) == (answer, found, closed)


def test_server_reasoning_field_is_joined_back():
    assert strip_thinking(join_reasoning("B", "thinking...")).answer == "B"
    assert strip_thinking(join_reasoning(None, "thinking forever")).closed is False
    assert join_reasoning("just content", None) == "just content"


def test_mean_at_k_and_pass_at_k_hand_computed():
    def score(doc, results):
        return {"score": 100.0 * (results[0] == doc["answer"]), "length": float(len(results[0]))}

    f = wrap_process_results(score, k=3, reasoning=True)
    doc = {"answer": "B"}
    outs = ["<think>x</think>B", "<think>y</think>C", "<think>never ends"]
    m = f(doc, [outs])
    assert m["score"] == pytest.approx(100 / 3)
    assert m["score_pass@3"] == 100.0
    assert "length_pass@3" not in m                      # not a 0/100 metric
    assert m["length"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["thinking_found"] == 100.0 and m["thinking_unclosed"] == pytest.approx(100 / 3)
    single = wrap_process_results(score, k=1, reasoning=False)(doc, ["B"])
    assert single == {"score": 100.0, "length": 1.0}


def test_reasoning_budget_defaults_and_override():
    assert reasoning_budget({"reasoning_max_gen_toks": 256}, None) == 256
    assert reasoning_budget({}, None) == 8192
    assert reasoning_budget({"reasoning_max_gen_toks": 256}, 1000) == 1000


def test_reasoning_budget_truncates_the_prompt_and_counts_it(tiny_tokenizer):
    from harness.backends.fitting import PromptFitter

    fitter = PromptFitter(tiny_tokenizer, 2048)
    content = "word " * 3000
    fit = fitter.fit(content, 1536, chat=True, template_kwargs={"enable_thinking": True})
    assert fit.truncated and fit.prompt_tokens + 1536 <= 2048
    assert fit.prompt_tokens == fitter.count(fit.text, True, {"enable_thinking": True})
    # thinking on and off render differently: the count follows the kwargs actually sent
    assert fitter.count("hi", True, {"enable_thinking": True}) != fitter.count("hi", True, {"enable_thinking": False})


@pytest.mark.server
def test_reasoning_mode_with_three_samples_end_to_end(vllm_server, tiny_model_dir, tmp_path):
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval
    from tasks.tiny import utils

    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["tiny_mc", "tiny_passkey"], output_dir=str(tmp_path), limit=4, mode="reasoning", samples_per_item=3, progress=False))
    rec = load_run(run_eval(cfg))
    assert rec.mode == "reasoning" and rec.samples_per_item == 3
    assert rec.requests["total"] == 2 * 4 * 3 and rec.requests["failed"] == 0
    scorers = {"tiny_mc": utils.mc_results, "tiny_passkey": utils.passkey_results}
    for name, t in rec.tasks.items():
        assert t.endpoint == "chat" and t.generation_kwargs["max_gen_toks"] == 256
        assert t.generation_kwargs["temperature"] == 0.6
        assert {"score", "score_pass@3", "thinking_found", "thinking_unclosed"} <= set(t.metrics)
        assert t.metrics["score"].n == 4
        samples_path = tmp_path / rec.run_id / t.samples_file
        rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
        unclosed = 0
        for r in rows:
            assert len(r["responses"]) == 3 and r["response"] == r["responses"][0]
            per = [scorers[name](r["doc"], [strip_thinking(x).answer])["score"] for x in r["responses"]]
            assert r["metrics"]["score"] == pytest.approx(sum(per) / 3)
            assert r["metrics"]["score_pass@3"] == max(per)
            unclosed += any(not strip_thinking(x).closed for x in r["responses"])
        assert t.n_thinking_unclosed == unclosed, samples_path
