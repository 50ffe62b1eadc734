#!/usr/bin/python3
"""Independent float64 PyTorch reference for promedical's Qwen3 implementation.

This is a from-scratch re-implementation of the Qwen3 dense decoder following
the semantics of Hugging Face `transformers/models/qwen3/modeling_qwen3.py`
(without using `transformers`, `peft` or the `safetensors` package). All math
runs in float64; safetensors files are written and parsed by the hand-written
numpy code in safetensors_reference.py (same folder).

Requirements: Debian's /usr/bin/python3 with torch (1.13, CPU) and numpy (1.24).

Model semantics (per decoder layer, x: [B, T, H])
-------------------------------------------------
  RMSNorm(x)   = x * rsqrt(mean(x^2, -1) + eps) * weight
  attention    : q/k/v = x @ W^T (no bias), reshaped to [B, T, heads, head_dim];
                 q_norm / k_norm = RMSNorm over head_dim with one [head_dim]
                 weight shared by all heads, applied BEFORE RoPE; v untouched.
                 RoPE is the half-split form q*cos + rotate_half(q)*sin with
                 rotate_half(x) = cat(-x2, x1), inv_freq = 1/theta^(arange(0,D,2)/D),
                 emb = cat(freqs, freqs). GQA: query head h reads kv head
                 h // (heads / kv_heads) (repeat_interleave). Scores are scaled
                 by head_dim^-0.5; the additive mask holds finfo(float64).min at
                 future and padded keys; softmax in float64; o_proj (no bias).
  MLP          = down(silu(gate(x)) * up(x)), no biases
  block        : x += attn(input_layernorm(x)); x += mlp(post_attention_layernorm(x))
  head         : hidden = model.norm(x); logits = hidden @ lm_head^T, where
                 lm_head is embed_tokens when tie_word_embeddings.
  padding      : left padding; position_ids = cumsum(mask) - 1, then set to 1
                 where mask == 0 (HF generate's masked_fill_(mask == 0, 1)).

Deliberate differences from HF run in float64: HF computes RoPE cos/sin,
RMSNorm, softmax and the loss internally in float32 even for a float64 model;
here everything is float64. The effect is far below the 1e-4 tolerance used
for float32 parity tests.

Modes
-----
generate [--out DIR]   (default when no arguments are given)
    Writes DIR (default test/fixtures/qwen3) with three tiny checkpoints
    (tied-gqa2-f32, untied-gqa4-bf16, sharded-gqa2-f32), each holding
    config.json, weights and reference.safetensors, plus the PEFT LoRA
    adapter fixture tied-gqa2-f32-lora. Runs self-checks (independent
    loop-based forward, padding invariance, finite-difference gradients,
    load-from-disk round trip) and aborts on any failure.

check DIR [--ids-from FIXTURE_DIR] [--tol 1e-4]
    Loads any HF-layout Qwen3 folder (config.json + model.safetensors or
    shards via model.safetensors.index.json; F32/BF16/F16), validates tensor
    names/shapes against the config, runs the reference forward on the
    input_ids of FIXTURE_DIR/reference.safetensors (else `input_ids` from
    DIR/ts_logits.safetensors, else fixed random ids) and, if
    DIR/ts_logits.safetensors exists, compares its `logits` tensor: prints
    max |diff| and argmax agreement. Exits non-zero on any layout problem or
    if max |diff| > tol.

reference.safetensors contents (floats F64, ids I64)
----------------------------------------------------
  input_ids [2,7], logits [2,7,V], hidden [2,7,H] (after model.norm),
  loss [] (mean CE of logits[:, :-1] vs input_ids[:, 1:]),
  grad.<param> for every checkpoint tensor (same name/shape/layout; the tied
  embedding gradient includes the lm_head contribution),
  padded_input_ids / padded_mask [2,7] (row 1 = 3 left pads, id 0, then the
  first 4 ids of input_ids row 1), padded_logits [2,7,V] (logits at pad
  positions are convention-dependent: compare only where mask == 1),
  prompt_a [5], prompt_b [3], greedy_a [8], greedy_b [8] (greedy argmax,
  full recomputation per step, no stop tokens; prompt seeds are advanced
  until every step has top1-top2 margin >= 1e-3 and the 8 tokens contain at
  least 4 distinct ids). The header __metadata__
  records the prompt seeds and the minimum top1-top2 logit margins.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import safetensors_reference as st  # noqa: E402  (hand-written numpy safetensors I/O)

DTYPE = torch.float64
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "fixtures" / "qwen3"

BATCH, SEQ = 2, 7          # reference batch shape
PAD_SLOTS = 3              # left pads in padded row 1
PROMPT_A_LEN, PROMPT_B_LEN, NEW_TOKENS = 5, 3, 8
MIN_MARGIN = 1e-3          # required top1-top2 logit gap at every greedy step
MIN_DISTINCT = 4           # required distinct tokens among the NEW_TOKENS greedy tokens, so
                           # that a degenerate repeat cannot hide cache/position bugs
CHECK_TOL = 1e-4           # default max |diff| accepted by `check`
CHECK_SEED = 777           # ids used by `check` when no other source is given

# The three checkpoints of the brief. `seed` drives every random draw of a
# checkpoint: weights (seed), input ids (seed+1), finite-difference sample
# (seed+2), prompts (seed+100+k and seed+200+k, k = retry count).
CHECKPOINTS = [
    dict(name="tied-gqa2-f32", seed=1001, vocab=96, hidden=32, intermediate=64, layers=2,
         heads=4, kv_heads=2, head_dim=16, tied=True, dtype="F32", shards=1),
    dict(name="untied-gqa4-bf16", seed=2002, vocab=96, hidden=48, intermediate=80, layers=2,
         heads=8, kv_heads=2, head_dim=8, tied=False, dtype="BF16", shards=1),
    dict(name="sharded-gqa2-f32", seed=3003, vocab=96, hidden=32, intermediate=48, layers=3,
         heads=2, kv_heads=1, head_dim=24, tied=False, dtype="F32", shards=3),
]

# LoRA fixture on checkpoint 1 (PEFT conventions).
LORA = dict(name="tied-gqa2-f32-lora", base="tied-gqa2-f32", seed=4004, r=4, alpha=8,
            targets=["q_proj", "v_proj", "down_proj"])
LORA_MODULE_PATH = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
                    "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
                    "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
                    "down_proj": "mlp.down_proj"}

TORCH_DTYPE_NAME = {"F32": "float32", "BF16": "bfloat16"}


# --------------------------------------------------------------------------
# Config and parameter layout
# --------------------------------------------------------------------------

def make_config(spec):
    """config.json as transformers writes it for Qwen3ForCausalLM."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": spec["vocab"] - 2,
        "eos_token_id": spec["vocab"] - 1,
        "head_dim": spec["head_dim"],
        "hidden_act": "silu",
        "hidden_size": spec["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": spec["intermediate"],
        "max_position_embeddings": 128,
        "max_window_layers": spec["layers"],
        "model_type": "qwen3",
        "num_attention_heads": spec["heads"],
        "num_hidden_layers": spec["layers"],
        "num_key_value_heads": spec["kv_heads"],
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": spec["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[spec["dtype"]],
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": spec["vocab"],
    }


class Dims:
    """Model dimensions read from a config dict (with Qwen3Config defaults)."""

    def __init__(self, cfg):
        self.V = cfg["vocab_size"]
        self.H = cfg["hidden_size"]
        self.I = cfg["intermediate_size"]
        self.L = cfg["num_hidden_layers"]
        self.nH = cfg["num_attention_heads"]
        self.nKV = cfg.get("num_key_value_heads") or self.nH
        self.D = cfg.get("head_dim") or self.H // self.nH
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        assert self.nH % self.nKV == 0, "num_attention_heads must be a multiple of num_key_value_heads"
        assert self.D % 2 == 0, "head_dim must be even for RoPE"


def param_shapes(d: Dims):
    """Checkpoint tensor name -> shape, in HF state_dict (module registration) order."""
    shapes = {"model.embed_tokens.weight": (d.V, d.H)}
    for i in range(d.L):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (d.nH * d.D, d.H)
        shapes[p + "self_attn.k_proj.weight"] = (d.nKV * d.D, d.H)
        shapes[p + "self_attn.v_proj.weight"] = (d.nKV * d.D, d.H)
        shapes[p + "self_attn.o_proj.weight"] = (d.H, d.nH * d.D)
        shapes[p + "self_attn.q_norm.weight"] = (d.D,)
        shapes[p + "self_attn.k_norm.weight"] = (d.D,)
        shapes[p + "mlp.gate_proj.weight"] = (d.I, d.H)
        shapes[p + "mlp.up_proj.weight"] = (d.I, d.H)
        shapes[p + "mlp.down_proj.weight"] = (d.H, d.I)
        shapes[p + "input_layernorm.weight"] = (d.H,)
        shapes[p + "post_attention_layernorm.weight"] = (d.H,)
    shapes["model.norm.weight"] = (d.H,)
    if not d.tied:
        shapes["lm_head.weight"] = (d.V, d.H)  # tied checkpoints ship no lm_head
    return shapes


def init_weights(d: Dims, dtype: str, rng):
    """Random weights: matrices 0.2*N(0,1), norm weights 1 + 0.1*N(0,1).

    Returns (stored, weights): stored[name] is what goes on disk (float32
    values, or uint16 bf16 bit patterns for BF16); weights[name] is the exact
    on-disk value upcast to a float64 torch tensor (used for all math).
    """
    stored, weights = {}, {}
    for name, shape in param_shapes(d).items():
        if name.endswith("norm.weight"):  # input/post_attention_layernorm, q/k_norm, model.norm
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            w = 0.2 * rng.standard_normal(shape)
        w32 = w.astype(np.float32)
        if dtype == "BF16":
            bits = st.f32_to_bf16_bits_torch(w32)
            stored[name] = bits
            value = st.bf16_bits_to_f32_torch(bits)
        else:
            stored[name] = w32
            value = w32
        weights[name] = torch.from_numpy(value.astype(np.float64))
    return stored, weights


# --------------------------------------------------------------------------
# Model (vectorized float64 forward)
# --------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(position_ids, d: Dims):
    """cos/sin tables [B, T, D] for integer position_ids [B, T]."""
    inv_freq = 1.0 / d.theta ** (torch.arange(0, d.D, 2, dtype=DTYPE) / d.D)
    freqs = position_ids.to(DTYPE)[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def position_ids_from_mask(mask):
    """HF generate: cumsum(mask) - 1, then 1 at padded positions."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def additive_mask(mask):
    """[B, 1, T, T] additive mask: 0 where key <= query and key is real, else finfo.min."""
    T = mask.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None] & mask.bool()[:, None, :]
    bias = torch.zeros(allowed.shape, dtype=DTYPE).masked_fill(~allowed, torch.finfo(DTYPE).min)
    return bias[:, None]


def attention(x, p, prefix, d: Dims, cos, sin, bias):
    B, T, _ = x.shape
    q = (x @ p[prefix + "q_proj.weight"].T).view(B, T, d.nH, d.D)
    k = (x @ p[prefix + "k_proj.weight"].T).view(B, T, d.nKV, d.D)
    v = (x @ p[prefix + "v_proj.weight"].T).view(B, T, d.nKV, d.D)
    # Per-head RMSNorm over head_dim before RoPE (v is not normalized).
    q = rms_norm(q, p[prefix + "q_norm.weight"], d.eps).transpose(1, 2)  # [B, nH, T, D]
    k = rms_norm(k, p[prefix + "k_norm.weight"], d.eps).transpose(1, 2)  # [B, nKV, T, D]
    v = v.transpose(1, 2)
    cos, sin = cos[:, None], sin[:, None]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    # GQA: query head h uses kv head h // n_rep.
    n_rep = d.nH // d.nKV
    k = k.repeat_interleave(n_rep, dim=1)
    v = v.repeat_interleave(n_rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) * d.D ** -0.5 + bias
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(B, T, d.nH * d.D)
    return out @ p[prefix + "o_proj.weight"].T


def mlp(x, p, prefix):
    gate = x @ p[prefix + "gate_proj.weight"].T
    up = x @ p[prefix + "up_proj.weight"].T
    return (F.silu(gate) * up) @ p[prefix + "down_proj.weight"].T


def lm_head_weight(p, d: Dims):
    return p["model.embed_tokens.weight"] if d.tied else p["lm_head.weight"]


def forward(p, d: Dims, input_ids, attention_mask=None):
    """Returns (logits [B,T,V], hidden [B,T,H] after model.norm)."""
    input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
    cos, sin = rope_cos_sin(position_ids_from_mask(attention_mask), d)
    bias = additive_mask(attention_mask)
    x = p["model.embed_tokens.weight"][input_ids]
    for i in range(d.L):
        pre = f"model.layers.{i}."
        x = x + attention(rms_norm(x, p[pre + "input_layernorm.weight"], d.eps),
                          p, pre + "self_attn.", d, cos, sin, bias)
        x = x + mlp(rms_norm(x, p[pre + "post_attention_layernorm.weight"], d.eps), p, pre + "mlp.")
    hidden = rms_norm(x, p["model.norm.weight"], d.eps)
    return hidden @ lm_head_weight(p, d).T, hidden


def causal_lm_loss(logits, input_ids):
    """HF ForCausalLMLoss without ignore_index: mean CE of logits[:, :-1] vs ids[:, 1:]."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), input_ids[:, 1:].reshape(-1))


def loss_and_grads(weights, d: Dims, input_ids):
    params = {n: w.clone().requires_grad_(True) for n, w in weights.items()}
    logits, hidden = forward(params, d, input_ids)
    loss = causal_lm_loss(logits, input_ids)
    grads = torch.autograd.grad(loss, list(params.values()))
    return logits.detach(), hidden.detach(), loss.detach(), dict(zip(params, grads))


def greedy(weights, d: Dims, prompt, n_new):
    """Greedy argmax decoding with full recomputation; returns (tokens, min top1-top2 margin)."""
    ids, margins = list(prompt), []
    for _ in range(n_new):
        logits, _ = forward(weights, d, torch.tensor([ids]))
        last = logits[0, -1]
        top2 = torch.topk(last, 2).values
        margins.append((top2[0] - top2[1]).item())
        ids.append(int(last.argmax()))
    return ids[len(prompt):], min(margins)


# --------------------------------------------------------------------------
# Independent loop-based forward (numpy), used only to self-check `forward`
# --------------------------------------------------------------------------

def naive_logits(weights, d: Dims, input_ids, mask):
    """Token-by-token, head-by-head re-derivation in numpy.

    RoPE is written as an explicit rotation of the pairs (i, i + D/2) by angle
    pos * theta^(-2i/D); attention normalizes over the allowed keys only (no
    additive mask); GQA picks kv head h // (nH / nKV) explicitly. Logits at
    padded positions are left as NaN.
    """
    w = {n: t.detach().numpy() for n, t in weights.items()}
    ids, mask = np.asarray(input_ids), np.asarray(mask)
    B, T = ids.shape
    head = w["model.embed_tokens.weight"] if d.tied else w["lm_head.weight"]
    out = np.full((B, T, d.V), np.nan)
    i_half = np.arange(d.D // 2)
    inv_freq = d.theta ** (-2.0 * i_half / d.D)

    def norm(v, g):
        return v / math.sqrt(float(np.mean(v * v)) + d.eps) * g

    def rope(v, pos):
        c, s = np.cos(pos * inv_freq), np.sin(pos * inv_freq)
        a, b = v[: d.D // 2], v[d.D // 2:]
        return np.concatenate([a * c - b * s, b * c + a * s])

    for b in range(B):
        real = [t for t in range(T) if mask[b, t]]
        pos = {t: n for n, t in enumerate(real)}  # position = number of earlier real tokens
        xs = {t: w["model.embed_tokens.weight"][ids[b, t]].copy() for t in real}
        for i in range(d.L):
            pre = f"model.layers.{i}."
            Wq, Wk, Wv, Wo = (w[pre + f"self_attn.{m}_proj.weight"] for m in "qkvo")
            hs = {t: norm(xs[t], w[pre + "input_layernorm.weight"]) for t in real}
            attn_out = {t: np.zeros(d.nH * d.D) for t in real}
            for h in range(d.nH):
                g = h // (d.nH // d.nKV)
                qs, ks, vs = {}, {}, {}
                for t in real:
                    qs[t] = rope(norm(Wq[h * d.D:(h + 1) * d.D] @ hs[t], w[pre + "self_attn.q_norm.weight"]), pos[t])
                    ks[t] = rope(norm(Wk[g * d.D:(g + 1) * d.D] @ hs[t], w[pre + "self_attn.k_norm.weight"]), pos[t])
                    vs[t] = Wv[g * d.D:(g + 1) * d.D] @ hs[t]
                for t in real:
                    keys = [s for s in real if s <= t]
                    sc = np.array([qs[t] @ ks[s] / math.sqrt(d.D) for s in keys])
                    e = np.exp(sc - sc.max())
                    attn_out[t][h * d.D:(h + 1) * d.D] = sum(pw * vs[s] for pw, s in zip(e / e.sum(), keys))
            for t in real:
                xs[t] = xs[t] + Wo @ attn_out[t]
                h2 = norm(xs[t], w[pre + "post_attention_layernorm.weight"])
                gt = w[pre + "mlp.gate_proj.weight"] @ h2
                act = gt / (1.0 + np.exp(-gt)) * (w[pre + "mlp.up_proj.weight"] @ h2)
                xs[t] = xs[t] + w[pre + "mlp.down_proj.weight"] @ act
        for t in real:
            out[b, t] = head @ norm(xs[t], w["model.norm.weight"])
    return out


# --------------------------------------------------------------------------
# Checkpoint I/O (HF layout)
# --------------------------------------------------------------------------

def write_json(path: Path, obj):
    # transformers / PEFT write JSON with indent=2 and sorted keys.
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def shard_plan(names, nbytes, n_shards):
    """Split tensors (in state_dict order) like huggingface_hub's
    split_state_dict_into_shards: start a new shard whenever adding the next
    tensor would exceed max_shard_size. Returns (shards, max_shard_size) for
    the smallest max_shard_size that yields exactly n_shards shards."""
    total = sum(nbytes[n] for n in names)
    for limit in range(math.ceil(total / n_shards), total + 1):
        shards, size = [[]], 0
        for n in names:
            if shards[-1] and size + nbytes[n] > limit:
                shards.append([])
                size = 0
            shards[-1].append(n)
            size += nbytes[n]
        if len(shards) == n_shards:
            return shards, limit
    raise ValueError(f"cannot split into {n_shards} shards")


def write_weights(folder: Path, stored, dtype, n_shards):
    """Write model.safetensors, or n_shards shard files plus the index. Returns file names."""
    for old in list(folder.glob("model*.safetensors")) + list(folder.glob("model.safetensors.index.json")):
        old.unlink()  # drop stale weight files from a previous layout
    meta = {"format": "pt"}

    def tensors(names):  # within a file, data/header sorted by name like the safetensors library
        return {n: (dtype, stored[n]) for n in sorted(names)}

    if n_shards == 1:
        st.save_tensors(folder / "model.safetensors", tensors(stored), meta)
        return ["model.safetensors"]
    itemsize = st.DTYPES[dtype][0]
    nbytes = {n: a.size * itemsize for n, a in stored.items()}
    shards, _ = shard_plan(list(stored), nbytes, n_shards)
    files, weight_map = [], {}
    for k, names in enumerate(shards, start=1):
        fname = f"model-{k:05d}-of-{n_shards:05d}.safetensors"
        st.save_tensors(folder / fname, tensors(names), meta)
        files.append(fname)
        weight_map.update({n: fname for n in names})
    # total_size is the sum of tensor data bytes (not file sizes), as transformers writes it.
    write_json(folder / "model.safetensors.index.json",
               {"metadata": {"total_size": sum(nbytes.values())}, "weight_map": weight_map})
    return files + ["model.safetensors.index.json"]


def load_checkpoint(folder: Path):
    """Load an HF-layout Qwen3 folder.

    Returns (cfg, dims, weights, problems); weights maps checkpoint names to
    float64 tensors, or is None if the tensors do not match the config.
    """
    problems = []
    cfg = json.loads((folder / "config.json").read_text())
    expect = {"model_type": "qwen3", "hidden_act": "silu"}
    for key, value in expect.items():
        if cfg.get(key) != value:
            problems.append(f"config {key} = {cfg.get(key)!r}, expected {value!r}")
    if "Qwen3ForCausalLM" not in (cfg.get("architectures") or []):
        problems.append(f"config architectures = {cfg.get('architectures')!r}, expected ['Qwen3ForCausalLM']")
    for key in ("rope_scaling", "sliding_window"):
        if cfg.get(key) is not None:
            problems.append(f"config {key} = {cfg[key]!r}: not supported by this reference")
    for key in ("attention_bias", "use_sliding_window"):
        if cfg.get(key):
            problems.append(f"config {key} = true: not supported by this reference")
    d = Dims(cfg)

    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    tensors = {}
    if single.exists():
        _, tensors = st.load_tensors(single)
    elif index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        for fname in sorted(set(weight_map.values())):
            _, shard = st.load_tensors(folder / fname)
            for name in shard:
                if weight_map.get(name) != fname:
                    problems.append(f"{name} is in {fname} but the index says {weight_map.get(name)}")
                if name in tensors:
                    problems.append(f"{name} appears in more than one shard")
            tensors.update(shard)
        for name, fname in weight_map.items():
            if name not in tensors:
                problems.append(f"index lists {name} in {fname}, which does not hold it")
    else:
        problems.append("neither model.safetensors nor model.safetensors.index.json found")
        return cfg, d, None, problems

    shapes = param_shapes(d)
    ok = True
    for name, shape in shapes.items():
        if name not in tensors:
            problems.append(f"missing tensor {name} {list(shape)}")
            ok = False
        elif tuple(tensors[name][1].shape) != shape:
            problems.append(f"{name}: shape {list(tensors[name][1].shape)}, expected {list(shape)}")
            ok = False
        elif tensors[name][0] not in ("F32", "BF16", "F16", "F64"):
            problems.append(f"{name}: dtype {tensors[name][0]} is not a float type")
            ok = False
    for name in sorted(set(tensors) - set(shapes)):
        why = " (tied checkpoints ship no lm_head)" if name == "lm_head.weight" else ""
        problems.append(f"unexpected tensor {name}{why}")
    if not ok:
        return cfg, d, None, problems
    weights = {n: torch.from_numpy(tensors[n][1].astype(np.float64)) for n in shapes}
    return cfg, d, weights, problems


def dir_size(path: Path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------

def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def check_gradients(weights, d: Dims, ids, grads, rng, token_row):
    """Central finite differences for one random entry of every parameter,
    one embedding entry in a row that is also an input token (for tied models
    this mixes the lookup and lm_head contributions), and torch gradcheck on
    two small vectors. Returns the worst |fd - autograd|."""
    eps = 1e-6

    def loss_with(name, value):
        p = dict(weights)
        p[name] = value
        return causal_lm_loss(forward(p, d, ids)[0], ids)

    picks = [(n, tuple(int(rng.integers(0, s)) for s in w.shape)) for n, w in weights.items()]
    picks.append(("model.embed_tokens.weight", (token_row, int(rng.integers(0, d.H)))))
    worst = 0.0
    for name, idx in picks:
        plus, minus = weights[name].clone(), weights[name].clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (loss_with(name, plus).item() - loss_with(name, minus).item()) / (2 * eps)
        g = grads[name][idx].item()
        err = abs(fd - g)
        assert err <= 1e-7 + 1e-6 * abs(g), f"gradient mismatch {name}{list(idx)}: fd {fd} autograd {g}"
        worst = max(worst, err)
    for name in ("model.layers.0.self_attn.q_norm.weight", "model.norm.weight"):
        w = weights[name].clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda v, n=name: loss_with(n, v), (w,),
                                        eps=1e-6, atol=1e-7, rtol=1e-5), name
    return worst, len(picks)


# --------------------------------------------------------------------------
# Fixture generation
# --------------------------------------------------------------------------

def pick_prompt(weights, d: Dims, length, base_seed):
    """Random prompt whose greedy continuation has margin >= MIN_MARGIN at every
    step (argmax unambiguous) and at least MIN_DISTINCT distinct tokens."""
    for attempt in range(100):
        seed = base_seed + attempt
        prompt = np.random.default_rng(seed).integers(0, d.V, length)
        tokens, margin = greedy(weights, d, prompt.tolist(), NEW_TOKENS)
        if margin >= MIN_MARGIN and len(set(tokens)) >= MIN_DISTINCT:
            return prompt, tokens, margin, seed
        print(f"    prompt seed {seed} rejected: min margin {margin:.3g} (need >= {MIN_MARGIN}), "
              f"{len(set(tokens))} distinct tokens {tokens} (need >= {MIN_DISTINCT})")
    raise RuntimeError("no prompt with an unambiguous greedy continuation")


def generate_checkpoint(spec, out_root: Path):
    name, seed = spec["name"], spec["seed"]
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = make_config(spec)
    d = Dims(cfg)
    print(f"== {name}: V={d.V} H={d.H} I={d.I} L={d.L} heads={d.nH} kv_heads={d.nKV} "
          f"head_dim={d.D} tied={d.tied} {spec['dtype']}")

    stored, weights = init_weights(d, spec["dtype"], np.random.default_rng(seed))
    write_json(folder / "config.json", cfg)
    files = ["config.json"] + write_weights(folder, stored, spec["dtype"], spec["shards"])

    # Main batch: logits, final hidden, loss and gradients of every parameter.
    ids = torch.from_numpy(np.random.default_rng(seed + 1).integers(0, d.V, (BATCH, SEQ)))
    logits, hidden, loss, grads = loss_and_grads(weights, d, ids)

    # Left-padded batch: row 0 unchanged, row 1 = PAD_SLOTS pads + first SEQ-PAD_SLOTS ids.
    n_real = SEQ - PAD_SLOTS
    padded_ids = ids.clone()
    padded_ids[1] = torch.cat([torch.zeros(PAD_SLOTS, dtype=torch.long), ids[1, :n_real]])
    padded_mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    padded_mask[1, :PAD_SLOTS] = 0
    padded_logits, _ = forward(weights, d, padded_ids, padded_mask)

    # --- self-checks ------------------------------------------------------
    short_logits, _ = forward(weights, d, ids[1:2, :n_real])
    diff_pad = max_abs(padded_logits[1, PAD_SLOTS:], short_logits[0])
    diff_row0 = max_abs(padded_logits[0], logits[0])
    assert diff_pad <= 1e-10, f"padded row 1 differs from the unpadded run by {diff_pad}"
    assert diff_row0 <= 1e-10, f"padded row 0 differs from the unpadded batch by {diff_row0}"
    diff_naive = max_abs(naive_logits(weights, d, ids, np.ones((BATCH, SEQ))), logits)
    real = padded_mask.bool().numpy()
    diff_naive_pad = max_abs(naive_logits(weights, d, padded_ids, padded_mask)[real],
                             padded_logits.numpy()[real])
    assert diff_naive <= 1e-10 and diff_naive_pad <= 1e-10, (diff_naive, diff_naive_pad)
    assert max_abs(logits, hidden @ lm_head_weight(weights, d).T) == 0.0
    if d.tied:
        assert "lm_head.weight" not in stored and "lm_head.weight" not in grads
    grad_err, n_fd = check_gradients(weights, d, ids, grads, np.random.default_rng(seed + 2),
                                     int(ids[0, 0]))
    # Round trip: reload the folder with the `check` loader, recompute, compare.
    _, d2, reloaded, problems = load_checkpoint(folder)
    assert not problems and reloaded is not None, problems
    assert all(torch.equal(reloaded[n], weights[n]) for n in weights)
    assert max_abs(forward(reloaded, d2, ids)[0], logits) == 0.0
    print(f"  loss {loss.item():.12f}; logits std {logits.std().item():.3f}")
    print(f"  padded row 1 vs unpadded 4-token run: max |diff| {diff_pad:.2e}; "
          f"row 0 vs unpadded: {diff_row0:.2e}")
    print(f"  loop-based numpy forward vs vectorized: {diff_naive:.2e} (padded, real positions: "
          f"{diff_naive_pad:.2e})")
    print(f"  finite differences on {n_fd} entries: worst |fd - autograd| {grad_err:.2e}; "
          f"gradcheck OK; reload from disk identical")

    # Greedy decoding fixtures.
    prompt_a, greedy_a, margin_a, seed_a = pick_prompt(weights, d, PROMPT_A_LEN, seed + 100)
    prompt_b, greedy_b, margin_b, seed_b = pick_prompt(weights, d, PROMPT_B_LEN, seed + 200)
    print(f"  greedy_a: prompt {prompt_a.tolist()} -> {greedy_a}  (seed {seed_a}, min margin {margin_a:.4f})")
    print(f"  greedy_b: prompt {prompt_b.tolist()} -> {greedy_b}  (seed {seed_b}, min margin {margin_b:.4f})")

    ref = {"input_ids": ("I64", ids.numpy()),
           "logits": ("F64", logits.numpy()),
           "hidden": ("F64", hidden.numpy()),
           "loss": ("F64", loss.numpy())}
    for pname in param_shapes(d):
        ref["grad." + pname] = ("F64", grads[pname].numpy())
    ref.update({"padded_input_ids": ("I64", padded_ids.numpy()),
                "padded_mask": ("I64", padded_mask.numpy()),
                "padded_logits": ("F64", padded_logits.numpy()),
                "prompt_a": ("I64", prompt_a),
                "prompt_b": ("I64", prompt_b),
                "greedy_a": ("I64", np.array(greedy_a, dtype=np.int64)),
                "greedy_b": ("I64", np.array(greedy_b, dtype=np.int64))})
    meta = {"format": "pt", "generator": "test/reference/qwen3_reference.py",
            "prompt_a_seed": str(seed_a), "prompt_b_seed": str(seed_b),
            "greedy_a_min_margin": repr(margin_a), "greedy_b_min_margin": repr(margin_b),
            "note": "padded_logits at mask==0 positions are convention-dependent; compare mask==1 only"}
    st.save_tensors(folder / "reference.safetensors", ref, meta)
    files.append("reference.safetensors")
    return folder, files, weights, d, ids, (margin_a, margin_b)


def generate_lora(base_weights, d: Dims, ids, out_root: Path):
    """PEFT LoRA adapter for checkpoint 1 and logits with W_eff = W + (alpha/r) B @ A."""
    folder = out_root / LORA["name"]
    folder.mkdir(parents=True, exist_ok=True)
    r, alpha = LORA["r"], LORA["alpha"]
    print(f"== {LORA['name']}: LoRA r={r} alpha={alpha} on {LORA['targets']} (base {LORA['base']})")
    adapter_config = {  # field set of PEFT 0.14's LoraConfig.save_pretrained
        "alpha_pattern": {}, "auto_mapping": None,
        "base_model_name_or_path": LORA["base"], "bias": "none", "eva_config": None,
        "exclude_modules": None, "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
        "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_bias": False, "lora_dropout": 0.0, "megatron_config": None,
        "megatron_core": "megatron.core", "modules_to_save": None, "peft_type": "LORA",
        "r": r, "rank_pattern": {}, "revision": None, "target_modules": LORA["targets"],
        "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False,
    }
    write_json(folder / "adapter_config.json", adapter_config)

    rng = np.random.default_rng(LORA["seed"])
    tensors, merged = {}, dict(base_weights)
    for i in range(d.L):
        for target in LORA["targets"]:
            module = f"model.layers.{i}.{LORA_MODULE_PATH[target]}"
            out_f, in_f = base_weights[module + ".weight"].shape
            A = (0.2 * rng.standard_normal((r, in_f))).astype(np.float32)   # lora_A: [r, in]
            B = (0.2 * rng.standard_normal((out_f, r))).astype(np.float32)  # lora_B: [out, r]
            tensors[f"base_model.model.{module}.lora_A.weight"] = ("F32", A)
            tensors[f"base_model.model.{module}.lora_B.weight"] = ("F32", B)
            delta = torch.from_numpy(B.astype(np.float64)) @ torch.from_numpy(A.astype(np.float64))
            merged[module + ".weight"] = base_weights[module + ".weight"] + (alpha / r) * delta
    st.save_tensors(folder / "adapter_model.safetensors",
                    {n: tensors[n] for n in sorted(tensors)}, {"format": "pt"})

    logits, _ = forward(merged, d, ids)
    base_logits, _ = forward(base_weights, d, ids)
    effect = max_abs(logits, base_logits)
    assert effect > 0.1, "adapter has no visible effect"
    # Unmerged formulation x W^T + s (x A^T) B^T on one layer input as a cross-check.
    x = torch.randn(3, d.H, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    mod = "model.layers.0.self_attn.q_proj"
    A = torch.from_numpy(tensors[f"base_model.model.{mod}.lora_A.weight"][1].astype(np.float64))
    B = torch.from_numpy(tensors[f"base_model.model.{mod}.lora_B.weight"][1].astype(np.float64))
    unmerged = x @ base_weights[mod + ".weight"].T + (alpha / r) * (x @ A.T) @ B.T
    assert max_abs(unmerged, x @ merged[mod + ".weight"].T) < 1e-12
    print(f"  max |lora logits - base logits| {effect:.3f}")
    st.save_tensors(folder / "reference.safetensors",
                    {"input_ids": ("I64", ids.numpy()), "logits": ("F64", logits.numpy())},
                    {"format": "pt", "generator": "test/reference/qwen3_reference.py",
                     "note": f"logits of {LORA['base']} on its input_ids with W_eff = W + (lora_alpha/r) B @ A"})
    return folder, ["adapter_config.json", "adapter_model.safetensors", "reference.safetensors"]


def cmd_generate(args) -> int:
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    written, margins = [], {}
    ckpt1 = None
    for spec in CHECKPOINTS:
        folder, files, weights, d, ids, m = generate_checkpoint(spec, out_root)
        written += [folder / f for f in files]
        margins[spec["name"]] = m
        if spec["name"] == LORA["base"]:
            ckpt1 = (weights, d, ids)
    folder, files = generate_lora(*ckpt1, out_root)
    written += [folder / f for f in files]

    print("\nfiles written:")
    for f in written:
        print(f"  {f.relative_to(out_root.parent)}  {f.stat().st_size} bytes")
    total = dir_size(out_root)
    print(f"total size of {out_root}: {total} bytes ({total / 2**20:.2f} MiB)")
    print("greedy min top1-top2 margins (a, b): " +
          ", ".join(f"{k}: {a:.4f}, {b:.4f}" for k, (a, b) in margins.items()))
    return 0


# --------------------------------------------------------------------------
# check mode
# --------------------------------------------------------------------------

def cmd_check(args) -> int:
    folder = Path(args.dir)
    print(f"== check {folder}")
    cfg, d, weights, problems = load_checkpoint(folder)
    ts_path = folder / "ts_logits.safetensors"
    ts = st.load_tensors(ts_path)[1] if ts_path.exists() else None

    if args.ids_from:
        _, ref = st.load_tensors(Path(args.ids_from) / "reference.safetensors")
        ids, source = ref["input_ids"][1], f"{args.ids_from}/reference.safetensors"
    elif ts is not None and "input_ids" in ts:
        ids, source = ts["input_ids"][1], "ts_logits.safetensors"
    else:
        ids, source = np.random.default_rng(CHECK_SEED).integers(0, d.V, (BATCH, SEQ)), \
            f"random (seed {CHECK_SEED})"
    ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    if ts is not None and "input_ids" in ts and not np.array_equal(ts["input_ids"][1], ids.numpy()):
        problems.append("ts_logits.safetensors input_ids differ from the ids used here")
    if ids.numel() and (ids.min() < 0 or ids.max() >= d.V):
        problems.append(f"input ids outside [0, {d.V})")
    for p in problems:
        print(f"  PROBLEM: {p}")
    if weights is None or any("input ids" in p for p in problems):
        print("  FAIL: cannot run the reference forward")
        return 1

    print(f"  config: V={d.V} H={d.H} I={d.I} L={d.L} heads={d.nH} kv_heads={d.nKV} "
          f"head_dim={d.D} tied={d.tied}")
    print(f"  input_ids {list(ids.shape)} from {source}")
    logits, _ = forward(weights, d, ids)
    if ids.shape[1] > 1:
        print(f"  reference loss {causal_lm_loss(logits, ids).item():.10f}")
    print(f"  reference logits[0, 0, :4] {[round(v, 6) for v in logits[0, 0, :4].tolist()]}")
    failed = bool(problems)
    if ts is None:
        print("  no ts_logits.safetensors: nothing to compare")
    elif "logits" not in ts:
        print("  FAIL: ts_logits.safetensors has no `logits` tensor")
        failed = True
    else:
        got = ts["logits"][1].astype(np.float64)
        if got.shape != tuple(logits.shape):
            print(f"  FAIL: ts logits shape {list(got.shape)} != reference {list(logits.shape)}")
            failed = True
        else:
            diff = max_abs(got, logits)
            agree = int((got.argmax(-1) == logits.argmax(-1).numpy()).sum())
            print(f"  ts logits ({ts['logits'][0]}) vs reference: max |diff| {diff:.3e}, "
                  f"argmax agreement {agree}/{ids.numel()}")
            if not diff <= args.tol:  # also catches NaN
                print(f"  FAIL: max |diff| {diff:.3e} > tol {args.tol:g}")
                failed = True
    print("  FAIL" if failed else "  OK")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    g = sub.add_parser("generate", help="write the Qwen3 reference fixtures (default)")
    g.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default {DEFAULT_OUT})")
    c = sub.add_parser("check", help="run the reference on an HF-layout folder and compare ts_logits")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--ids-from", metavar="FIXTURE_DIR",
                   help="take input_ids from FIXTURE_DIR/reference.safetensors")
    c.add_argument("--tol", type=float, default=CHECK_TOL, help=f"max |diff| allowed (default {CHECK_TOL})")
    args = parser.parse_args(argv)
    if args.mode is None:
        args = parser.parse_args(["generate"])
    return cmd_generate(args) if args.mode == "generate" else cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
