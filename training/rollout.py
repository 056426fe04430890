"""Rollouts: one interface (`generate(prompts, n) -> Rollouts`), two backends.

- `HFRollout`: transformers `generate` on the live policy (CPU, tests). Without `seeds` sampling
  draws from the torch global RNG, which the trainer checkpoints, so resumed runs sample the same
  tokens; with `seeds` each prompt's group is a pure function of (weights, prompt, seed).
- `VLLMRollout`: vLLM's offline engine (GPU, or the CPU build in tests); after every optimizer step
  the trainer calls `sync(model)` to load the policy weights into the engine. Import-guarded:
  nothing imports vLLM unless this backend is chosen.

Token layout: prompts left-padded, completions right-padded; `completion_mask` [B, C] is 1 for
generated tokens up to and including the first EOS, 0 after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import asdict, dataclass

import torch

from tasks.thinking import THINK_CLOSE, THINK_OPEN
from tasks.tokens import middle_truncate_ids


@dataclass
class SamplingConfig:
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    enable_thinking: bool | None = None  # chat-template switch; None = the template's default


@dataclass
class Rollouts:
    input_ids: torch.Tensor  # [B, P + C]
    attention_mask: torch.Tensor  # [B, P + C], 1 = real token
    completion_mask: torch.Tensor  # [B, C], 1 = counts in the loss
    prompt_len: int  # P
    texts: list[str]  # decoded completions, B of them
    logprobs: torch.Tensor | None = None  # [B, C] log-prob of each sampled token (0 on padding), if known


def _chat(tokenizer, prompt: str, enable_thinking: bool | None = None) -> str:
    """The user turn in the model's chat template; enable_thinking None = the template's default
    (Qwen3: thinking on), which is also how data.py sizes RULER prompts."""
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True, **extra)


def template_opens_thinking(tokenizer, enable_thinking: bool | None = None) -> bool:
    """The chat template's generation prompt leaves a thinking block open (templates that end it
    with `<think>`), so completions carry only the closing tag. Qwen3's ends with none (thinking
    on) or with a closed empty block (thinking off)."""
    text = _chat(tokenizer, "", enable_thinking)
    return text.rfind(THINK_OPEN) > text.rfind(THINK_CLOSE)


def prompt_ids(tokenizer, prompt: str, max_tokens: int, enable_thinking: bool | None = None) -> list[int]:
    """Chat-formatted prompt tokens; a prompt over `max_tokens` loses its middle (the benchmarks'
    own truncation), so the instruction at the start and the question and assistant header at
    the end survive. Both backends tokenize through here, so they see identical prompts."""
    ids = tokenizer(_chat(tokenizer, prompt, enable_thinking), add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return ids
    return middle_truncate_ids(ids, max_tokens)


def completion_mask_from(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after. tokens [B, C] -> [B, C]."""
    is_eos = (tokens == eos_id).int()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).long()


def _decode(tokenizer, comp: torch.Tensor, cmask: torch.Tensor) -> list[str]:
    return tokenizer.batch_decode(comp * cmask + tokenizer.pad_token_id * (1 - cmask), skip_special_tokens=True)


def _pack(tokenizer, prompt_ids: list[list[int]], comp_ids: list[list[int]],
          logprobs: list[list[float]] | None = None) -> Rollouts:
    """Rows of unpadded prompt/completion ids -> Rollouts (prompts left-, completions right-padded)."""
    P, C = max(map(len, prompt_ids)), max(1, max(map(len, comp_ids)))
    pad = tokenizer.pad_token_id
    ids = torch.full((len(prompt_ids), P + C), pad)
    am = torch.zeros_like(ids)
    lp = torch.zeros(len(prompt_ids), C) if logprobs is not None else None
    for i, (p, c) in enumerate(zip(prompt_ids, comp_ids)):
        ids[i, P - len(p):P], am[i, P - len(p):P] = torch.tensor(p, dtype=torch.long), 1
        if c:
            ids[i, P:P + len(c)], am[i, P:P + len(c)] = torch.tensor(c, dtype=torch.long), 1
        if lp is not None and c:
            lp[i, :len(c)] = torch.tensor(logprobs[i])
    cmask = am[:, P:].clone()
    return Rollouts(ids, am, cmask, P, _decode(tokenizer, ids[:, P:], cmask), lp)


class HFRollout:
    def __init__(self, model, tokenizer, sampling: SamplingConfig, max_prompt_tokens: int, synced_gpus: bool = False):
        self.model, self.tok, self.sampling = model, tokenizer, sampling
        self.max_prompt_tokens = max_prompt_tokens
        self.synced_gpus = synced_gpus  # FSDP2: every rank keeps stepping until all ranks are done
        self.tok.padding_side = "left"  # generation continues from the right edge

    def record(self) -> dict:
        return {"backend": "hf", **asdict(self.sampling)}

    def _ids(self, prompt: str) -> list[int]:
        return prompt_ids(self.tok, prompt, self.max_prompt_tokens, self.sampling.enable_thinking)

    def _generate(self, ids: list[list[int]]) -> list[list[int]]:
        """Left-pad and sample -> each row's completion ids, up to and including its first EOS."""
        enc = self.tok.pad({"input_ids": ids}, return_tensors="pt").to(self.model.device)
        out = self.model.generate(**enc, do_sample=True, temperature=self.sampling.temperature,
                                  top_p=self.sampling.top_p, max_new_tokens=self.sampling.max_new_tokens,
                                  min_new_tokens=1, pad_token_id=self.tok.pad_token_id,
                                  synced_gpus=self.synced_gpus).cpu()
        comp = out[:, enc["input_ids"].shape[1]:]
        cmask = completion_mask_from(comp, self.tok.eos_token_id)
        return [row[:int(m.sum())].tolist() for row, m in zip(comp, cmask)]

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int, seeds: list[int] | None = None) -> Rollouts:
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        was_training = self.model.training
        self.model.eval()
        try:
            all_prompts = [ids for p in prompts for ids in [self._ids(p)] * n]  # group members adjacent
            if seeds is None:  # one batch, sampled from the global RNG
                return _pack(self.tok, all_prompts, self._generate(all_prompts))
            # One generate call per group under its own seed: the group depends neither on which
            # prompts share the batch (padding, row order) nor on the global RNG, which is left as it was.
            all_comps = []
            cuda = [self.model.device] if self.model.device.type == "cuda" else []
            for g, seed in enumerate(seeds):
                with torch.random.fork_rng(devices=cuda):
                    torch.manual_seed(seed)
                    all_comps += self._generate(all_prompts[g * n:(g + 1) * n])
            return _pack(self.tok, all_prompts, all_comps)
        finally:
            self.model.train(was_training)

    def sync(self, model) -> None:
        """HF generate samples from the live policy: nothing to copy."""


def _member_seed(seed: int, j: int) -> int:
    """Seed of group member j. vLLM derives the seeds of an n>1 request as seed+j, so prompts with
    seeds s and s+1 would share n-1 sample streams; hashing (seed, j) keeps every stream distinct."""
    digest = hashlib.blake2b(f"{seed}/{j}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # < 2**63: fits torch.Generator.manual_seed


@contextlib.contextmanager
def _env_defaults(**values: str):
    """Set the variables the caller has not set, for the duration of the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class VLLMRollout:
    """vLLM offline engine (`vllm.LLM`); `sync` pushes the policy's weights after each optimizer step.

    The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0 unless the caller set it), so
    `sync` hands tensors over without serialising them. With multiprocessing on, `sync` needs
    VLLM_ALLOW_INSECURE_SERIALIZATION=1 (each bucket of weights travels pickled to the engine process).
    dtype defaults to float32, the trainer's policy dtype: vLLM's CPU build otherwise runs a float32
    checkpoint in bfloat16, and the sampling log-probs would no longer match the policy's.
    """

    def __init__(self, model_dir: str, tokenizer, sampling: SamplingConfig, max_prompt_tokens: int,
                 seed: int = 0, weight_sync_bucket_mb: float = 512, **engine_kwargs):
        import vllm
        from vllm import LLM

        self.tok, self.sampling, self.max_prompt_tokens = tokenizer, sampling, max_prompt_tokens
        engine_kwargs.setdefault("dtype", "float32")
        engine_kwargs.setdefault("max_model_len", max_prompt_tokens + sampling.max_new_tokens)
        # vLLM reads both while constructing; scoped so a vLLM server started later is unaffected.
        # KV space is in GiB for the CPU build (its default takes a large share of RAM); GPUs ignore it.
        with _env_defaults(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1"):
            self.llm = LLM(model=str(model_dir), seed=seed, **engine_kwargs)
        self.dtype = self.llm.llm_engine.model_config.dtype  # what `sync` casts the policy's weights to
        self.bucket_bytes = int(weight_sync_bucket_mb * 2**20)
        self._record = {"backend": "vllm", **asdict(sampling), "vllm": vllm.__version__,
                        "dtype": str(engine_kwargs["dtype"])}

    def record(self) -> dict:
        return dict(self._record)

    def _params(self, n: int, seed: int | None):
        from vllm import SamplingParams

        # logprobs=0: the sampled token's log-prob only, from the raw logits (vLLM's default
        # logprobs_mode: before temperature, top-p and min_tokens' EOS mask, so exact to compare
        # with the trainer's raw log-probs, token_logps(raw=True)); min_tokens=1 as in HFRollout.
        return SamplingParams(n=n, seed=seed, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
                              max_tokens=self.sampling.max_new_tokens, min_tokens=1, logprobs=0)

    def generate(self, prompts: list[str], n: int, seeds: list[int] | None = None) -> Rollouts:
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        # Tokenize here, as HFRollout does, so both backends truncate and template identically.
        ids = [prompt_ids(self.tok, p, self.max_prompt_tokens, self.sampling.enable_thinking) for p in prompts]
        if seeds is None:
            requests, params = [{"prompt_token_ids": p} for p in ids], self._params(n, None)
        else:  # one n=1 request per member; the prefix cache shares the prompt's KV among them
            requests = [{"prompt_token_ids": p} for p in ids for _ in range(n)]
            params = [self._params(1, _member_seed(s, j)) for s in seeds for j in range(n)]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        comps = [c for o in outs for c in o.outputs]  # group members adjacent in both cases
        # token_ids end with the EOS when vLLM stops on it (finish_reason "stop"), so every emitted
        # token counts in the loss, exactly as completion_mask_from does for HF.
        return _pack(self.tok, [p for p in ids for _ in range(n)], [list(c.token_ids) for c in comps],
                     [[lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)] for c in comps])

    def sync(self, model) -> None:
        """Stream the policy's weights into the engine, one bucket of at most `weight_sync_bucket_mb`
        (in the engine's dtype) at a time, never the whole state dict at once.

        vLLM's layerwise reload (the protocol of its own weight-transfer engines): `start` puts the
        engine's layers on the meta device, each bucket goes through `model.load_weights`, which
        buffers a layer's tensors until all of them have arrived and then processes and copies it
        into the engine's own storage, and `finish` processes what is left (attention layers) and
        puts back the layers no bucket touched. Calling `reload_weights` once per bucket would be
        wrong: it finalises after each call, and a fused layer whose parts straddle two buckets
        (qkv_proj from q/k/v_proj, gate_up_proj) would be processed with its other part unloaded.
        The engine must not generate between start and finish; `sync` returns only after finish.
        Under FSDP2 each tensor is gathered (a collective: every rank syncs its engine, in step)."""
        from training.parallel import weight_buckets

        self.llm.collective_rpc(_start_reload)
        try:
            for bucket in weight_buckets(model, self.dtype, self.bucket_bytes):
                self.llm.collective_rpc(_load_bucket, args=(bucket,))
                del bucket  # the next bucket is gathered only after this one is released
        finally:
            self.llm.collective_rpc(_finish_reload)
        # KV cached for old weights would be reused by prompts sharing a prefix: drop it.
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight sync")


# ---- run inside each vLLM worker (collective_rpc): the three steps of a streamed weight sync ----

def _layerwise():
    import vllm

    try:
        from vllm.model_executor.model_loader.reload import (
            finalize_layerwise_reload,
            initialize_layerwise_reload,
        )
    except ImportError as e:
        raise RuntimeError(f"vLLM {vllm.__version__}: no layerwise weight reload ({e}); "
                           "VLLMRollout.sync needs updating for this version") from None
    return initialize_layerwise_reload, finalize_layerwise_reload


def _engine_model(worker):
    import vllm

    if not hasattr(worker, "get_model") or not hasattr(worker, "vllm_config"):
        raise RuntimeError(f"vLLM {vllm.__version__}: worker {type(worker).__name__} has no get_model/vllm_config; "
                           "VLLMRollout.sync needs updating for this version")
    return worker.get_model()


def _start_reload(worker) -> None:
    initialize, _ = _layerwise()
    initialize(_engine_model(worker))


def _load_bucket(worker, bucket: list) -> None:
    from vllm.config import set_current_vllm_config

    with set_current_vllm_config(worker.vllm_config):  # as the worker's own reload_weights runs
        _engine_model(worker).load_weights(bucket)  # HF names; vLLM maps and fuses them


def _finish_reload(worker) -> None:
    from vllm.config import set_current_vllm_config

    _, finalize = _layerwise()
    with set_current_vllm_config(worker.vllm_config):
        finalize(_engine_model(worker), worker.vllm_config.model_config)
    runner = worker.model_runner  # state derived from the old weights, as reload_weights resets it
    for reset in ("reset_lora_state", "reset_encoder_cache", "reset_mm_cache"):
        if hasattr(runner, reset):
            getattr(runner, reset)()
