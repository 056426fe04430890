"""`longact mask inspect` (training/premise.py): the measures by hand, a run on the tiny model, and
bad input refused before any work."""

import json

import pytest
import torch

from longact.cli import main
from training import premise
from training.premise import (
    chance,
    documents,
    head_shares,
    mean_pair_overlap,
    module_report,
    overlap,
    pool,
    share,
    summarise,
    top_rows,
)


def _rows(*idx, width=4):
    out = torch.zeros(width, dtype=torch.bool)
    out[list(idx)] = True
    return out


def test_share_and_overlap_by_hand():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])
    assert share(s, _rows(0, 1)) == pytest.approx(0.7)
    assert head_shares(s, _rows(0, 3), head_dim=2) == pytest.approx([4 / 7, 1 / 3])
    assert overlap(_rows(0, 1), _rows(0, 3)) == 0.5
    assert mean_pair_overlap([_rows(0, 1), _rows(0, 3), _rows(0, 1)]) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # floor(0.3 * 64) = 19 rows of 64: a flat statistic gives 19/64, as do two random sets on average
    assert chance(0.3, 64) == 19 / 64 and chance(0.1, 4) == 0.25


def test_top_rows_ranks_within_the_layer_or_each_head():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])
    assert top_rows(s, 0.5, "layer", head_dim=2).tolist() == [True, True, False, False]
    assert top_rows(s, 0.5, "head", head_dim=2).tolist() == [True, False, True, False]


def test_pool_matches_one_statistic_over_all_documents():
    a, b = torch.tensor([1.0, 4.0]), torch.tensor([3.0, 0.0])
    assert pool([a, b], "mean_abs").tolist() == [2.0, 2.0]
    assert pool([a, b], "l2").tolist() == pytest.approx([5 ** 0.5, 8 ** 0.5])
    assert pool([a, b], "max").tolist() == [3.0, 4.0]


def test_module_report_by_hand():
    """Two heads of 2 rows; at length 10 two documents disagree on the second-best row, at length
    20 the statistic has moved to the other head."""
    per_length = {10: [torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([4.0, 1.0, 2.0, 3.0])],
                  20: [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])]}
    rep = module_report(per_length, [0.5], head_dim=2, statistic="mean_abs")
    short, long = rep["by_length"]["10"]["0.5"], rep["by_length"]["20"]["0.5"]
    # pooled at 10: [4, 2, 2, 2]; top 2 = rows 0 and 1 (ties resolve by index, as the mask's)
    assert short["share"] == pytest.approx(0.6)
    assert short["head_share"] == pytest.approx([4 / 6, 2 / 4])
    assert short["head_kept_fraction"] == [1.0, 0.0]
    assert short["prompt_overlap"] == {"layer": 0.5, "head": 0.5}  # {0,1} vs {0,3}; per head {0,2} vs {0,3}
    assert short["overlap_with_shortest"] == 1.0 and short["overlap_with_longest"] == 0.0  # {2,3} at 20
    assert long["share"] == pytest.approx(0.7) and long["prompt_overlap"]["layer"] == 1.0
    assert long["overlap_with_shortest"] == 0.0 and long["overlap_with_longest"] == 1.0
    summary = summarise([{"layer": 0, "q": rep, "k": rep}], [10, 20], [0.5], head_dim=2)["q"]["0.5"]
    assert summary["share_change"] == pytest.approx(0.1) and summary["layers_share_grows"] == 1
    assert summary["chance_layer"] == 0.5 and summary["share"]["20"]["mean"] == pytest.approx(0.7)


def test_documents_are_exactly_each_length_and_share_their_start(tiny_tokenizer):
    docs = documents(tiny_tokenizer, [64, 200], prompts=2)
    assert [len(d) for d in docs.ids[64]] == [64, 64] and [len(d) for d in docs.ids[200]] == [200, 200]
    assert docs.ids[200][0][:64] == docs.ids[64][0] and docs.ids[64][0] != docs.ids[64][1]
    assert docs.source["kind"] == "essay" and docs.source["sha256"]


def test_inspect_on_the_tiny_model_writes_report_and_plot_and_resumes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "premise"
    argv = ["mask", "inspect", "--model", str(tiny_model_dir), "--lengths", "128,64", "--prompts", "2",
            "--ratios", "0.25,0.5", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "q_proj top 50% of rows" in printed and "k_proj top 50% of rows" in printed  # the middle ratio asked
    report = json.loads((out / "premise.json").read_text())
    assert (out / "premise.png").stat().st_size > 10_000
    assert report["config"]["lengths"] == [64, 128] and report["model_shape"]["layers"] == len(report["layers"])
    for entry in report["layers"]:
        for proj in ("q", "k"):
            at = entry[proj]["by_length"]["128"]["0.25"]
            # the top quarter holds at least a quarter (ranked rows) and at most all of it
            assert 0.25 <= at["share"] <= 1.0
            assert len(at["head_share"]) == entry[proj]["heads"] and all(0.25 <= h <= 1.0 for h in at["head_share"])
            assert 0.0 <= at["prompt_overlap"]["layer"] <= 1.0 and at["overlap_with_longest"] == 1.0
    cached = sorted(p.name.split("-")[0] for p in (out / ".cache").rglob("*.safetensors"))
    assert cached == ["len128", "len128", "len64", "len64"]
    # a rerun reads the cached saliency back and reports the same numbers
    p = next((out / ".cache").rglob("len64-*.safetensors"))
    before = p.stat().st_mtime_ns
    assert main(argv) == 0
    assert p.stat().st_mtime_ns == before
    again = json.loads((out / "premise.json").read_text())
    assert again["layers"] == report["layers"] and again["summary"] == report["summary"]
    # ... and what each length's forward passes cost when they ran
    assert again["seconds"]["per_length"] == report["seconds"]["per_length"]
    assert report["seconds"]["documents_from_cache"] == 0 and again["seconds"]["documents_from_cache"] == 4
    assert all(s > 0 for s in report["seconds"]["per_length"].values())
    assert report["machine"]["cpus"] >= 1 and len(report["machine"]["load_before"]) == 3


@pytest.fixture
def model_without_qk(tmp_path):
    """A GPT-2 config (one fused c_attn projection, no q_proj/k_proj): no weights needed to refuse it."""
    d = tmp_path / "gpt2ish"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2,
                                               "n_positions": 64, "vocab_size": 16, "max_position_embeddings": 64}))
    return d


@pytest.mark.parametrize("extra, needle", [
    (["--lengths", "256,40000"], "40000 over the model's window of 32768"),
    (["--lengths", "256", "--ratios", "0.3,0"], "--ratios: 0 is outside (0, 1]"),
    (["--lengths", "256", "--ratios", "1.5"], "--ratios: 1.5 is outside (0, 1]"),
    (["--lengths", "256", "--prompts", "1"], "at least 2"),
    (["--lengths", "a,b"], "--lengths: expected comma-separated int"),
    (["--lengths", "256", "--statistic", "median"], "mask.statistic"),
    (["--lengths", "256", "--essays", "/nonexistent/essays"], "corpus not found"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(extra, needle, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["mask", "inspect", "--model", str(tiny_model_dir), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_model_and_model_without_qk_are_refused(model_without_qk, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["mask", "inspect", "--model", str(tmp_path / "nope"), "--lengths", "32", "--out", str(out)]) == 2
    assert "no such model directory" in capsys.readouterr().err
    assert main(["mask", "inspect", "--model", str(model_without_qk), "--lengths", "32", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "q_proj / *k_proj" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_check_reads_the_window_and_head_layout(tiny_model_dir):
    shape = premise.check(premise.PremiseConfig(model=str(tiny_model_dir), lengths=(64,)))
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert shape.window == cfg["max_position_embeddings"] and shape.head_dim == cfg["head_dim"]


def test_the_cache_is_keyed_by_each_documents_tokens(tiny_tokenizer):
    """Two documents instead of three start at other words: their saliency must not be read back;
    the same document asked for again (another --lengths list) is."""
    two, three = (documents(tiny_tokenizer, [64, 128], prompts=n) for n in (2, 3))
    assert premise.document_key(two.ids[64][0]) == premise.document_key(three.ids[64][0])  # both start at word 0
    assert premise.document_key(two.ids[64][1]) != premise.document_key(three.ids[64][1])
    assert premise.document_key(two.ids[64][0]) != premise.document_key(two.ids[128][0])
    assert premise.document_key(two.ids[64][0]).startswith("len64-")
