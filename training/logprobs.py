"""Completion-token log-probs at long context: packed rows, logits only where the loss reads them.

    prepare(model, gradient_checkpointing=True)                  # once, after loading
    packed = pack([(ids, n_prompt), ...], width=C, device=dev)   # rows back to back, no padding
    lp, entropy = token_logps(net, packed, temperature=1.0)      # [b, C] each, 0 off the completions

Where the memory of one update goes, and what this module does about each part:
- logits: the model's `lm_head` runs only on the positions that predict a completion token
  (`logits_to_keep`), in chunks of `LOGITS_CHUNK_BYTES`; under grad each chunk is recomputed in
  the backward pass (torch.utils.checkpoint), so no [C, V] float32 tensor lives at once and none
  is kept for backward. Prompt positions never reach `lm_head`.
- entropy: computed from the same chunk without grad; it is a logged metric, no loss term uses it
  (a loss with an entropy bonus would need it with grad).
- shared prompts: a GRPO group's G rows repeat one prompt; packed once, with each completion
  after it attending to the prompt and to itself, a long prompt costs 1/G of the forward and
  backward work (SDPA_VARLEN; flash-attention packs row by row, below).
- padding: a micro-batch is one [1, T] sequence of its rows' real tokens, position ids restarting
  at 0 for each row, and the rows' boundaries (`cu_seq_lens`, as flash-attention's varlen API takes
  them). `flash_attention_2/3` attend within each row natively; for `sdpa` (transformers' default,
  and the only choice on CPU) `packing_attention` installs SDPA_VARLEN, one causal SDPA call per
  row. A block-diagonal [T, T] mask (what transformers builds from restarting position ids) would
  cost T^2 memory and attention over all T^2 pairs: 10x the work for ten 4k rows.
- activations: with `gradient_checkpointing` each decoder layer is recomputed in the backward pass,
  so a layer keeps only its input ([T, hidden]) between forward and backward.

Temperature: logits are divided by the sampling temperature before the softmax (verl and TRL do the
same), so ratio, KL and entropy are those of the distribution the rollout sampled from. `raw=True`
also returns the log-probs of the raw logits (no grad), the quantity vLLM returns by default: the
engine-vs-trainer mismatch metric compares those (vLLM's "processed" log-probs would also carry
top-p and min_tokens' EOS mask, which the trainer does not apply).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# One [chunk, V] float32 block of logits; at Qwen3's vocabulary (151,936) that is ~440 tokens.
# A chunk's backward holds about three such blocks (logits, log-softmax, its gradient).
LOGITS_CHUNK_BYTES = 1 << 28


SDPA_VARLEN = "sdpa_varlen"  # transformers attention implementation registered by packing_attention
_PACKED_FORWARD = contextvars.ContextVar("packed_forward", default=False)  # set inside token_logps' forward


@dataclass
class Packed:
    """One micro-batch as a single padding-free sequence.

    Row i occupies ids[0, start_i:start_i + n_i]; its completion tokens are its last c_i tokens.
    The loss sees the [b, width] layout: row i's c_i completion log-probs left-aligned, zeros after."""
    ids: torch.Tensor  # [1, T] token ids, rows back to back
    pos: torch.Tensor  # [1, T] position ids, 0 at each row's first token
    at: torch.Tensor  # [K] index in T of each position whose next token is a completion token
    targets: torch.Tensor  # [K] that next token
    dest: torch.Tensor  # [K] where each of the K log-probs goes in the flattened [b, width] layout
    cu: torch.Tensor  # [b + 1] int32 row boundaries in T: 0, n_0, n_0 + n_1, ...
    longest: int  # max_i n_i
    rows: int  # b
    width: int  # C
    # The shared-prompt layout of the same rows (None: no two neighbouring rows share a prompt):
    # each run of rows with one prompt (a GRPO group) is that prompt once, then each row's
    # completion at the positions after it. `segments` holds (start, prompt length, completion
    # lengths) per run; `token_logps` takes this layout where the attention supports it.
    shared: Packed | None = None
    segments: tuple[tuple[int, int, tuple[int, ...]], ...] | None = None

    @property
    def tokens(self) -> int:
        return self.ids.shape[1]

    def unpack(self, flat: torch.Tensor) -> torch.Tensor:
        """[K] per-completion-token values -> [b, width], zeros where no completion token is."""
        out = flat.new_zeros(self.rows * self.width)
        return out.scatter(0, self.dest, flat).view(self.rows, self.width)


def unpadded(ids: torch.Tensor, attention: torch.Tensor, prompt_len: int) -> tuple[torch.Tensor, int]:
    """One row of the rollout layout (prompt left-padded to `prompt_len`, completion right-padded)
    -> (its real tokens, its number of prompt tokens), the form `pack` takes."""
    return ids[attention.bool()], int(attention[:prompt_len].sum())


def pack(seqs: list[tuple[torch.Tensor, int]], width: int, device) -> Packed:
    """seqs: each row's real tokens (1-D, prompt then completion, no padding) and its prompt
    length. A row's completion = its tokens after the prompt (at most `width` of them)."""
    ids, pos, at, dest = [], [], [], []
    start = 0
    for i, (toks, n_prompt) in enumerate(seqs):
        n = toks.shape[0]
        c = n - n_prompt
        if n_prompt < 1 or not 0 <= c <= width:
            raise ValueError(f"row {i}: {n_prompt} prompt and {c} completion tokens (width {width})")
        ids.append(toks)
        pos.append(torch.arange(n))
        at.append(torch.arange(start + n_prompt - 1, start + n - 1))  # position t predicts token t + 1
        dest.append(torch.arange(i * width, i * width + c))
        start += n
    ids_t = torch.cat(ids).long()
    at_t = torch.cat(at)
    lengths = torch.tensor([0] + [t.shape[0] for t, _ in seqs])
    return Packed(ids=ids_t.view(1, -1).to(device), pos=torch.cat(pos).view(1, -1).to(device), at=at_t.to(device),
                  targets=ids_t[at_t + 1].to(device), dest=torch.cat(dest).to(device),
                  cu=lengths.cumsum(0).to(torch.int32).to(device), longest=int(lengths.max()), rows=len(seqs), width=width,
                  shared=_share_prompts(seqs, width, device))


def _share_prompts(seqs: list[tuple[torch.Tensor, int]], width: int, device) -> Packed | None:
    """The shared-prompt layout of `pack`'s rows, or None when no two neighbouring rows have the
    same prompt. A GRPO group's G rows repeat one prompt: packed once, a long prompt costs 1/G of
    the forward and backward work, and the log-probs are those of each row alone (the attention
    lets a completion see its prompt and itself, never a sibling)."""
    runs: list[list[int]] = []
    for i, (toks, n_prompt) in enumerate(seqs):
        if runs:
            first, p0 = seqs[runs[-1][0]]
            if n_prompt == p0 and torch.equal(toks[:n_prompt], first[:p0]):
                runs[-1].append(i)
                continue
        runs.append([i])
    if len(runs) == len(seqs):
        return None
    ids, pos, at, targets, dest, segments = [], [], [], [], [], []
    start = 0
    for run in runs:
        toks, n_prompt = seqs[run[0]]
        ids.append(toks[:n_prompt])
        pos.append(torch.arange(n_prompt))
        comp_at = start + n_prompt  # where the next completion begins in T
        lengths = []
        for i in run:
            comp = seqs[i][0][n_prompt:]
            c = comp.shape[0]
            ids.append(comp)
            pos.append(torch.arange(n_prompt, n_prompt + c))
            # its first token is predicted by the prompt's last position, the others by their predecessor
            at.append(torch.cat([torch.tensor([start + n_prompt - 1]), torch.arange(comp_at, comp_at + max(c - 1, 0))])[:c])
            targets.append(comp)
            dest.append(torch.arange(i * width, i * width + c))
            lengths.append(c)
            comp_at += c
        segments.append((start, n_prompt, tuple(lengths)))
        start = comp_at
    longest = max(p + max(cs) for _, p, cs in segments)
    return Packed(ids=torch.cat(ids).long().view(1, -1).to(device), pos=torch.cat(pos).view(1, -1).to(device),
                  at=torch.cat(at).to(device), targets=torch.cat(targets).long().to(device), dest=torch.cat(dest).to(device),
                  cu=torch.tensor([0, start], dtype=torch.int32, device=device), longest=longest, rows=len(seqs), width=width,
                  segments=tuple(segments))


def _chunk_logps(h, weight, bias, targets, temperature: float, raw: bool):
    """h [n, hidden] -> log-prob of each target under logits / T [n], entropy [n] (no grad), and
    with `raw` the targets' log-probs under the raw logits [n] (no grad; else None)."""
    logits = F.linear(h, weight, bias).float()  # [n, V]; float32 softmax whatever the compute dtype
    raw_lp = None
    if raw:
        with torch.no_grad():
            raw_lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    if temperature != 1.0:
        logits = logits / temperature
    lp_all = logits.log_softmax(-1)  # [n, V]
    del logits
    lp = lp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [n]
    with torch.no_grad():
        entropy = -(lp_all.exp().mul_(lp_all)).sum(-1)  # [n]
    return lp, entropy, raw_lp


def chunked_logps(h, weight, bias, targets, temperature: float = 1.0, raw: bool = False, chunk_bytes: int | None = None):
    """Log-probs, entropy (and with `raw` the raw-logit log-probs, else None) of `targets` from
    hidden states h [K, hidden] through the output layer, `chunk_bytes` (default
    LOGITS_CHUNK_BYTES) of float32 logits at a time. With grad, each chunk is recomputed in the
    backward pass instead of keeping its logits: the graph holds only h."""
    n = max(1, (chunk_bytes or LOGITS_CHUNK_BYTES) // (4 * weight.shape[0]))
    outs = []
    for s in range(0, h.shape[0], n):
        args = (h[s:s + n], weight, bias, targets[s:s + n], temperature, raw)
        outs.append(checkpoint(_chunk_logps, *args, use_reentrant=False) if torch.is_grad_enabled() else _chunk_logps(*args))
    if not outs:
        empty = h.new_zeros(0, dtype=torch.float32)
        return empty + h.sum() * 0, empty, empty if raw else None  # graph kept connected: DDP/FSDP2 expect a backward
    lp, ent, raw_lp = zip(*outs)
    return torch.cat(lp), torch.cat(ent).detach(), torch.cat(raw_lp).detach() if raw else None


@contextlib.contextmanager
def _head_replaced(model: torch.nn.Module, fn):
    """Run the model's output layer as `fn(hidden)` for the duration of the block.

    The replacement is an instance attribute shadowing `forward`, so it runs inside the model's own
    forward: DDP's hooks and FSDP2's parameter gathering apply as for the real head, and parameter
    names, state dicts and checkpoints are untouched."""
    head = model.get_output_embeddings()
    head.forward = fn
    try:
        yield head
    finally:
        del head.forward


def token_logps(net: torch.nn.Module, packed: Packed, temperature: float = 1.0, raw: bool = False):
    """Log-prob (with grad when grad is enabled) and entropy (never with grad) of every completion
    token of a packed micro-batch: ([b, C], [b, C]), zeros off the completion tokens; with `raw`, a
    third [b, C]: the log-probs of the raw logits (before temperature, no grad). `net` is the
    module the loss runs through: the model, its DDP wrapper, or the FSDP2-sharded model."""
    model = getattr(net, "module", net)  # DDP keeps the model in .module; FSDP2 shards in place
    side = {}

    def head(hidden):  # [1, K, hidden]: the model already kept only the `at` positions
        w = model.get_output_embeddings()
        lp, side["entropy"], side["raw"] = chunked_logps(hidden[0], w.weight, w.bias, packed.targets, temperature, raw)
        return lp.unsqueeze(0)  # [1, K], returned as the model's "logits"

    impl = model.config._attn_implementation
    if not attends_within_rows(impl):
        raise ValueError(f"attention {impl!r} would attend across packed rows; call prepare(model) after loading")
    # No mask: the attention reads the row bounds. Models with per-layer mask types (Qwen3) take a
    # mapping with no mask in it; others (Llama) build their mask through SDPA_VARLEN's mask
    # function, which gives none inside this forward. (flash-attention builds none either way.)
    no_mask = {"full_attention": None, "sliding_attention": None} if getattr(model.config, "layer_types", None) else None
    # Shared prompts need SDPA_VARLEN: flash-attention's varlen kernels cannot let several
    # completions see one prompt.
    if packed.shared is not None and impl == SDPA_VARLEN:
        packed = packed.shared
    bounds = ({"prompt_segments": packed.segments} if packed.segments else
              {"cu_seq_lens_q": packed.cu, "cu_seq_lens_k": packed.cu, "max_length_q": packed.longest,
               "max_length_k": packed.longest})
    inside = _PACKED_FORWARD.set(True)
    try:
        with _head_replaced(model, head):
            lp = net(input_ids=packed.ids, position_ids=packed.pos, attention_mask=no_mask, logits_to_keep=packed.at,
                     use_cache=False, **bounds).logits[0]
    finally:
        _PACKED_FORWARD.reset(inside)
    return (packed.unpack(lp), packed.unpack(side["entropy"])) + ((packed.unpack(side["raw"]),) if raw else ())


def attends_within_rows(impl: str) -> bool:
    """Whether transformers' attention implementation `impl` keeps a packed micro-batch's rows
    apart (reads the row bounds): SDPA_VARLEN, or flash-attention's varlen kernels."""
    return impl == SDPA_VARLEN or impl.startswith("flash_attention")


def _sdpa_varlen(module, query, key, value, attention_mask, cu_seq_lens_q=None, cu_seq_lens_k=None,
                 max_length_q=None, max_length_k=None, prompt_segments=None, **kwargs):
    """transformers' sdpa, except on a packed forward (no mask; row bounds or shared-prompt
    segments given): one causal SDPA call per row, or per shared prompt plus one for the
    completions after it. query [1, heads, T, d] -> ([1, T, heads, d], None), as sdpa returns."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or (cu_seq_lens_q is None and prompt_segments is None):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if prompt_segments is None:
        bounds = cu_seq_lens_q.tolist()
        outs = [sdpa_attention_forward(module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None, **kwargs)[0]
                for s, e in zip(bounds, bounds[1:])]
        return torch.cat(outs, 1), None
    from torch.nn.attention.bias import causal_lower_right

    outs = []
    for s, n_prompt, lengths in prompt_segments:
        p = s + n_prompt
        outs.append(sdpa_attention_forward(module, query[:, :, s:p], key[:, :, s:p], value[:, :, s:p], None, **kwargs)[0])
        a = p  # where the next completion starts
        for n in lengths:  # each completion: the prompt's keys, then causally its own
            if n:
                k = torch.cat([key[:, :, s:p], key[:, :, a:a + n]], 2)
                v = torch.cat([value[:, :, s:p], value[:, :, a:a + n]], 2)
                # lower-right causal: query j sees keys up to n_prompt + j, and no [n, n_prompt + n] mask is stored
                outs.append(sdpa_attention_forward(module, query[:, :, a:a + n], k, v,
                                                   causal_lower_right(n, n_prompt + n), **kwargs)[0])
                a += n
    return torch.cat(outs, 1), None


def _sdpa_varlen_mask(*args, **kwargs):
    """SDPA_VARLEN's mask function: none inside a packed forward (the attention reads the row
    bounds; a mask built from restarting position ids would cost T^2 and, with shared prompts,
    let a completion see its siblings), else exactly the mask sdpa builds (generate)."""
    from transformers.masking_utils import sdpa_mask

    return None if _PACKED_FORWARD.get() else sdpa_mask(*args, **kwargs)


def packing_attention(model: torch.nn.Module) -> None:
    """Make `model` attend within each row of a packed micro-batch: `sdpa` becomes SDPA_VARLEN
    (registered with transformers; without row bounds it is plain sdpa, so `generate` is unchanged),
    flash-attention implementations take the bounds as they are; others are refused."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    impl = model.config._attn_implementation
    if impl == "sdpa":
        AttentionInterface.register(SDPA_VARLEN, _sdpa_varlen)
        AttentionMaskInterface.register(SDPA_VARLEN, _sdpa_varlen_mask)
        model.set_attn_implementation(SDPA_VARLEN)
    elif not attends_within_rows(impl):
        raise ValueError(f"attn_implementation {impl!r} cannot attend within packed rows; use sdpa or flash_attention_2")


@contextlib.contextmanager
def no_logits(model: torch.nn.Module):
    """Forward passes that only need activations (mask calibration) skip the output layer: a
    32k-token prompt would otherwise make a [32k, V] logits tensor (19 GB in float32 at V = 151,936)."""
    with _head_replaced(model, lambda hidden: hidden[..., :0]):
        yield


def prepare(model: torch.nn.Module, gradient_checkpointing: bool = False) -> None:
    """Set up a freshly loaded model for `token_logps`: attention within packed rows, and per-layer
    activation checkpointing if asked."""
    packing_attention(model)
    if gradient_checkpointing:
        from training.parallel import decoder_layers

        checkpoint_layers(decoder_layers(model))


def checkpoint_layers(layers) -> None:
    """Recompute each decoder layer's activations in the backward pass (non-reentrant
    torch.utils.checkpoint), keeping only the layer's inputs from the forward pass.

    Wraps each layer's `forward` rather than using transformers' switch, which acts only in train()
    mode: the trainer keeps the model as loaded (eval, no dropout, as RL trainers do), so the
    ratio of the first update is exactly 1. Forwards without grad (rollouts, old log-probs)
    run the layer directly."""
    for layer in layers:
        inner = layer.forward

        def forward(*args, _inner=inner, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)
            return _inner(*args, **kwargs)

        layer.forward = forward
