"""Security defaults: loopback binding, API keys on both ends, no remote code, no pickles, no
evaluation of model output."""

import ast
from pathlib import Path

from harness.backends.lm import ServerLM
from harness.backends.serve import ServerConfig

ROOT = Path(__file__).resolve().parents[2]


def flag(cmd: list[str], name: str):
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_server_binds_loopback_unless_a_host_is_given():
    assert flag(ServerConfig(model="m").command(8000), "--host") == "127.0.0.1"
    assert flag(ServerConfig(model="m", host="0.0.0.0").command(8000), "--host") == "0.0.0.0"


def test_api_key_is_set_on_the_server_and_sent_by_the_client(tiny_tokenizer):
    assert flag(ServerConfig(model="m", api_key="s3cret").command(8000), "--api-key") == "s3cret"
    assert "--api-key" not in ServerConfig(model="m").command(8000)
    lm = ServerLM("http://127.0.0.1:1", "m", tiny_tokenizer, 2048, api_key="s3cret")
    assert lm.headers == {"Authorization": "Bearer s3cret"}
    assert ServerLM("http://127.0.0.1:1", "m", tiny_tokenizer, 2048).headers == {}


def test_no_remote_code_and_no_pickled_weights_by_default(monkeypatch):
    cmd = ServerConfig(model="m").command(8000)
    assert "--trust-remote-code" not in cmd
    assert flag(cmd, "--load-format") == "safetensors"
    assert "--trust-remote-code" in ServerConfig(model="m", trust_remote_code=True).command(8000)

    seen = {}
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda path, **kw: seen.update(kw) or object())
    from tasks.tokens import load_tokenizer

    load_tokenizer.cache_clear()  # tokenizers are loaded once per path and process
    try:
        load_tokenizer("anything")
    finally:
        load_tokenizer.cache_clear()
    assert seen.get("trust_remote_code") is False


def test_tiny_model_weights_are_safetensors_only(tiny_model_dir):
    files = {p.suffix for p in Path(tiny_model_dir).iterdir()}
    assert ".safetensors" in files and not files & {".bin", ".pt", ".pkl"}


def test_no_scorer_or_loader_evaluates_text():
    """eval/exec/compile/pickle on anything in tasks/ and harness/ would let model output or data
    files run code; parsing only."""
    banned_calls = {"eval", "exec", "compile", "__import__"}
    offenders = []
    for path in list((ROOT / "tasks").rglob("*.py")) + list((ROOT / "harness").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in banned_calls:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}()")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "marshal", "dill") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {names}")
    assert offenders == []


def test_every_torch_load_is_weights_only():
    """Trainer state and masks are loaded without unpickling arbitrary objects."""
    calls = []
    for path in list((ROOT / "training").rglob("*.py")) + list((ROOT / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", ok))
    assert calls and all(ok for _, ok in calls), calls
