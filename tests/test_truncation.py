import pytest

from harness.backends.fitting import PromptFitter
from harness.errors import UserError
from tasks.tokens import middle_truncate_ids


def test_middle_truncate_keeps_head_and_tail_exactly():
    ids = list(range(10))
    assert middle_truncate_ids(ids, 4) == [0, 1, 8, 9]
    # odd budget: LongBench style keeps head m//2 and tail m - m//2
    assert middle_truncate_ids(ids, 5) == [0, 1, 7, 8, 9]
    # InfiniteBench style keeps m//2 on both sides
    assert middle_truncate_ids(ids, 5, tail_rounds_up=False) == [0, 1, 8, 9]
    assert middle_truncate_ids(ids, 1) == [9]
    assert middle_truncate_ids(ids, 0) == []
    assert middle_truncate_ids(ids, 10) == ids
    assert middle_truncate_ids(ids, 99) == ids


def test_middle_truncate_rejects_negative():
    with pytest.raises(ValueError):
        middle_truncate_ids([1, 2], -1)


def test_fitter_leaves_short_prompts_alone(tiny_tokenizer):
    fit = PromptFitter(tiny_tokenizer, 512).fit("The pass key is 123.", 16, chat=False)
    assert not fit.truncated and fit.text == "The pass key is 123." and fit.removed_tokens == 0


@pytest.mark.parametrize("chat", [False, True])
def test_fitter_makes_prompt_plus_budget_fit(tiny_tokenizer, chat):
    window, budget = 300, 40
    text = "START " + "the grass is green and the sky is blue. " * 200 + " QUESTION: what is the key?"
    fitter = PromptFitter(tiny_tokenizer, window)
    fit = fitter.fit(text, budget, chat=chat)
    assert fit.truncated
    assert fit.prompt_tokens + budget <= window
    assert fit.prompt_tokens >= window - budget - 8  # tight: only re-tokenisation slack is lost
    assert fit.original_tokens > window
    assert fit.text.startswith("START") and fit.text.endswith("what is the key?")
    # the reported count is what the server will see
    assert fitter.count(fit.text, chat) == fit.prompt_tokens
    if chat:
        rendered = fitter.render(fit.text, chat=True)
        assert rendered.startswith("<|im_start|>user\n") and rendered.endswith("<|im_start|>assistant\n")


def test_fitter_explains_when_budget_leaves_no_room(tiny_tokenizer):
    with pytest.raises(UserError, match="leaves no room"):
        PromptFitter(tiny_tokenizer, 64).fit("word " * 500, 60, chat=True)



def test_encode_fast_ignores_the_truncation_a_previous_call_left_on_the_tokenizer(tiny_model_dir):
    """A fast tokenizer's backend keeps the truncation of the last call that asked for it; counting
    prompts through the backend directly must not inherit it (it once cut every prompt to 4 tokens
    after `tok(text, truncation=True, max_length=4)` elsewhere in the process)."""
    from transformers import AutoTokenizer

    from tasks.tokens import encode_fast

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "word " * 200
    full = encode_fast(tok, [text])[0]
    tok(text, truncation=True, max_length=4)
    assert tok.backend_tokenizer.truncation is not None          # the state the call left behind
    assert encode_fast(tok, [text])[0] == full and len(full) > 4
