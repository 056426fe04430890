"""Pre-flight for `longact eval` on GPUs: KV cache, sequences that fit and wall time, from the
model's config.json and the chosen tasks' prompt tokens, without starting a server.

    longact eval --model Qwen/Qwen3-8B --tokenizer TOK --tasks ruler --max-model-len 131072 \\
        --tensor-parallel-size 8 --plan [--gpu h100] [--mfu 0.4]

- KV cache per token: K and V of every layer (2 x layers x KV heads x head_dim x 2 bytes in
  bf16), split over the tensor-parallel GPUs; a sequence at the window holds `window` tokens.
- Sequences at once, per server: vLLM's budget (`--gpu-memory-utilization` from --server-args,
  else vLLM's 0.9, of each GPU) less the bf16 weights (split over TP) and a fixed allowance for
  its own activations, divided by one window-long sequence's KV cache.
- Wall time: the prompt tokens the run would send (the harness's own per-item estimate, the one
  `--shard` balances on) as prefill FLOPs, 2 x non-embedding parameters per token plus causal
  attention 2 x P^2 x (heads x head_dim) per layer for a P-token prompt, at the stated fraction
  (`--mfu`) of 989 dense bf16 TFLOPs per GPU over every GPU of the run. Decoding is left out: the
  benchmarks' answers are short (RULER's budget is 128 tokens) next to 4k-128k prompts; with
  `--mode reasoning` it is not, and the estimate is a floor.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.errors import UserError
from tasks.model_config import ENGINE_ACTIVATION_GIB, PEAK_BF16_TFLOPS, GiB, gpu_memory, load_model_config

VLLM_DEFAULT_UTILIZATION = 0.9


@dataclass
class Shape:
    """What the plan needs of a decoder's config.json."""
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def of(cls, c: dict) -> Shape:
        heads = c["num_attention_heads"]
        return cls(c["num_hidden_layers"], c["hidden_size"], heads, c.get("num_key_value_heads") or heads,
                   c.get("head_dim") or c["hidden_size"] // heads, c.get("intermediate_size", 4 * c["hidden_size"]),
                   c["vocab_size"], bool(c.get("tie_word_embeddings", False)))

    @property
    def layer_parameters(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return self.hidden * (q + 2 * kv) + q * self.hidden + 3 * self.hidden * self.intermediate

    @property
    def parameters(self) -> int:
        return self.layers * self.layer_parameters + self.vocab * self.hidden * (1 if self.tied else 2)


    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2  # K and V, bf16

    def prefill_flops(self, prompt: int) -> float:
        """Forward FLOPs of one P-token prompt: matmuls of the decoder layers, causal attention,
        the output layer at the last position."""
        return (2 * self.layers * self.layer_parameters * prompt + 2 * prompt**2 * self.heads * self.head_dim * self.layers
                + 2 * self.vocab * self.hidden)


@dataclass
class EvalPlan:
    model: str
    shape: Shape
    window: int
    tp: int
    gpus: int  # tensor parallel x data parallel x servers
    gpu: str
    gpu_gib: float
    utilization: float
    mfu: float
    prompts: dict[str, list[int]]  # task -> each item's prompt tokens (estimated), x samples per item

    @property
    def kv_per_sequence_gib(self) -> float:
        return self.shape.kv_bytes_per_token * self.window / GiB / self.tp  # per GPU

    @property
    def kv_budget_gib(self) -> float:
        return self.utilization * self.gpu_gib - 2 * self.shape.parameters / GiB / self.tp - ENGINE_ACTIVATION_GIB

    @property
    def sequences(self) -> float:
        """Window-long sequences one server holds at once."""
        return self.kv_budget_gib / self.kv_per_sequence_gib

    def seconds(self, task: str) -> float:
        return sum(self.shape.prefill_flops(p) for p in self.prompts[task]) / (self.gpus * self.mfu * PEAK_BF16_TFLOPS * 1e12)


def server_utilization(extra_args: list[str]) -> float:
    """`--gpu-memory-utilization` as the run passes it to vLLM (--server-args), else vLLM's default."""
    for i, a in enumerate(extra_args):
        if a.startswith("--gpu-memory-utilization"):
            value = a.partition("=")[2] or (extra_args[i + 1] if i + 1 < len(extra_args) else "")
            try:
                return float(value)
            except ValueError:
                raise UserError(f"--server-args: --gpu-memory-utilization expects a fraction, got {value!r}") from None
    return VLLM_DEFAULT_UTILIZATION


def task_prompt_tokens(cfg) -> dict[str, list[int]]:
    """Each chosen task's items' prompt tokens, as `--shard` weighs them (harness/run/shard.py),
    repeated `--samples-per-item` times. The tasks load as in a run (RULER builds its items at
    the window with the model's tokenizer)."""
    from harness.run.shard import prompt_weights
    from harness.run.tasks import TaskCatalog
    from tasks.tokens import load_tokenizer

    source = str(cfg.tokenizer or cfg.model)
    tokenizer = load_tokenizer(source)
    catalog = TaskCatalog()
    catalog.check_names(cfg.run.tasks)
    loaded = catalog.load(cfg.run.tasks, {"tokenizer": source, "max_model_len": cfg.max_model_len, "mode": cfg.run.mode,
                                          **cfg.run.task_metadata})
    weights, _ = prompt_weights(loaded["tasks"], tokenizer, cfg.run.limit)
    k = int(cfg.run.samples_per_item)
    return {task: [t for _, t in pairs] * k for task, pairs in weights.items()}


def plan_eval(cfg, gpu: str = "h200", mfu: float = 0.4, prompts: dict[str, list[int]] | None = None) -> EvalPlan:
    if not cfg.model:
        raise UserError("--plan sizes a model from its config.json: give --model")
    if not cfg.max_model_len:
        raise UserError("--plan needs --max-model-len (the window it sizes the KV cache for)")
    if not 0 < mfu <= 1:
        raise UserError(f"--mfu: expected a fraction in (0, 1], got {mfu}")
    shape = Shape.of(load_model_config(cfg.model))
    s = cfg.serve
    if shape.kv_heads % s.tensor_parallel_size and s.tensor_parallel_size % shape.kv_heads:
        raise UserError(f"--tensor-parallel-size {s.tensor_parallel_size}: {cfg.model} has {shape.kv_heads} KV heads, "
                        "which vLLM cannot split over that many GPUs; use a divisor or multiple of it")
    label, gib = gpu_memory(gpu)
    if prompts is None:
        prompts = task_prompt_tokens(cfg)
    return EvalPlan(cfg.model, shape, cfg.max_model_len, s.tensor_parallel_size,
                    s.tensor_parallel_size * s.data_parallel_size * s.servers, label, gib,
                    server_utilization(s.extra_args), mfu, prompts)


def render(p: EvalPlan) -> str:
    s = p.shape
    lines = [f"{p.model}: {s.parameters / 1e9:.2f}B parameters, window {p.window:,} tokens, TP={p.tp}, {p.gpus} GPU(s) "
             f"of {p.gpu_gib:.1f} GiB ({p.gpu}), vLLM at gpu_memory_utilization {p.utilization:g}",
             f"KV cache: {s.kv_bytes_per_token / 1024:.0f} KiB per token (bf16), {p.kv_per_sequence_gib:.2f} GiB per "
             f"window-long sequence per GPU",
             f"per server: {p.kv_budget_gib:.1f} GiB of KV cache per GPU (weights {2 * s.parameters / GiB / p.tp:.1f}, "
             f"activations ~{ENGINE_ACTIVATION_GIB:.0f}): {p.sequences:.1f} window-long sequences at once",
             f"wall time, prefill only, at {p.mfu:.0%} of {PEAK_BF16_TFLOPS:.0f} TFLOPs x {p.gpus} GPU(s):"]
    total = 0.0
    for task, tokens in p.prompts.items():
        sec = p.seconds(task)
        total += sec
        rate = sum(tokens) / sec if sec else 0.0
        lines.append(f"  {task:<32} {len(tokens):>6} prompts {sum(tokens) / 1e6:>9.1f}M tokens  {sec / 60:>8.1f} min "
                     f"({rate:,.0f} tokens/s)")
    lines.append(f"  {'total':<32} {sum(map(len, p.prompts.values())):>6} prompts "
                 f"{sum(map(sum, p.prompts.values())) / 1e6:>9.1f}M tokens  {total / 3600:>8.2f} h")
    if p.sequences < 1:
        lines.append("does not fit: not one window-long sequence fits the KV cache")
    return "\n".join(lines)


def refuse_unless_fits(p: EvalPlan) -> None:
    if p.sequences >= 1:
        return
    need = p.kv_per_sequence_gib - p.kv_budget_gib
    raise UserError(f"{p.model} at --max-model-len {p.window}: one sequence's KV cache ({p.kv_per_sequence_gib:.1f} GiB per "
                    f"GPU) does not fit the {max(p.kv_budget_gib, 0):.1f} GiB left per GPU ({need:.1f} GiB short); a larger "
                    "--tensor-parallel-size, a higher --gpu-memory-utilization (--server-args) or a shorter --max-model-len "
                    "would fit")
