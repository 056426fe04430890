"""The CLI's help and its bad-input messages (no server needed)."""

import pytest

from longact.cli import main


def test_help_lists_verbs_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("eval", "model", "show", "tasks", "examples:", "longact eval --model"):
        assert word in out


def _parsers(parser, path=("longact",)):
    """Every parser of the CLI, sub-verbs of sub-verbs included, with the words that reach it."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_verb_and_sub_verb_has_examples_and_every_flag_has_help():
    """docs/evaluating.md promises `--help` with examples for every verb; `longact model build-tiny`,
    `longact data ruler-essays`, `longact score <bench>` and `longact tasks` had none, and
    `train-tiny-skills --seed` and `compare --format` had no help."""
    import argparse

    from longact.cli import build_parser

    seen, missing, bare = [], [], []
    for path, parser in _parsers(build_parser()):
        seen.append(" ".join(path))
        if "example" not in parser.format_help():
            missing.append(" ".join(path))
        bare += [f"{' '.join(path)} {a.option_strings[0] if a.option_strings else a.dest}" for a in parser._actions
                 if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert {"longact model build-tiny", "longact data ruler-essays", "longact score ruler", "longact tasks",
            "longact train", "longact experiment"} <= set(seen)
    assert missing == [] and bare == []


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


def test_tasks_lists_groups_members_descriptions_and_offline_needs(capsys):
    import json
    import re

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  tiny +group of 4: ", out, re.M) and re.search(r"^    tiny_niah +RULER-niah-shaped", out, re.M)
    assert re.search(r"^  ruler +group of 13: ", out, re.M) and re.search(r"^    ruler_vt +variable tracking", out, re.M)
    assert "runs offline as shipped" in out                                        # tiny
    assert "--metadata '{\"data_path\": " in out and "--metadata '{\"data_dir\": " in out
    essays = re.search(r"needs the official essay haystack.* for (.*)\n +offline: `longact data ruler-essays` once", out)
    assert essays and essays.group(1).split(", ") == ["ruler_niah_single_2", "ruler_niah_single_3", "ruler_niah_multikey_1",
                                                      "ruler_niah_multivalue", "ruler_niah_multiquery"]
    assert main(["tasks", "--json"]) == 0
    catalog = {b["benchmark"]: b for b in json.loads(capsys.readouterr().out)}
    ruler = catalog["ruler"]
    assert ruler["groups"]["ruler"]["members"][0] == "ruler_niah_single_1"
    assert [n["metadata_key"] for n in ruler["tasks"]["ruler_niah_single_2"]["needs"]] == ["essay_path"]
    assert ruler["tasks"]["ruler_niah_single_2"]["needs"][0]["runs_without_it"] is True
    assert [n["metadata_key"] for n in ruler["tasks"]["ruler_qa_squad"]["needs"]] == ["squad_path"]
    assert ruler["tasks"]["ruler_vt"]["needs"] == [] and catalog["tiny"]["tasks"]["tiny_kv"]["groups"] == ["tiny"]
    assert {n["metadata_key"] for n in ruler["groups"]["ruler"]["needs"]} == {"essay_path", "squad_path", "hotpotqa_path"}


def test_eval_flags_fill_the_nested_config():
    """Each flag is declared once, on its config field; the parser and the config agree."""
    from harness.backends.serve import ServerConfig
    from harness.run.config import ClientConfig, EvalConfig, RunConfig, from_args
    from longact.cli import build_parser

    args = build_parser().parse_args([
        "eval", "--model", "m", "--max-model-len", "4096", "--concurrency", "3", "--server-args",
        "--enforce-eager --seed 0", "--no-cache", "--quiet", "--limit", "5", "--metadata", '{"a": 1}',
        "--tasks", "tiny_mc, tiny_kv", "--per-request-seed", "--port", "8001"])
    cfg = from_args(args)
    assert cfg.model == "m" and cfg.max_model_len == 4096 and cfg.backend == "server"
    assert cfg.serve == ServerConfig(port=8001, extra_args=["--enforce-eager", "--seed", "0"])
    assert cfg.client == ClientConfig(concurrency=3, per_request_seed=True)
    assert cfg.run == RunConfig(tasks=["tiny_mc", "tiny_kv"], limit=5, task_metadata={"a": 1}, use_cache=False,
                                progress=False)
    # nothing given: exactly the dataclass defaults
    assert from_args(build_parser().parse_args(["eval"])) == EvalConfig()


def test_longact_server_args_is_the_default_of_server_args(monkeypatch):
    """$LONGACT_SERVER_ARGS gives every started server its flags (recorded like --server-args);
    an explicit --server-args replaces it."""
    from harness.run.backends import launch_config
    from harness.run.config import from_args
    from longact.cli import build_parser

    monkeypatch.setenv("LONGACT_SERVER_ARGS", "--enforce-eager --seed '1'")
    cfg = from_args(build_parser().parse_args(["eval", "--model", "m"]))
    assert cfg.serve.extra_args == ["--enforce-eager", "--seed", "1"]
    assert launch_config(cfg).command(8000)[-3:] == ["--enforce-eager", "--seed", "1"]
    given = from_args(build_parser().parse_args(["eval", "--model", "m", "--server-args", "--seed 2"]))
    assert given.serve.extra_args == ["--seed", "2"]
    monkeypatch.delenv("LONGACT_SERVER_ARGS")
    assert from_args(build_parser().parse_args(["eval", "--model", "m"])).serve.extra_args == []
