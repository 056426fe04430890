"""RULER: templates, generators on the tiny tokenizer, budgets, placement, cache, scorers, CLI."""

import hashlib
import json
import random
import re
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from tasks.data_io import DataError
from tasks.ruler import sources
from tasks.ruler.build import BuildSpec, build_samples, fit_size, load_or_build, template_wrapper, token_counter
from tasks.ruler.constants import TASKS, TEMPLATES
from tasks.ruler.scoring import score_file
from tasks.ruler.synthetic import insert_at_depths
from tasks.ruler.utils import process_results, resolve_lengths

DATA = Path(__file__).resolve().parent.parent / "tasks" / "ruler" / "data"
QA_PATHS = {"squad_path": str(DATA / "squad_fixture.json"), "hotpotqa_path": str(DATA / "hotpotqa_fixture.json")}

# SHA-256 of template + "\0" + answer prefix in NVIDIA/RULER scripts/data/synthetic/constants.py
# at commit c3f5e3b4, computed from the official file.
OFFICIAL_TEMPLATE_SHA = {
    "niah": "2c0d168dd2f270b6fc17047f11af9cebb6b190c38d374c524140b39b680675e0",
    "variable_tracking": "b482c664667ebc6d440d7d2bf0be1d0b874d86c413d236253ade0560a2257623",
    "common_words_extraction": "a5199b048bceea6fc3c2fa06e7f7710cff46ed0eb66264ec461552b0b8268e5c",
    "freq_words_extraction": "002a5c2a6b8f4e3b85b1b3ad1aff437a4c2fdd765abfab48ff19e00d7bb41b66",
    "qa": "f43cc23860a3efafadd9bb56fb5376015a8d530ade6c35c01119e7ab941bf2d6",
}
OFFICIAL_TOKENS_TO_GENERATE = {"niah": 128, "variable_tracking": 30, "common_words_extraction": 120,
                               "freq_words_extraction": 50, "qa": 32}


def _build(tok, task, length, n=2, **kw):
    return build_samples(BuildSpec(task, length, n, **{**QA_PATHS, **kw}), tok)


def test_templates_are_byte_identical_to_official():
    for kind, t in TEMPLATES.items():
        digest = hashlib.sha256((t.text + "\0" + t.answer_prefix).encode()).hexdigest()
        assert digest == OFFICIAL_TEMPLATE_SHA[kind], kind
        assert t.tokens_to_generate == OFFICIAL_TOKENS_TO_GENERATE[kind], kind
    assert len(TASKS) == 13


@pytest.fixture(scope="module")
def built_8k(tiny_tokenizer):
    """Every task at 8192 tokens of the tiny tokenizer (a haystack unit is < 1% of the budget)."""
    return {task: _build(tiny_tokenizer, task, 8192) for task in TASKS}


def test_every_task_fits_its_budget_and_fills_it(built_8k, tiny_tokenizer):
    count = token_counter(tiny_tokenizer)
    for task, docs in built_8k.items():
        gen = TASKS[task].template.tokens_to_generate
        for d in docs:
            n = count(d["_prompt"])
            assert n == d["prompt_tokens"], task                  # recorded count is the real one
            assert n + gen <= 8192, (task, n)                      # never over the target
            if TASKS[task].kind == "qa":                           # whole documents: within one document
                assert n >= d["budget"] - 400, (task, n)
            else:
                assert n >= 0.97 * (8192 - gen), (task, n)         # within 3% of the budget


def test_gold_answers_are_in_the_prompt(built_8k):
    for task, docs in built_8k.items():
        kind = TASKS[task].kind
        for d in docs:
            body = d["_prompt"][: -len(d["answer_prefix"])]
            if kind == "qa":  # part match: at least one gold answer is in the documents
                assert any(o in body for o in d["outputs"]), task
            else:
                assert all(o in body for o in d["outputs"]), (task, d["outputs"])
            assert d["_prompt"].endswith(d["answer_prefix"])


def test_niah_needle_counts_and_queries(built_8k):
    expect = {"niah_single_1": (1, 1), "niah_multikey_1": (4, 1), "niah_multivalue": (4, 4), "niah_multiquery": (4, 4)}
    for task, (needles, answers) in expect.items():
        for d in built_8k[task]:
            assert d["_prompt"].count("One of the special magic") == needles, task
            assert len(d["outputs"]) == answers, task
    single = built_8k["niah_single_1"][0]["_prompt"]
    assert "A special magic number is hidden" in single and "special magic number for" in single
    multikey_2 = built_8k["niah_multikey_2"][0]["_prompt"]  # the haystack is made of needles
    assert multikey_2.count("One of the special magic numbers for") > 50
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(uuid.fullmatch(o) for d in built_8k["niah_multikey_3"] for o in d["outputs"])


def test_needles_sit_at_their_recorded_depths(built_8k):
    for task in ("niah_single_1", "niah_single_2", "niah_single_3"):
        for d in built_8k[task]:
            prompt = d["_prompt"]
            start = prompt.index("afterwards.\n") + len("afterwards.\n")
            end = prompt.rindex("\nWhat is the special magic")
            where = prompt.index("One of the special magic", start)
            assert abs((where - start) / (end - start) - d["depths"][0] / 100) < 0.05, (task, d["depths"])



@pytest.mark.parametrize("n,depth,official", [(150, 82, 122), (300, 41, 122), (300, 69, 206), (1200, 41, 491),
                                              (150, 50, 75), (40, 100, 40), (7, 0, 0)])
def test_needle_depth_uses_the_official_arithmetic(n, depth, official):
    # NVIDIA/RULER niah.py places a needle after int(len(document_sents) * (depth / 100)) sentences;
    # in floating point that is one lower than int(n * depth / 100) for the first four pairs.
    assert official == int(n * (depth / 100))
    sentences = [f"S{i}." for i in range(n)]
    text = insert_at_depths(sentences, ["NEEDLE."], [depth])
    assert len(text.split("NEEDLE.")[0].split()) == official  # sentences before the needle

def test_vt_has_a_randomised_one_shot_example(built_8k):
    a, b = (d["_prompt"] for d in built_8k["vt"])
    for d in built_8k["vt"]:
        assert d["_prompt"].count("Memorize and track the chain(s)") == 2
        assert len(d["outputs"]) == 5 and all(re.fullmatch(r"[A-Z]{5}", v) for v in d["outputs"])
    first_example = a.split("Memorize and track")[1]
    assert first_example != b.split("Memorize and track")[1]     # names and value re-drawn per sample


def test_cwe_common_words_are_the_most_frequent(built_8k):
    for d in built_8k["cwe"]:
        listing = d["_prompt"].rsplit("Below is a numbered list of words.", 1)[1]
        words = re.findall(r"\d+\. (\S+)", listing.split("\nQuestion:")[0])
        counts = {w: words.count(w) for w in set(words)}
        top = sorted(counts, key=lambda w: -counts[w])[:10]
        assert set(top) == set(d["outputs"]) and min(counts[w] for w in d["outputs"]) == 30


def test_fwe_answers_are_ranks_two_to_four(built_8k):
    for d in built_8k["fwe"]:
        text = d["_prompt"].split("coded words. ", 1)[1].split("\nQuestion:")[0].split()
        counts = {w: text.count(w) for w in set(text)}
        ranked = sorted(counts, key=lambda w: -counts[w])
        assert ranked[0] == "..." and ranked[1:4] == d["outputs"]


def test_same_seed_same_prompts_other_seed_differs(tiny_tokenizer):
    a = _build(tiny_tokenizer, "niah_multikey_1", 2048)
    b = _build(tiny_tokenizer, "niah_multikey_1", 2048)
    c = _build(tiny_tokenizer, "niah_multikey_1", 2048, seed=7)
    assert a == b
    assert [d["_prompt"] for d in a] != [d["_prompt"] for d in c]


def test_cache_is_reused_and_keyed_by_seed(tiny_tokenizer, tmp_path, monkeypatch):
    spec = BuildSpec("niah_single_1", 2048, 2)
    first = load_or_build(spec, tiny_tokenizer, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1

    def boom(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr("tasks.ruler.build.build_samples", boom)
    assert load_or_build(spec, tiny_tokenizer, cache_dir=tmp_path) == first
    with pytest.raises(AssertionError, match="rebuilt"):
        load_or_build(BuildSpec("niah_single_1", 2048, 2, seed=1), tiny_tokenizer, cache_dir=tmp_path)


def test_fit_size_finds_the_largest_fitting_size_in_few_tries():
    calls = []

    def cost(n):
        calls.append(n)
        return 300 + 7 * n + (n % 3)

    fit = fit_size(cost, budget=10_000, guess=50, min_size=1, rate_guess=5.0)
    assert fit.tokens <= 10_000 and cost(fit.size + 1) > 10_000 - 7
    assert fit.tries <= 8
    with pytest.raises(ValueError, match="already takes"):
        fit_size(lambda n: 500 + n, budget=100, guess=10, min_size=1, rate_guess=1.0)



# Official sizing, restated from NVIDIA/RULER scripts/data/synthetic/{niah,variable_tracking,
# common_words_extraction,freq_words_extraction,qa}.py at c3f5e3b4 ------------------------------

def _official_incremental(task, length):
    """The scripts' `incremental`: niah essay 500 words, noise/needle 25 lines (5 below 4096);
    vt 10 noise lines (5 below 4096); cwe and qa 10; fwe (length - 50) // 32 words."""
    cfg = TASKS[task]
    if cfg.kind == "niah":
        if cfg.args["type_haystack"] == "essay":
            return 500
        return 5 if length < 4096 else 25
    if cfg.kind == "variable_tracking":
        return 5 if length < 4096 else 10
    if cfg.kind == "freq_words_extraction":
        return (length - 50) // 32
    return 10


def _official_binary_search(tokens, extra, length, incremental, probe, cwe=False):
    """`sample_tokens / incremental` per unit; upper bound int((max_seq_length / per_unit) * 3)
    (cwe: int(max_seq_length // per_unit) * 2, probe 4096); lower bound `incremental`; keep mid
    while tokens + extra <= max_seq_length; none: `incremental`."""
    per = tokens(probe) / probe
    upper = int(length // per) * 2 if cwe else int((length / per) * 3)
    lower, upper, optimal = incremental, max(upper, incremental * 2), None
    while lower <= upper:
        mid = (lower + upper) // 2
        if tokens(mid) + extra <= length:
            optimal, lower = mid, mid + 1
        else:
            upper = mid - 1
    return optimal if optimal is not None else incremental


def _official_sizes(tok, task, length, n):
    """The haystack sizes the official procedure gives our deterministic samples (search on the
    first sample, then `used -= incremental` while a sample is over and `used > incremental`)."""
    from tasks.ruler.build import sample_seed
    from tasks.ruler.synthetic import GENERATORS, Context

    count = token_counter(tok)
    wrap, _ = template_wrapper(tok, None, None)
    cfg = TASKS[task]
    gen = GENERATORS[cfg.kind](cfg, Context(wrap=wrap, count=count, length=length, seed=42, **QA_PATHS))
    inc, to_generate = _official_incremental(task, length), cfg.template.tokens_to_generate
    seeds = [sample_seed(42, task, length, i) for i in range(n)]
    if cfg.kind == "freq_words_extraction":  # sys_kwext: step up from L // 6 words, then one back
        limit = length - to_generate
        words = limit // 6
        while count(gen.make(seeds[0], words, 0).prompt) < limit:
            words += inc
        size = words - inc
    elif cfg.kind == "variable_tracking":  # searched without the one-shot example, counted beside it
        size = _official_binary_search(lambda m: count(gen.make(seeds[0], m, 0, with_example=False).prompt),
                                       count(gen.icl) + to_generate, length, inc, inc)
    else:
        probe = 4096 if cfg.kind == "common_words_extraction" else inc
        size = _official_binary_search(lambda m: count(gen.make(seeds[0], m, 0).prompt), to_generate, length, inc,
                                       probe, cwe=cfg.kind == "common_words_extraction")
    sizes = []
    for i, seed in enumerate(seeds):
        used = size
        while count(gen.make(seed, used, i).prompt) + to_generate > length and used > inc:
            used -= inc
        sizes.append(used)
    return sizes


def test_official_search_and_shrink_on_hand_computed_costs():
    from tasks.ruler import sizing

    # 100 + 7n tokens, 4096 length, 128 to generate: probe 25 -> 11 per unit -> upper bound 1117;
    # the largest n with 100 + 7n <= 3968 is 552.
    assert sizing.binary_search(lambda n: 100 + 7 * n, 3968, 4096, step=25, probe=25) == 552
    assert sizing.binary_search(lambda n: 5000 + n, 3968, 4096, step=25, probe=25) == 25   # none fits
    # FWE: 3 tokens a word, budget 1000, from 166 words by 31 -> 352 is the first over, 321 kept.
    assert sizing.linear_search(lambda n: 3 * n, 1000, 1000 // 6, 31) == 321
    assert sizing.shrink(lambda n: n <= 300, 352, 31) == 290
    with pytest.raises(ValueError, match="shrinks by 31"):
        sizing.shrink(lambda n: False, 40, 31)


@pytest.mark.parametrize("task,length", [(t, 8192) for t in TASKS] + [("niah_single_1", 2048), ("vt", 2048)])
def test_official_sizing_reproduces_the_official_procedure(tiny_tokenizer, task, length):
    docs = _build(tiny_tokenizer, task, length, n=3, sizing="official")
    assert [d["haystack_size"] for d in docs] == _official_sizes(tiny_tokenizer, task, length, 3)
    count = token_counter(tiny_tokenizer)
    for d in docs:
        assert count(d["_prompt"]) == d["prompt_tokens"] <= d["budget"] == length - TASKS[task].template.tokens_to_generate
        assert json.loads(d["_sources"])["sizing"] == "official"


def test_official_sizing_leaves_samples_below_the_budget(tiny_tokenizer):
    """One official step is coarse: an essay sample that misses the searched size loses 500 words."""
    docs = _build(tiny_tokenizer, "niah_multikey_1", 4096, n=5, sizing="official")
    sizes = {d["haystack_size"] for d in docs}
    assert max(sizes) - min(sizes) in (0, 500, 1000) and min(d["fill"] for d in docs) < 0.9
    exact = _build(tiny_tokenizer, "niah_multikey_1", 4096, n=5)
    assert min(d["fill"] for d in exact) >= 0.97


def test_vt_one_shot_size_is_binary_searched_as_officially(tiny_tokenizer):
    from tasks.ruler.synthetic import GENERATORS, Context

    count = token_counter(tiny_tokenizer)
    wrap, _ = template_wrapper(tiny_tokenizer, None, None)
    gen = GENERATORS["variable_tracking"](TASKS["vt"], Context(wrap=wrap, count=count, length=8192, seed=42))

    def example(size):  # variable_tracking.py's first call: 3-letter names, value 12345, no model template
        text, prefix, _ = gen._text(random.Random(42), size, icl=True)
        return text + prefix

    # sys_vartrack_w_noise_random(num_samples=1, max_seq_length=500, incremental=5): no tokens to generate
    lines = _official_binary_search(lambda n: count(example(n)), 0, 500, 5, 5)
    assert gen.icl.count(sources.NOISE_HAYSTACK) == lines == 6   # stepping by 5 stopped at 5
    assert count(example(lines)) <= 500 < count(example(lines + 1))


def test_sizing_defaults_by_mode_and_keys_the_cache(tiny_tokenizer, tmp_path):
    from tasks.ruler.build import cache_key
    from tasks.ruler.utils import load, resolve_sizing

    assert resolve_sizing(None, "official") == "official" and resolve_sizing(None, "reasoning") == "exact"
    assert resolve_sizing("exact", "official") == "exact"
    with pytest.raises(DataError, match="field 'sizing'"):
        resolve_sizing("tight", "official")
    docs = load("niah_single_1", tokenizer=tiny_tokenizer, lengths=[4096], num_samples=2, cache_dir=str(tmp_path))["test"]
    assert json.loads(docs[0]["_sources"])["sizing"] == "official"
    spec = BuildSpec("niah_single_1", 4096, 2)
    assert cache_key(spec, tiny_tokenizer) != cache_key(BuildSpec("niah_single_1", 4096, 2, sizing="official"),
                                                       tiny_tokenizer)
    with pytest.raises(ValueError, match="sizing"):
        build_samples(BuildSpec("niah_single_1", 4096, 1, sizing="tight"), tiny_tokenizer)
    with pytest.raises(ValueError, match='"sizing": "exact"'):  # one 500-word essay step is over 2048 tokens
        build_samples(BuildSpec("niah_single_2", 2048, 1, sizing="official"), tiny_tokenizer)

def test_chat_template_wrapping_matches_a_direct_render(tiny_tokenizer):
    wrap, desc = template_wrapper(tiny_tokenizer, None, None)
    direct = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "x {y}\n"}], tokenize=False,
                                                add_generation_prompt=True, enable_thinking=False)
    assert wrap("x {y}\n") == direct and "chat template" in desc
    plain, desc = template_wrapper(tiny_tokenizer, False, None)
    assert plain("abc") == "abc" and desc.startswith("none")


def test_qa_loaders_read_official_layouts_and_reject_bad_files(tmp_path):
    squad = sources.qa_data("squad", QA_PATHS["squad_path"])
    assert len(squad.questions) == 24 and all(q["outputs"] for q in squad.questions)  # unanswerable skipped
    assert all(len(q["more_context"]) == 2 for q in squad.questions)                # same-article paragraphs
    hotpot = sources.qa_data("hotpotqa", QA_PATHS["hotpotqa_path"])
    assert len(hotpot.questions) == 20 and all(len(q["context"]) == 5 for q in hotpot.questions)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c"}]}]}))
    with pytest.raises(DataError, match="bad.json.*qas"):
        sources.qa_data("squad", str(bad))
    with pytest.raises(DataError, match="expected the HotpotQA JSON layout"):
        sources.qa_data("hotpotqa", str(bad))


def test_lengths_and_tokenizer_errors_say_what_to_do():
    assert resolve_lengths(None, 20000) == [4096, 8192, 16384]
    assert resolve_lengths([2048, "1024", 2048], 4096) == [1024, 2048]
    with pytest.raises(DataError, match="exceed the served window"):
        resolve_lengths([8192], 4096)
    with pytest.raises(DataError, match="no default RULER length"):
        resolve_lengths(None, 2048)
    from tasks.ruler.utils import load

    with pytest.raises(DataError, match="tokenizer"):
        load("niah_single_1", tokenizer=None)


def test_process_results_uses_the_official_metric_per_kind():
    niah = {"id": "niah_multivalue-4096-0", "outputs": ["1", "2", "3", "4"]}
    assert process_results(niah, [" 1, 2 and 9"])["score"] == 50.0          # all: fraction found
    qa = {"id": "qa_squad-4096-0", "outputs": ["teal", "painted teal"]}
    assert process_results(qa, ["It is teal."])["score"] == 100.0           # part: any reference


def test_score_official_prediction_file(tmp_path):
    f = tmp_path / "qa_1.jsonl"
    rows = [{"index": 0, "pred": " Teal\x07", "outputs": ["teal", "x"]},
            {"index": 1, "pred": "", "outputs": ["amber"]},
            {"index": 2, "pred": "olive", "output": "olive"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = score_file(f, "qa_1")
    assert (r["score"], r["n"], r["nulls"], r["per_item"]) == (pytest.approx(200 / 3), 3, 1, [1.0, 0.0, 1.0])
    assert score_file(f, "niah_single_1")["score"] == pytest.approx(100 * (0.5 + 0 + 1) / 3)
    f.write_text(json.dumps({"index": 0, "pred": "a", "outputs": "a"}) + "\n")
    with pytest.raises(DataError, match="line 1, field 'outputs'"):
        score_file(f, "vt")


def test_score_cli_json(tmp_path, capsys):
    from longact.cli import main

    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"pred": "VAR ABCDE", "outputs": ["ABCDE", "FGHIJ"]}) + "\n")
    assert main(["score", "ruler", str(f), "--task", "vt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"score": 50.0, "n": 1}
    assert main(["score", "ruler", str(f), "--task", "nope"]) == 2


def test_essay_download_from_a_real_http_server_resumes(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "one.html").write_text("<html><body><table><tr><td><font size=2>First essay.<br><br>"
                                   "Second &amp; last paragraph.</font></td></tr></table></body></html>")
    (site / "two.txt").write_text("Plain text essay.\n")
    server = HTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        (site / "urls.txt").write_text(f"{base}/one.html\n{base}/two.txt\n{base}/missing.html\n")
        from tasks.ruler.essays import download_essays

        out = tmp_path / "essays"
        m = download_essays(out, f"{base}/urls.txt", progress=False)
        assert sorted(m["files"]) == ["one.txt", "two.txt"] and len(m["failures"]) == 1
        assert (out / "one.txt").read_text() == "First essay.\n\nSecond & last paragraph.\n"
        (out / "two.txt").write_text("kept")  # a rerun skips what is there
        download_essays(out, f"{base}/urls.txt", progress=False)
        assert (out / "two.txt").read_text() == "kept"
    finally:
        server.shutdown()
    words, src = sources.essay_words(str(out))
    assert "essay." in words and src.origin == str(out)


def test_essay_fallback_is_generated_and_marked(monkeypatch, tmp_path):
    monkeypatch.setenv("LONGACT_CACHE", str(tmp_path))
    sources.essay_words.cache_clear()
    words, src = sources.essay_words(None)
    assert len(words) > 100_000 and src.origin.startswith("generated-fallback")
    with pytest.raises(DataError, match="essay corpus not found"):
        sources.essay_words(str(tmp_path / "nope"))
    sources.essay_words.cache_clear()



def test_generated_essays_warn_at_load_and_are_not_published_comparable(monkeypatch, tmp_path, tiny_tokenizer, caplog):
    from tasks import benchmarks
    from tasks.ruler.benchmark import published_comparable
    from tasks.ruler.utils import load

    monkeypatch.setenv("LONGACT_CACHE", str(tmp_path))
    sources.essay_words.cache_clear()
    md = {"tokenizer": tiny_tokenizer, "lengths": [4096], "num_samples": 1, "cache_dir": str(tmp_path / "built")}
    with caplog.at_level("WARNING", logger="longact.ruler"):
        docs = load("niah_single_2", **md)["test"]
    warned = [r.getMessage() for r in caplog.records if "generated stand-in" in r.getMessage()]
    assert len(warned) == 1 and "longact data ruler-essays" in warned[0] and "essay_path" in warned[0]
    generated = [json.loads(docs[0]["_sources"])]
    assert any(s["kind"] == "essay" and s["origin"].startswith("generated-fallback") for s in generated[0]["sources"])
    ok, why = published_comparable(generated)
    assert not ok and "longact data ruler-essays" in why
    assert benchmarks.published_comparable("ruler_niah_single_2", generated) == (ok, why)

    caplog.clear()
    with caplog.at_level("WARNING", logger="longact.ruler"):  # no essay haystack: no warning, comparable
        noise = load("niah_single_1", **md)["test"]
    assert not caplog.records and published_comparable([json.loads(noise[0]["_sources"])]) == (True, "")
    essays = tmp_path / "essays.txt"
    essays.write_text("An essay sentence about startups and painters. " * 2000)
    with caplog.at_level("WARNING", logger="longact.ruler"):
        real = load("niah_single_2", **md, essay_path=str(essays))["test"]
    assert not caplog.records and published_comparable([json.loads(real[0]["_sources"])]) == (True, "")
    exact = load("niah_single_1", **md, sizing="exact")["test"]
    ok, why = published_comparable([json.loads(exact[0]["_sources"])])
    assert not ok and why.startswith("exact sizing")
    ok, why = published_comparable([{"sources": [], "template": "none"}])  # task version 1.0: no sizing recorded
    assert not ok and "1.0" in why
    assert benchmarks.published_comparable("longbench_v2", []) == (True, "")
    sources.essay_words.cache_clear()

@pytest.mark.server
def test_ruler_end_to_end_through_vllm(vllm_server, tiny_model_dir, tmp_path):
    from harness.records.io import load_run
    from harness.report.tables import run_table
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    md = {"lengths": [2048], "num_samples": 2, "sizing": "exact", **QA_PATHS}  # one official essay step is over 2048
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["ruler"], output_dir=str(tmp_path), task_metadata=md, progress=False))
    run_dir = run_eval(cfg)
    rec = load_run(run_dir)
    assert rec.status == "complete" and set(rec.tasks) == {f"ruler_{t}" for t in TASKS}
    for t in rec.tasks.values():
        assert t.n_samples == 2 and t.n_errors == 0 and t.n_truncated == 0 and t.endpoint == "completion"
        assert set(t.breakdown["length"]) == {"2048"}
        assert t.data_sources and "template" in t.data_sources[0]
        rows = [json.loads(l) for l in (run_dir / t.samples_file).read_text().splitlines()]
        for r in rows:  # nothing was cut by the harness: the generator already fit the budget
            assert r["prompt_tokens"] + t.generation_kwargs["max_gen_toks"] <= 2048
            assert r["metrics"]["score"] == process_results(r["doc"], [r["filtered"]])["score"]
    per_length = rec.group_breakdown["ruler"]["length"]["2048"]["score"]
    assert per_length.n == 26
    assert per_length.value == pytest.approx(sum(t.metrics["score"].value for t in rec.tasks.values()) / 13)
    essay = rec.tasks["ruler_niah_single_2"].data_sources[0]["sources"]
    assert any(s["kind"] == "essay" for s in essay)
    assert "ruler length=2048 (mean over tasks)" in run_table(run_dir)


def test_qa_without_files_offline_names_the_download_and_the_key():
    sources.qa_data.cache_clear()
    with pytest.raises(DataError, match=r"dev-v2\.0\.json.*squad_path"):
        sources.qa_data("squad", None)
    with pytest.raises(DataError, match="hotpotqa_path"):
        sources.qa_data("hotpotqa", None)
