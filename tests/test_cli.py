"""The CLI's help and its bad-input messages (no server needed)."""

import pytest

from longact.cli import main


def test_help_lists_verbs_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("eval", "model", "show", "tasks", "examples:", "longact eval --model"):
        assert word in out


def test_eval_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--base-url" in out and "resumes" in out


@pytest.mark.parametrize("argv,needle", [
    (["eval", "--model", "/nonexistent/model", "--tasks", "tiny"], "model path /nonexistent/model does not exist"),
    (["eval", "--tasks", "tiny"], "pass --model PATH"),
    (["eval", "--model", "MODEL", "--tasks", "tiny_nia"], "unknown task 'tiny_nia'. Did you mean: tiny_niah"),
])
def test_bad_input_is_one_clear_line(argv, needle, capsys, tiny_model_dir):
    argv = [str(tiny_model_dir) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_unwritable_output_dir(capsys, tiny_model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "--model", str(tiny_model_dir), "--tasks", "tiny", "--output-dir", str(blocker / "out")]) == 2
    assert "cannot write to output directory" in capsys.readouterr().err


def test_build_tiny_reuses_existing(capsys, tiny_model_dir):
    assert main(["model", "build-tiny", "--out", str(tiny_model_dir)]) == 0
    assert "already" in capsys.readouterr().out


def test_tasks_lists_tiny(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "tiny_niah" in out


def test_eval_flags_fill_the_nested_config():
    """Each flag is declared once, on its config field; the parser and the config agree."""
    from harness.run.config import ClientConfig, EvalConfig, RunConfig, ServeConfig, from_args
    from longact.cli import build_parser

    args = build_parser().parse_args([
        "eval", "--model", "m", "--max-model-len", "4096", "--concurrency", "3", "--server-args",
        "--enforce-eager --seed 0", "--no-cache", "--quiet", "--limit", "5", "--metadata", '{"a": 1}',
        "--tasks", "tiny_mc, tiny_kv", "--per-request-seed", "--port", "8001"])
    cfg = from_args(args)
    assert cfg.model == "m" and cfg.max_model_len == 4096 and cfg.backend == "server"
    assert cfg.serve == ServeConfig(port=8001, extra_args=["--enforce-eager", "--seed", "0"])
    assert cfg.client == ClientConfig(concurrency=3, per_request_seed=True)
    assert cfg.run == RunConfig(tasks=["tiny_mc", "tiny_kv"], limit=5, task_metadata={"a": 1}, use_cache=False,
                                progress=False)
    # nothing given: exactly the dataclass defaults
    assert from_args(build_parser().parse_args(["eval"])) == EvalConfig()
