"""Rollouts: one interface (`generate(prompts, n) -> Rollouts`), two backends.

- `HFRollout`: transformers `generate` on the live policy (CPU, tests). Sampling draws from the
  torch global RNG, which the trainer checkpoints, so resumed runs sample the same tokens.
- `VLLMRollout`: vLLM's offline engine on GPU; after every optimizer step the trainer calls
  `sync(model)` to load the policy weights into the engine. Import-guarded: nothing imports vLLM
  unless this backend is chosen.

Token layout: prompts left-padded, completions right-padded; `completion_mask` [B, C] is 1 for
generated tokens up to and including the first EOS, 0 after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


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


def _chat(tokenizer, prompt: str, enable_thinking: bool | None = None) -> str:
    """The user turn in the model's chat template; enable_thinking None = the template's default
    (Qwen3: thinking on), which is also how data.py sizes RULER prompts."""
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True, **extra)


def prompt_ids(tokenizer, prompt: str, max_tokens: int, enable_thinking: bool | None = None) -> list[int]:
    """Chat-formatted prompt tokens; a prompt over `max_tokens` loses its middle (the benchmarks'
    own truncation), so the instruction at the start and the question and assistant header at
    the end survive."""
    ids = tokenizer(_chat(tokenizer, prompt, enable_thinking), add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return ids
    half = max_tokens // 2
    return ids[:half] + ids[len(ids) - (max_tokens - half):]


def completion_mask_from(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after. tokens [B, C] -> [B, C]."""
    is_eos = (tokens == eos_id).int()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).long()


class HFRollout:
    def __init__(self, model, tokenizer, sampling: SamplingConfig, max_prompt_tokens: int, synced_gpus: bool = False):
        self.model, self.tok, self.sampling = model, tokenizer, sampling
        self.max_prompt_tokens = max_prompt_tokens
        self.synced_gpus = synced_gpus  # FSDP2: every rank keeps stepping until all ranks are done
        self.tok.padding_side = "left"  # generation continues from the right edge

    def record(self) -> dict:
        return {"backend": "hf", **asdict(self.sampling)}

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int, seeds: list[int] | None = None) -> Rollouts:
        """n samples per prompt, group members adjacent. With `seeds`, each prompt's group is
        generated alone from torch.manual_seed(seeds[i]) in a forked RNG: it then depends on
        neither the batching nor the global RNG."""
        if seeds is None:
            return self._generate(prompts, n)
        parts = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            with torch.random.fork_rng(devices=[self.model.device] if self.model.device.type == "cuda" else []):
                torch.manual_seed(seed)
                parts.append(self._generate([prompt], n))
        return concat(parts, self.tok.pad_token_id)

    def _generate(self, prompts: list[str], n: int) -> Rollouts:
        ids = [prompt_ids(self.tok, p, self.max_prompt_tokens, self.sampling.enable_thinking) for p in prompts for _ in range(n)]
        enc = self.tok.pad({"input_ids": ids}, return_tensors="pt").to(self.model.device)
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(**enc, do_sample=True, temperature=self.sampling.temperature,
                                  top_p=self.sampling.top_p, max_new_tokens=self.sampling.max_new_tokens,
                                  min_new_tokens=1, pad_token_id=self.tok.pad_token_id,
                                  synced_gpus=self.synced_gpus).cpu()
        self.model.train(was_training)
        P = enc["input_ids"].shape[1]
        comp = out[:, P:]  # [B, C]
        cmask = completion_mask_from(comp, self.tok.eos_token_id)
        return Rollouts(out, torch.cat([enc["attention_mask"].cpu(), cmask], 1), cmask, P,
                        self.tok.batch_decode(comp * cmask + self.tok.pad_token_id * (1 - cmask),
                                              skip_special_tokens=True))

    def sync(self, model) -> None:
        """HF generate samples from the live policy: nothing to copy."""


def concat(parts: list[Rollouts], pad_id: int) -> Rollouts:
    """One Rollouts from several: prompts left-padded to a common P, completions right-padded to a common C."""
    P = max(r.prompt_len for r in parts)
    C = max(r.completion_mask.shape[1] for r in parts)
    B = sum(r.input_ids.shape[0] for r in parts)
    ids = torch.full((B, P + C), pad_id, dtype=torch.long)
    am = torch.zeros(B, P + C, dtype=torch.long)
    cm = torch.zeros(B, C, dtype=torch.long)
    i = 0
    for r in parts:
        b, p, c = r.input_ids.shape[0], r.prompt_len, r.completion_mask.shape[1]
        ids[i:i + b, P - p:P + c] = r.input_ids
        am[i:i + b, P - p:P + c] = r.attention_mask
        cm[i:i + b, :c] = r.completion_mask
        i += b
    return Rollouts(ids, am, cm, P, [t for r in parts for t in r.texts])


class VLLMRollout:
    """GPU backend: vLLM offline engine, weights pushed after each optimizer step (untested on CPU)."""

    def __init__(self, model_dir: str, tokenizer, sampling: SamplingConfig, max_prompt_tokens: int,
                 gpu_memory_utilization: float = 0.4, seed: int = 0):
        from vllm import LLM, SamplingParams

        self.tok, self.sampling, self.max_prompt_tokens = tokenizer, sampling, max_prompt_tokens
        self.llm = LLM(model=model_dir, gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                       max_model_len=max_prompt_tokens + sampling.max_new_tokens, enable_sleep_mode=False)
        self._params = lambda n: SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                                max_tokens=sampling.max_new_tokens)

    def record(self) -> dict:
        return {"backend": "vllm", **asdict(self.sampling)}

    def generate(self, prompts: list[str], n: int) -> Rollouts:
        outs = self.llm.generate([_chat(self.tok, p) for p in prompts], self._params(n))
        prompt_ids = [list(o.prompt_token_ids)[-self.max_prompt_tokens:] for o in outs for _ in range(n)]
        comp_ids = [list(c.token_ids) for o in outs for c in o.outputs]
        P, C = max(map(len, prompt_ids)), max(1, max(map(len, comp_ids)))
        pad = self.tok.pad_token_id
        ids = torch.full((len(prompt_ids), P + C), pad)
        am = torch.zeros_like(ids)
        for i, (p, c) in enumerate(zip(prompt_ids, comp_ids)):
            ids[i, P - len(p):P], am[i, P - len(p):P] = torch.tensor(p), 1
            if c:
                ids[i, P:P + len(c)], am[i, P:P + len(c)] = torch.tensor(c), 1
        return Rollouts(ids, am, am[:, P:].clone(), P, [c.text for o in outs for c in o.outputs])

    def sync(self, model) -> None:
        engine_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        engine_model.load_weights(model.state_dict().items())
