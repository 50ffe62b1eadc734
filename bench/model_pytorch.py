#!/usr/bin/python3
"""PyTorch side of promedical's Qwen3 speed/memory benchmark (compare with bench/run.ts).

    python3 bench/model_pytorch.py --config tiny|0.6B --seq 128 [--seq 512 ...] [--batch 1]
        [--threads 2] [--lora-rank 0] [--repeats 3] [--modes forward,train] [--skip-check]
        [--gradient-checkpointing] [--temperature T | --sample]
        [--grpo-generations 8] [--grpo-prompt-len 32] [--grpo-micro-batch 4] [--grpo-old-logprobs]

Runs a float32 Qwen3 dense decoder with random weights (normal*0.02, norm weights 1,
torch.manual_seed(0)) on random input ids and measures, per (config, seq, mode):

  forward  torch.no_grad() forward producing the full logits [B, T, V]
  train    forward + next-token cross-entropy (logits[:, :-1] vs ids[:, 1:]) + backward,
           no optimizer step. With --lora-rank r > 0 the base weights are frozen and
           only LoRA adapters on q_proj / v_proj of every layer (alpha = 2r) get grads.
           --gradient-checkpointing recomputes each decoder layer in the backward pass
           (torch.utils.checkpoint, non-reentrant), as promedical's gradientCheckpointing.
  generate KV-cached decoding of --seq new tokens after a 32-token prompt: greedy, or with
           --temperature T > 0 (--sample: T = 1) HF-style sampling, softmax(logits / T) and
           torch.multinomial (top-p 1, top-k off: GRPO's rollouts).
  grpo     one GRPO step (beta 0, DAPO aggregation): sampled rollouts with the KV cache, the
           old log-probs when --grpo-old-logprobs, the clipped loss on the completions' per-token
           log-probs, backward and one AdamW step; the result also splits the step's seconds
           into rollout_s / logprobs_s / loss_s / sync_s (medians over --repeats steps).

tokens_per_s = B*T / median seconds over --repeats runs (after one warm-up run);
peak_rss_mb = ru_maxrss (MiB) at the end of the measurement. The kernel's peak-RSS
counter is reset before every measurement (write "5" to /proc/self/clear_refs, Linux
>= 4.0) so each value is that measurement's own peak, including the resident weights;
"rss_peak_reset" in the JSON says whether that reset worked (else the values are
process-wide running maxima).

Output: a table on stderr, exactly one JSON line on stdout:
  {"framework": "pytorch", "torch", "threads", "results": [{"config", "seq", "batch",
   "lora_rank", "mode", "tokens_per_s", "seconds_median", "peak_rss_mb"}, ...], ...}
plus environment facts that decide PyTorch's CPU speed: the BLAS library actually
loaded, its thread count, a measured sgemm GFLOP/s, OPENBLAS_CORETYPE.

Model
-----
The math is that of test/reference/qwen3_reference.py (HF modeling_qwen3.py): RMSNorm,
q_norm/k_norm over head_dim before half-split RoPE (theta 1e6), GQA by
repeat_interleave, plain matmul + additive causal mask (finfo.min) + softmax scaled
by head_dim^-0.5 (no scaled_dot_product_attention), SwiGLU MLP, tied lm_head. The
reference's `forward` is a float64 function of a weight dict (its RoPE tables and mask
are hard-wired to float64, and it multiplies by plain weight matrices, so LoRA could
only be merged into W, which would compute full q/v weight gradients). So the model
here is a small nn.Module that reuses the reference's helpers (Dims, rms_norm,
rotate_half, param_shapes, causal_lm_loss) and is checked against the reference
`forward` in float64 (with and without LoRA) after the measurements, so that the
check's allocations do not inflate the RSS figures; a failed check aborts before the
JSON line is printed (--skip-check skips it).

Caveat: Debian's python3-torch calls whatever libblas.so.3 the system provides. With
only the netlib reference BLAS (libblas3) installed, every matmul is single-threaded
and slow (~4 GFLOP/s on the 2-core bench machine), whatever --threads says. For a
realistic PyTorch baseline put an OpenBLAS libblas.so.3 first, without touching the
system, e.g.
    dpkg-deb -x /var/cache/apt/archives/libopenblas0-pthread_*.deb /tmp/openblas
    LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread python3 bench/...
(~160-220 GFLOP/s there; OPENBLAS_CORETYPE then applies). The OpenBLAS thread pool is
set to --threads. The JSON records which BLAS ran and its measured sgemm GFLOP/s.
"""

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.utils.checkpoint

REPO = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True  # no __pycache__ in test/reference or bench
sys.path.insert(0, str(REPO / "test" / "reference"))
import qwen3_reference as ref  # noqa: E402  (float64 reference: Dims, helpers, forward)

# HF-style configs (the fields ref.Dims reads). Must match the TypeScript presets.
CONFIGS = {
    "tiny": dict(vocab_size=151936, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1e6),
    "0.6B": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                 tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1e6),
}
LORA_TARGETS = ("q_proj", "v_proj")
MODES = ("forward", "train", "generate", "rm", "grpo")
GENERATE_PROMPT = 32  # generate mode: prompt tokens per row (the new tokens are --seq)


# --------------------------------------------------------------------------
# Model (float32 by default; parameter names follow the HF checkpoint layout)
# --------------------------------------------------------------------------

class Linear(nn.Module):
    """y = x @ W^T (no bias), plus (alpha/r) * (x @ A^T) @ B^T once a LoRA adapter is added."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.lora_A = self.lora_B = None
        self.lora_scale = 0.0

    def add_lora(self, r, alpha):
        out_f, in_f = self.weight.shape
        self.lora_A = nn.Parameter(torch.empty(r, in_f))   # PEFT lora_A: [r, in]
        self.lora_B = nn.Parameter(torch.empty(out_f, r))  # PEFT lora_B: [out, r]
        # PEFT's lora_A init; lora_B is small random instead of zeros so every
        # adapter gradient is non-trivial (the cost is the same either way).
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        nn.init.normal_(self.lora_B, std=0.02)
        self.lora_scale = alpha / r

    def forward(self, x):
        y = x @ self.weight.T
        if self.lora_A is not None:
            y = y + self.lora_scale * ((x @ self.lora_A.T) @ self.lora_B.T)
        return y


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size))
        self.eps = eps

    def forward(self, x):
        return ref.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, d: ref.Dims):
        super().__init__()
        self.d = d
        self.q_proj = Linear(d.H, d.nH * d.D)
        self.k_proj = Linear(d.H, d.nKV * d.D)
        self.v_proj = Linear(d.H, d.nKV * d.D)
        self.o_proj = Linear(d.nH * d.D, d.H)
        self.q_norm = RMSNorm(d.D, d.eps)
        self.k_norm = RMSNorm(d.D, d.eps)

    def forward(self, x, cos, sin, mask, cache=None):
        d, (B, T, _) = self.d, x.shape
        # Per-head RMSNorm over head_dim before RoPE; v is not normalized.
        q = self.q_norm(self.q_proj(x).view(B, T, d.nH, d.D)).transpose(1, 2)   # [B, nH, T, D]
        k = self.k_norm(self.k_proj(x).view(B, T, d.nKV, d.D)).transpose(1, 2)  # [B, nKV, T, D]
        v = self.v_proj(x).view(B, T, d.nKV, d.D).transpose(1, 2)
        q = q * cos + ref.rotate_half(q) * sin
        k = k * cos + ref.rotate_half(k) * sin
        if cache is not None:  # KV cache (generate mode): keys/values of earlier positions first
            if "k" in cache:
                k, v = torch.cat((cache["k"], k), dim=2), torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
        # GQA: query head h reads kv head h // n_rep.
        n_rep = d.nH // d.nKV
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) * d.D ** -0.5
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(B, T, d.nH * d.D)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, d: ref.Dims):
        super().__init__()
        self.gate_proj = Linear(d.H, d.I)
        self.up_proj = Linear(d.H, d.I)
        self.down_proj = Linear(d.I, d.H)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, d: ref.Dims):
        super().__init__()
        self.self_attn = Attention(d)
        self.mlp = MLP(d)
        self.input_layernorm = RMSNorm(d.H, d.eps)
        self.post_attention_layernorm = RMSNorm(d.H, d.eps)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Embedding(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab, hidden))

    def forward(self, input_ids):
        return self.weight[input_ids]  # row gather, as in the reference


class Qwen3Model(nn.Module):
    def __init__(self, d: ref.Dims):
        super().__init__()
        self.embed_tokens = Embedding(d.V, d.H)
        self.layers = nn.ModuleList(DecoderLayer(d) for _ in range(d.L))
        self.norm = RMSNorm(d.H, d.eps)


class Qwen3ForCausalLM(nn.Module):
    def __init__(self, d: ref.Dims):
        super().__init__()
        self.d = d
        self.model = Qwen3Model(d)
        self.lm_head = None if d.tied else Linear(d.H, d.V)
        self.gradient_checkpointing = False  # recompute each layer in backward (--gradient-checkpointing)

    def rope_and_mask(self, T, dtype, start=0):
        """cos/sin [T, D] for positions start..start+T-1 (computed in float64) and the [T, T] causal mask."""
        d = self.d
        inv_freq = 1.0 / d.theta ** (torch.arange(0, d.D, 2, dtype=torch.float64) / d.D)
        freqs = torch.arange(start, start + T, dtype=torch.float64)[:, None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        mask = torch.full((T, T), torch.finfo(dtype).min, dtype=dtype).triu(1)  # 0 at key <= query
        return emb.cos().to(dtype), emb.sin().to(dtype), mask

    def forward(self, input_ids):
        """Logits [B, T, V] for unpadded input_ids [B, T] (positions 0..T-1)."""
        embed = self.model.embed_tokens
        cos, sin, mask = self.rope_and_mask(input_ids.shape[1], embed.weight.dtype)
        x = embed(input_ids)
        for layer in self.model.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                # use_reentrant=False: the input (a frozen embedding's output) needs no grad under LoRA.
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        hidden = self.model.norm(x)
        # Tied: lm_head is the embedding matrix.
        return hidden @ embed.weight.T if self.lm_head is None else self.lm_head(hidden)

    def hidden_states(self, input_ids, caches=None, start=0):
        """Final-normed hidden states [B, T, H]; with per-layer `caches` (dicts), a KV-cached step."""
        embed = self.model.embed_tokens
        T = input_ids.shape[1]
        cos, sin, mask = self.rope_and_mask(T, embed.weight.dtype, start)
        x = embed(input_ids)
        for i, layer in enumerate(self.model.layers):
            if caches is None and self.gradient_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask if T > 1 else None, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask if T > 1 else None, None if caches is None else caches[i])
        return self.model.norm(x)

    def head(self, hidden):
        embed = self.model.embed_tokens
        return hidden @ embed.weight.T if self.lm_head is None else self.lm_head(hidden)

    @torch.no_grad()
    def generate(self, prompt_ids, new_tokens, temperature=0.0):
        """Decoding with a KV cache: the prompt in one pass, then one token per step. Greedy at
        temperature 0; otherwise HF-style sampling (top-p 1, top-k off): softmax(logits / T),
        torch.multinomial."""
        caches = [{} for _ in self.model.layers]
        logits = self.head(self.hidden_states(prompt_ids, caches)[:, -1:])
        out, pos = [], prompt_ids.shape[1]
        for _ in range(new_tokens):
            if temperature > 0:
                probs = torch.softmax(logits[:, -1] / temperature, dim=-1)  # [B, V]
                nxt = torch.multinomial(probs, 1)  # [B, 1]
            else:
                nxt = logits.argmax(-1)  # [B, 1]
            out.append(nxt)
            logits = self.head(self.hidden_states(nxt, caches, pos))
            pos += 1
        return torch.cat(out, dim=1)

    def add_lora(self, r, alpha):
        for layer in self.model.layers:
            for target in LORA_TARGETS:
                getattr(layer.self_attn, target).add_lora(r, alpha)

    def lora_modules(self):
        """(name, Linear) of every projection that carries a LoRA adapter."""
        return [(n, m) for n, m in self.named_modules()
                if isinstance(m, Linear) and m.lora_A is not None]


def build_model(d: ref.Dims, lora_rank, seed=0):
    """Random float32 model: matrices N(0, 0.02^2), norm weights 1; then LoRA adapters if asked."""
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(d)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    if lora_rank > 0:
        model.add_lora(lora_rank, 2 * lora_rank)
    return model


def set_trainable(model, lora_rank):
    """Full fine-tuning without LoRA; otherwise only the adapters require grad."""
    for name, p in model.named_parameters():
        p.requires_grad_(lora_rank == 0 or ".lora_" in name)


# --------------------------------------------------------------------------
# Check against the float64 reference forward (run after the measurements)
# --------------------------------------------------------------------------

def self_check():
    """Tiny config in float64: logits equal ref.forward's (also with merged LoRA weights).
    Returns the largest max |diff| seen."""
    d = ref.Dims(CONFIGS["tiny"])
    ids = torch.randint(0, d.V, (2, 12), generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for rank in (0, 4):
        model = build_model(d, rank).double()
        weights = {n: t.detach() for n, t in model.state_dict().items() if ".lora_" not in n}
        expected_shapes = ref.param_shapes(d)
        assert {n: tuple(t.shape) for n, t in weights.items()} == expected_shapes, "parameter layout"
        for name, m in model.lora_modules():  # W_eff = W + (alpha/r) B @ A
            w = name + ".weight"  # (not +=: state_dict tensors share storage with the model)
            weights[w] = weights[w] + m.lora_scale * (m.lora_B @ m.lora_A).detach()
        with torch.no_grad():
            diff = (model(ids) - ref.forward(weights, d, ids)[0]).abs().max().item()
        assert diff < 1e-9, f"bench model differs from the reference (lora rank {rank}): {diff}"
        # Gradients reach exactly the trainable parameters.
        set_trainable(model, rank)
        ref.causal_lm_loss(model(ids), ids).backward()
        for n, p in model.named_parameters():
            assert (p.grad is not None) == p.requires_grad, n
        print(f"[check] tiny float64, lora rank {rank}: max |logits - reference| {diff:.1e}",
              file=sys.stderr)
        worst = max(worst, diff)
    return worst


# --------------------------------------------------------------------------
# Environment: threads, BLAS, memory
# --------------------------------------------------------------------------

def loaded_blas_libraries():
    """Paths of BLAS-like shared libraries mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path).lower()
            if path.startswith("/") and any(k in name for k in ("blas", "mkl", "blis")):
                libs.add(path)
    return sorted(libs)


def set_blas_threads(libs, n):
    """OpenBLAS ignores torch.set_num_threads; set its pool explicitly. Returns its thread count
    (None when unknown; 1 for the netlib reference BLAS, which is single-threaded)."""
    names = [os.path.basename(p) for p in libs]
    for path, name in zip(libs, names):
        if "openblas" in name:
            lib = ctypes.CDLL(path)  # the already-loaded library
            lib.openblas_set_num_threads(n)
            return lib.openblas_get_num_threads()
    if names and all(name.startswith("libblas.so") for name in names):
        return 1  # netlib reference BLAS (Debian's libblas3)
    return None


def sgemm_gflops(n=1024, m=512, runs=3):
    """Measured float32 matmul throughput [m, n] @ [n, n]^T with the current settings."""
    a, b = torch.randn(m, n), torch.randn(n, n)
    a @ b.T
    t0 = time.perf_counter()
    for _ in range(runs):
        a @ b.T
    return 2 * m * n * n * runs / (time.perf_counter() - t0) / 1e9


def reset_peak_rss():
    """Reset the kernel's peak-RSS counter (ru_maxrss) to the current RSS; False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def time_median(step, repeats, before=None):
    """One warm-up run, then the median wall time of `repeats` runs (`before` runs untimed)."""
    times = []
    for i in range(repeats + 1):
        if before is not None:
            before()
        t0 = time.perf_counter()
        step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def completion_logp(model, ids, L, temperature):
    """Per-token log-probs [B, L] of the last L tokens of ids (TRL's logits_to_keep: the LM head
    only on the positions that predict them), at the sampling temperature."""
    hidden = model.hidden_states(ids)[:, -L - 1:-1]
    logits = model.head(hidden) / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, -L:, None]).squeeze(-1)


def grpo_step(model, optimizer, prompt, a):
    """One GRPO step (TRL semantics, beta 0): G sampled completions of --seq tokens per prompt row
    (KV cache, HF-style multinomial sampling at --temperature, no stop tokens), rewards and
    group-relative advantages, the old log-probs when --grpo-old-logprobs (an inference engine's
    rollouts: TRL computes them for its importance-sampling correction; on policy with one
    iteration it skips them), then the clipped policy loss with DAPO's aggregation (summed over
    the step's tokens / their count) in micro-batches of --grpo-micro-batch rows, backward,
    gradient clipping at norm 1, one AdamW step. Returns seconds per phase: rollout, logprobs, loss (loss + backward + step), sync (0:
    the rollouts read the live weights)."""
    G, L, T = a.grpo_generations, a.seq_now, a.temperature or 1.0
    t0 = time.perf_counter()
    rows = prompt.repeat_interleave(G, dim=0)
    completions = model.generate(rows, L, temperature=T)  # [P*G, L]
    ids = torch.cat((rows, completions), dim=1)
    t1 = time.perf_counter()
    rewards = (completions % 2).sum(1).float()  # any reward: the cost does not depend on it
    grouped = rewards.view(-1, G)
    adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    mb = a.grpo_micro_batch
    chunks = [slice(i, i + mb) for i in range(0, ids.shape[0], mb)]
    old = None
    if a.grpo_old_logprobs:
        with torch.no_grad():
            old = [completion_logp(model, ids[c], L, T) for c in chunks]
    t2 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    active = ids.shape[0] * L  # no stop tokens: every completion token counts
    eps = 0.2
    for k, c in enumerate(chunks):
        logp = completion_logp(model, ids[c], L, T)
        ratio = torch.exp(logp - (logp.detach() if old is None else old[k]))
        a_ = adv[c, None]
        per_token = -torch.min(ratio * a_, ratio.clamp(1 - eps, 1 + eps) * a_)
        (per_token.sum() / active).backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)  # TRL's max_grad_norm
    optimizer.step()
    t3 = time.perf_counter()
    return {"rollout_s": t1 - t0, "logprobs_s": t2 - t1, "loss_s": t3 - t2, "sync_s": 0.0}


def measure_grpo(model, config, seq, batch, lora_rank, repeats, rss_reset, a):
    """--modes grpo: `batch` prompts of --grpo-prompt-len tokens, the median of `repeats` steps
    after --grpo-warmup untimed ones (each phase's median, and the total's)."""
    prompt = torch.randint(0, model.d.V, (batch, a.grpo_prompt_len), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    a.seq_now = seq
    gc.collect()
    if rss_reset:
        reset_peak_rss()
    steps = [grpo_step(model, optimizer, prompt, a) for _ in range(a.grpo_warmup + repeats)][a.grpo_warmup:]
    totals = [sum(s.values()) for s in steps]
    seconds = statistics.median(totals)
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    tokens = batch * a.grpo_generations * seq
    return {"config": config, "seq": seq, "batch": batch, "lora_rank": lora_rank, "mode": "grpo",
            "temperature": a.temperature or 1.0, "generations": a.grpo_generations, "prompt_len": a.grpo_prompt_len,
            "old_logprobs": a.grpo_old_logprobs, "micro_batch": a.grpo_micro_batch,
            "tokens_per_s": tokens / seconds, "seconds_median": seconds, "steps_per_s": 1 / seconds,
            **{k: statistics.median(s[k] for s in steps) for k in steps[0]},
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure(model, config, seq, batch, lora_rank, mode, repeats, rss_reset, temperature=0.0):
    ids = torch.randint(0, model.d.V, (batch, seq), generator=torch.Generator().manual_seed(seq))
    params = list(model.parameters())

    def forward_step():
        with torch.no_grad():
            model(ids)  # full logits [B, T, V]

    def train_step():
        ref.causal_lm_loss(model(ids), ids).backward()

    # generate: `batch` rows of GENERATE_PROMPT prompt tokens, `seq` new tokens each (greedy, or
    # sampled at --temperature > 0).
    prompt = torch.randint(0, model.d.V, (batch, GENERATE_PROMPT), generator=torch.Generator().manual_seed(1))

    def generate_step():
        model.generate(prompt, seq, temperature)

    # rm: a Bradley-Terry step of a reward model: `batch` pairs (2 * batch sequences of `seq`
    # tokens), a Linear(H, 1) head on the last token, -log sigmoid(r_chosen - r_rejected), backward.
    rm_ids = torch.randint(0, model.d.V, (2 * batch, seq), generator=torch.Generator().manual_seed(2))
    rm_head = torch.nn.Linear(model.d.H, 1, bias=False)
    torch.nn.init.normal_(rm_head.weight, std=0.02)

    def rm_step():
        r = rm_head(model.hidden_states(rm_ids)[:, -1]).squeeze(-1)
        torch.nn.functional.softplus(-(r[:batch] - r[batch:])).mean().backward()

    def clear_grads():
        for p in params:
            p.grad = None

    gc.collect()
    if rss_reset:
        reset_peak_rss()
    tokens = batch * seq
    if mode == "forward":
        seconds = time_median(forward_step, repeats)
    elif mode == "generate":
        seconds = time_median(generate_step, repeats)
    elif mode == "rm":
        seconds = time_median(rm_step, repeats, before=clear_grads)
        clear_grads()
        tokens = 2 * batch * seq
    else:
        seconds = time_median(train_step, repeats, before=clear_grads)
        clear_grads()
    return {"config": config, "seq": seq, "batch": batch, "lora_rank": lora_rank, "mode": mode,
            **({"temperature": temperature} if mode == "generate" else {}),
            "tokens_per_s": tokens / seconds, "seconds_median": seconds,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS),
                        help="model config (repeatable; default tiny)")
    parser.add_argument("--seq", action="append", type=int, help="sequence length (repeatable; default 128)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=0, help="0: full fine-tuning in train mode")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--modes", default="forward,train", help="comma list of forward,train,generate,rm,grpo "
                        "(generate: --seq new tokens after a 32-token prompt, per row of --batch; "
                        "rm: --batch pairs of --seq tokens; grpo: one GRPO step, --batch prompts x "
                        "--grpo-generations completions of --seq tokens)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="train/rm: recompute each decoder layer in the backward pass")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="generate: 0 greedy, > 0 HF-style sampling (softmax(logits/T), torch.multinomial; "
                        "top-p 1, top-k off); grpo: the rollouts' and the loss's temperature (default 1)")
    parser.add_argument("--sample", action="store_true", help="generate: sample at temperature 1 (= --temperature 1)")
    parser.add_argument("--grpo-generations", type=int, default=8, help="grpo: completions per prompt (G)")
    parser.add_argument("--grpo-prompt-len", type=int, default=GENERATE_PROMPT, help="grpo: prompt tokens per prompt")
    parser.add_argument("--grpo-micro-batch", type=int, default=4, help="grpo: completions per forward/backward pass")
    parser.add_argument("--grpo-warmup", type=int, default=1, help="grpo: untimed steps before the timed ones")
    parser.add_argument("--grpo-old-logprobs", action="store_true",
                        help="grpo: also a no-grad pass for the old log-probs (as with an inference engine's rollouts)")
    parser.add_argument("--skip-check", action="store_true", help="skip the float64 reference check")
    args = parser.parse_args(argv)
    if args.sample and args.temperature == 0:
        args.temperature = 1.0
    configs = args.config or ["tiny"]
    seqs = args.seq or [128]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes must be a comma list of {','.join(MODES)}")
    if min(seqs) < 2 or args.batch < 1 or args.repeats < 1 or args.lora_rank < 0 or args.threads < 1:
        parser.error("need --seq >= 2, --batch >= 1, --repeats >= 1, --lora-rank >= 0, --threads >= 1")

    torch.set_num_threads(args.threads)
    blas = loaded_blas_libraries()
    blas_threads = set_blas_threads(blas, args.threads)
    log(f"[env] torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
        f"BLAS {blas or 'none found'} (threads {blas_threads}), "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    gflops = sgemm_gflops()
    log(f"[env] float32 matmul 512x1024x1024: {gflops:.1f} GFLOP/s")
    rss_reset = reset_peak_rss()
    results, models = [], []
    for config in configs:
        d = ref.Dims(CONFIGS[config])
        t0 = time.perf_counter()
        model = build_model(d, args.lora_rank)
        model.gradient_checkpointing = args.gradient_checkpointing
        set_trainable(model, args.lora_rank)
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        gc.collect()
        rss_model = round(current_rss_mb(), 1)
        models.append({"config": config, "params": n_params, "trainable_params": n_train,
                       "rss_after_init_mb": rss_model})
        log(f"[model] {config}: {n_params / 1e6:.1f}M params ({n_train / 1e6:.3f}M trainable in "
            f"train mode), built in {time.perf_counter() - t0:.1f} s, RSS {rss_model:.0f} MB")
        for seq in seqs:
            for mode in modes:
                if mode == "grpo":
                    r = measure_grpo(model, config, seq, args.batch, args.lora_rank, args.repeats, rss_reset, args)
                else:
                    r = measure(model, config, seq, args.batch, args.lora_rank, mode, args.repeats, rss_reset,
                                args.temperature)
                log(f"[run] {config} T={seq} B={args.batch} {mode}"
                    f"{f' lora{args.lora_rank}' if args.lora_rank else ''}: "
                    f"{r['tokens_per_s']:.1f} tok/s ({r['seconds_median']:.3f} s), "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB")
                results.append(r)
        del model
        gc.collect()

    header = f"{'config':<6} {'seq':>5} {'batch':>5} {'lora':>4} {'mode':<8} " \
             f"{'tok/s':>10} {'median s':>9} {'peak RSS MB':>11}"
    log("\n" + header + "\n" + "-" * len(header))
    for r in results:
        log(f"{r['config']:<6} {r['seq']:>5} {r['batch']:>5} {r['lora_rank']:>4} {r['mode']:<8} "
            f"{r['tokens_per_s']:>10.1f} {r['seconds_median']:>9.3f} {r['peak_rss_mb']:>11.0f}")

    check = None if args.skip_check else self_check()  # raises if the model is wrong
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "results": results,
        "repeats": args.repeats,
        "blas": blas, "blas_threads": blas_threads, "sgemm_gflops": round(gflops, 2),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "rss_peak_reset": rss_reset, "gradient_checkpointing": args.gradient_checkpointing, "models": models, "reference_check_max_diff": check,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
