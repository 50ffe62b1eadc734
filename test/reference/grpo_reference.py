#!/usr/bin/python3
"""Independent PyTorch reference fixtures for promedical's GRPO math.

Re-implements (no TRL import) the loss of Hugging Face TRL's
GRPOTrainer._compute_loss (TRL 1.10 semantics: grpo, bnpo, dr_grpo, dapo,
cispo, sapo, luspo, vespo; bias-corrected KL, off-policy sequence mask,
high-entropy token mask, sampler importance-sampling ratio, entropy bonus),
the vLLM importance-sampling correction of _generate_and_score_completions,
the reward aggregation (sum_then_normalize / normalize_then_sum with NaN for
an unscored completion, TRL's nanstd), and the k1/k2/k3 KL estimators, in
torch float64 with autograd.

Requirements: Debian's /usr/bin/python3 with numpy (1.24) and torch (1.13).

Usage:  /usr/bin/python3 test/reference/grpo_reference.py [--out PATH]
        (default PATH: test/fixtures/grpo.json next to this directory)

After generating, every loss case is re-derived in plain numpy (forward) and
its gradient checked by central finite differences (the detached quantities:
the single-update old log-probs, cispo's capped ratio, vespo's Gamma weight
and the off-policy mask, are held at their unperturbed values, as a detach
does); the importance-sampling and reward cases are recomputed in numpy;
literature values are asserted, and each case asserts that it exercises what
its name says. The script exits non-zero on any mismatch.

Loss math (per case; A = advantages[:, None]; m = mask)
-------------------------------------------------------
  log_ratio = logp - old_logp                         (old_logp constant)
  token:    log_w = log_ratio
  sequence: log_w[i] = sum_t(log_ratio*m)[i] / clamp(sum_t m[i], 1)   ([B, 1])
  w = coef_1 = exp(log_w)
  kl = exp(ref-logp) - (ref-logp) - 1;  kl *= coef_1 if use_bias_correction_kl
  grpo/bnpo/dr_grpo/dapo/luspo: coef_2 = clamp(w, 1-eps_low, 1+eps_high),
           c1 = clamp(w, max=delta) if delta else w;  l = -min(c1*A, coef_2*A)
  cispo:   l = -clamp(w, max=eps_high).detach() * A * logp
  sapo:    tau = tau_pos where A > 0 else tau_neg;  l = -sigmoid(tau*(w-1))*4/tau * A
  vespo:   s = sum_t clamp(log_ratio, -20, 20)*m (+ sum_t clamp(log is_ratio, log 1e-8, 20))
           log_w = clamp(s, log 1e-8, 20); k, lam = (k_pos, lam_pos) if A >= 0 else (k_neg, lam_neg)
           phi = exp(lam + k log_w - lam exp(log_w)) (nan/inf -> 0), detached;  l = -phi*A*logp
  l *= off_policy_mask ([B,1]: A >= 0 or mean_t((sampling - logp.detach())*m) <= threshold)
  l *= entropy_mask    ([B,T]: entropies*m >= quantile(entropies[m], 1 - q), and m)
  l *= is_ratio        ([B,T] or [B,1]; not for vespo)
  l += beta*kl         (if beta != 0)
  grpo, sapo:          mean_i( sum_t(l*m)_i / clamp(sum_t m_i, 1) )
  bnpo:                sum(l*m) / clamp(sum(m), 1)
  dr_grpo:             sum(l*m) / (B * max_completion_length)      (max_completion_length=8)
  dapo, cispo, vespo:  sum(l*m) / clamp(num_items_in_batch, 1)     (num_items_in_batch=40)
  luspo:               mean(l * sum_t m)   over l's own shape ([B,1], or [B,T] once a
                       [B,T] factor has broadcast it: then padded positions count too)
  entropy bonus (entropy_coef != 0), eff = m * entropy_mask:
    dapo/cispo/vespo:  loss -= coef * sum(H*eff) / clamp(num_items_in_batch, 1)
    otherwise:         loss -= coef * sum(H*eff) / clamp(sum(eff), 1)
  metrics (promedical's convention: masked means sum(x*m)/clamp(sum(m),1) with
           sequence-level values broadcast over t): kl (null if beta == 0),
           is_low = (w < 1-eps_low) & (A<0), is_high = (w > 1+eps_high) & (A>0),
           region = low | high (w un-delta-clamped, every loss type), entropy,
           cispo_clip_ratio = (w > eps_high) & (A>0) (cispo), vespo_phi_seq_mean
           (vespo), policy_loss (the loss before the bonus, entropy_coef != 0)
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "fixtures", "grpo.json")

B, G, T = 6, 3, 5
LENGTHS = [5, 3, 4, 1, 5, 2]
LENGTHS_ZERO_ROW = [5, 3, 0, 1, 5, 2]
MAX_COMPLETION_LENGTH = 8
NUM_ITEMS_IN_BATCH = 40
SEED = 11
LOG_1E8 = math.log(1e-8)


def tolist(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float64).tolist()
    return float(x)


def nan_to_null(xs):
    return [None if (isinstance(v, float) and math.isnan(v)) else v for v in xs]


def prefix_mask(lengths, t):
    m = np.zeros((len(lengths), t))
    for i, n in enumerate(lengths):
        m[i, :n] = 1.0
    return m


# ---------------------------------------------------------------- torch loss
def gamma_weights_torch(adv, log_ratio, mask, is_ratio, s):
    with torch.no_grad():
        seq = (torch.clamp(log_ratio, -20.0, 20.0) * mask).sum(-1, keepdim=True)
        if is_ratio is not None:
            seq = seq + torch.clamp(torch.log(is_ratio), LOG_1E8, 20.0).sum(-1, keepdim=True)
        log_w = torch.clamp(seq, LOG_1E8, 20.0)
        pos = adv >= 0
        k = torch.where(pos, torch.full_like(log_w, s["vespo_k_pos"]), torch.full_like(log_w, s["vespo_k_neg"]))
        lam = torch.where(pos, torch.full_like(log_w, s["vespo_lambda_pos"]),
                          torch.full_like(log_w, s["vespo_lambda_neg"])).clamp(min=1e-4)
        phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
        return torch.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0), {"seq_log_ratio": seq, "log_w": log_w}


def grpo_loss_torch(logp, old_logp, ref_logp, mask, adv, s, entropies, sampling_logp, is_ratio):
    """logp requires grad. Returns (loss, extras dict)."""
    eps_low, eps_high = s["epsilon_low"], s["epsilon_high"]
    beta, delta, lt = s["beta"], s["delta"], s["loss_type"]
    a = adv.unsqueeze(1)
    extras = {}

    entropy_mask = None
    if s["top_entropy_quantile"] < 1.0:
        local = entropies[mask.bool()]
        if local.numel() == 0:
            entropy_mask = torch.zeros_like(mask, dtype=torch.bool)
        else:
            thr = torch.quantile(local, 1.0 - s["top_entropy_quantile"])
            extras["entropy_threshold"] = float(thr)
            entropy_mask = ((entropies * mask) >= thr) & mask.bool()

    off_policy_mask = None
    if s["off_policy_mask_threshold"] is not None:
        samp = sampling_logp if s["use_sampling_logp"] else old_logp
        kl_div = samp - logp.detach()
        avg = (kl_div * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)
        extras["off_policy_mean_kl"] = avg.squeeze(1)
        off_policy_mask = ((a >= 0) | (avg <= s["off_policy_mask_threshold"])).to(mask.dtype)

    log_ratio = logp - old_logp
    if s["importance_sampling_level"] == "token":
        log_w = log_ratio
    elif s["importance_sampling_level"] == "sequence":
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        raise ValueError(s["importance_sampling_level"])
    coef_1 = torch.exp(log_w)
    w = coef_1

    kl = None
    if beta != 0.0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        if s["use_bias_correction_kl"]:
            kl = kl * coef_1

    phi = None
    if lt == "cispo":
        ptl = -torch.clamp(coef_1, max=eps_high).detach() * a * logp
    elif lt in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        c1 = torch.clamp(coef_1, max=delta) if delta is not None else coef_1
        ptl = -torch.min(c1 * a, coef_2 * a)
    elif lt == "sapo":
        tau = torch.where(a > 0, torch.full_like(a, s["sapo_temperature_pos"]), torch.full_like(a, s["sapo_temperature_neg"]))
        ptl = -(torch.sigmoid(tau * (coef_1 - 1)) * 4 / tau) * a
    elif lt == "vespo":
        phi, vx = gamma_weights_torch(a, log_ratio, mask, is_ratio, s)
        extras.update(vx)
        ptl = -phi * a * logp
    else:
        raise ValueError(lt)

    if off_policy_mask is not None:
        ptl = ptl * off_policy_mask
    if entropy_mask is not None:
        ptl = ptl * entropy_mask
    if is_ratio is not None and lt != "vespo":
        ptl = ptl * is_ratio
    if kl is not None:
        ptl = ptl + beta * kl
    extras["per_token_loss_shape"] = list(ptl.shape)

    normaliser = max(float(s["num_items_in_batch"]), 1.0)
    if lt in ("grpo", "sapo"):
        loss = ((ptl * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif lt == "bnpo":
        loss = (ptl * mask).sum() / mask.sum().clamp(min=1.0)
    elif lt == "dr_grpo":
        loss = (ptl * mask).sum() / (ptl.size(0) * s["max_completion_length"])
    elif lt in ("dapo", "cispo", "vespo"):
        loss = (ptl * mask).sum() / normaliser
    elif lt == "luspo":
        loss = (ptl * mask.sum(1, keepdim=True)).mean()
    policy_loss = None
    if s["entropy_coef"] != 0.0:
        policy_loss = float(loss)
        eff = mask if entropy_mask is None else mask * entropy_mask
        if lt in ("dapo", "cispo", "vespo"):
            bonus = (entropies * eff).sum() / normaliser
        else:
            bonus = (entropies * eff).sum() / eff.sum().clamp(min=1.0)
        loss = loss - s["entropy_coef"] * bonus

    def mmean(x):
        x = x.to(mask.dtype).expand_as(mask)
        return float((x * mask).sum() / mask.sum().clamp(min=1.0))

    low = (w < 1 - eps_low) & (a < 0)
    high = (w > 1 + eps_high) & (a > 0)
    metrics = {
        "kl": mmean(kl) if kl is not None else None,
        "clip_ratio_low_mean": mmean(low),
        "clip_ratio_high_mean": mmean(high),
        "clip_ratio_region_mean": mmean(low | high),
        "entropy": mmean(entropies),
        "cispo_clip_ratio": mmean((w > eps_high) & (a > 0)) if lt == "cispo" else None,
        "vespo_phi_seq_mean": mmean(phi) if phi is not None else None,
        "policy_loss": policy_loss,
    }
    extras.update({
        "importance_weights": w.expand_as(mask),
        "per_token_loss": ptl.expand_as(mask),
        "per_token_kl": kl if kl is not None else (torch.exp(ref_logp - logp) - (ref_logp - logp) - 1),
        "entropy_mask": entropy_mask,
        "off_policy_mask": off_policy_mask,
        "phi": phi,
        "metrics": metrics,
    })
    return loss, extras


# ---------------------------------------------------------------- numpy check
def grpo_loss_np(logp, logp_det, old_logp, ref_logp, mask, adv, s, entropies, sampling_logp, is_ratio):
    """Independent forward. logp_det stands for logp.detach(): held fixed by the finite differences."""
    eps_low, eps_high, beta, delta, lt = s["epsilon_low"], s["epsilon_high"], s["beta"], s["delta"], s["loss_type"]
    Bn, Tn = logp.shape
    a = np.repeat(adv[:, None], Tn, axis=1)
    ones = np.ones_like(logp)

    def seq_level(x):  # [B, T] log-ratios -> the sequence-level value broadcast over t
        v = (x * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
        return np.repeat(v[:, None], Tn, axis=1)

    lr = logp - old_logp
    lr_det = logp_det - old_logp
    lw = seq_level(lr) if s["importance_sampling_level"] == "sequence" else lr
    lw_det = seq_level(lr_det) if s["importance_sampling_level"] == "sequence" else lr_det
    w = np.exp(lw)
    if lt == "cispo":
        ptl = -np.minimum(np.exp(lw_det), eps_high) * a * logp
    elif lt == "sapo":
        tau = np.where(a > 0, s["sapo_temperature_pos"], s["sapo_temperature_neg"])
        ptl = -(4.0 / tau) / (1.0 + np.exp(-tau * (w - 1.0))) * a
    elif lt == "vespo":
        seq = (np.clip(lr_det, -20, 20) * mask).sum(1)
        if is_ratio is not None:
            with np.errstate(divide="ignore"):
                seq = seq + np.clip(np.log(is_ratio), LOG_1E8, 20).sum(1)
        logw = np.clip(seq, LOG_1E8, 20)
        k = np.where(adv >= 0, s["vespo_k_pos"], s["vespo_k_neg"])
        lam = np.maximum(np.where(adv >= 0, s["vespo_lambda_pos"], s["vespo_lambda_neg"]), 1e-4)
        phi = np.exp(lam + k * logw - lam * np.exp(logw))
        phi = np.where(np.isfinite(phi), phi, 0.0)
        ptl = -phi[:, None] * a * logp
    else:
        c1 = w if delta is None else np.minimum(w, delta)
        c2 = np.clip(w, 1 - eps_low, 1 + eps_high)
        ptl = -np.minimum(c1 * a, c2 * a)
    # Which factors are [B, T] (for luspo's mean over the broadcast shape).
    full = s["importance_sampling_level"] == "token" or lt in ("cispo", "vespo")
    if s["off_policy_mask_threshold"] is not None:
        samp = sampling_logp if s["use_sampling_logp"] else old_logp
        kl_seq = ((samp - logp_det) * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
        keep = (adv >= 0) | (kl_seq <= s["off_policy_mask_threshold"])
        ptl = ptl * keep[:, None]
    emask = None
    if s["top_entropy_quantile"] < 1.0:
        vals = entropies[mask > 0]
        if vals.size == 0:
            emask = np.zeros_like(mask)
        else:
            thr = np.quantile(vals, 1.0 - s["top_entropy_quantile"])
            emask = ((entropies >= thr) & (mask > 0)).astype(np.float64)
        ptl = ptl * emask
        full = True
    if is_ratio is not None and lt != "vespo":
        ptl = ptl * (is_ratio if is_ratio.shape[1] == Tn else np.repeat(is_ratio, Tn, axis=1))
        full = full or is_ratio.shape[1] == Tn
    if beta != 0.0:
        d = ref_logp - logp
        kl = np.exp(d) - d - 1
        if s["use_bias_correction_kl"]:
            kl = kl * w
        ptl = ptl + beta * kl
        full = True
    norm = max(float(s["num_items_in_batch"]), 1.0)
    if lt in ("grpo", "sapo"):
        loss = np.mean((ptl * mask).sum(1) / np.maximum(mask.sum(1), 1.0))
    elif lt == "bnpo":
        loss = (ptl * mask).sum() / max(mask.sum(), 1.0)
    elif lt == "dr_grpo":
        loss = (ptl * mask).sum() / (Bn * s["max_completion_length"])
    elif lt in ("dapo", "cispo", "vespo"):
        loss = (ptl * mask).sum() / norm
    elif lt == "luspo":
        scaled = ptl * mask.sum(1)[:, None] * ones
        loss = scaled.mean() if full else scaled[:, 0].mean()
    else:
        raise ValueError(lt)
    if s["entropy_coef"] != 0.0:
        eff = mask if emask is None else mask * emask
        den = norm if lt in ("dapo", "cispo", "vespo") else max(eff.sum(), 1.0)
        loss = loss - s["entropy_coef"] * (entropies * eff).sum() / den
    return loss


def settings(**kw):
    s = {
        "loss_type": "grpo",
        "epsilon_low": 0.2,
        "epsilon_high": 0.2,
        "beta": 0.04,
        "delta": None,
        "importance_sampling_level": "token",
        "max_completion_length": MAX_COMPLETION_LENGTH,
        "num_items_in_batch": NUM_ITEMS_IN_BATCH,
        "use_bias_correction_kl": False,
        "off_policy_mask_threshold": None,
        "use_sampling_logp": False,
        "top_entropy_quantile": 1.0,
        "entropy_coef": 0.0,
        "is_ratio": None,  # None, "token" ([B, T]) or "sequence" ([B, 1]): which input ratio
        "sapo_temperature_pos": 1.0,
        "sapo_temperature_neg": 1.05,
        "vespo_k_pos": 2.0,
        "vespo_lambda_pos": 3.0,
        "vespo_k_neg": 3.0,
        "vespo_lambda_neg": 2.0,
    }
    for k in kw:
        assert k in s, k
    s.update(kw)
    return s


def run_case(name, s, inputs_key, inp, single_update=False):
    logp_np = inp["logp"]
    old_np = logp_np.copy() if single_update else inp["old_logp"]
    is_np = None if s["is_ratio"] is None else inp[f"is_ratio_{s['is_ratio']}"]
    logp = torch.tensor(logp_np, requires_grad=True)
    ref = torch.tensor(inp["ref_logp"])
    mask = torch.tensor(inp["mask"])
    adv = torch.tensor(inp["advantages"])
    ent = torch.tensor(inp["entropies"])
    samp = torch.tensor(inp["sampling_logp"])
    is_t = None if is_np is None else torch.tensor(is_np)
    old_t = logp.detach() if single_update else torch.tensor(old_np)  # TRL: per_token_logps.detach()
    loss, ex = grpo_loss_torch(logp, old_t, ref, mask, adv, s, ent, samp, is_t)
    (grad,) = torch.autograd.grad(loss, logp)

    # ---- independent checks
    args = (old_np, inp["ref_logp"], inp["mask"], inp["advantages"], s, inp["entropies"], inp["sampling_logp"], is_np)
    ln = grpo_loss_np(logp_np, logp_np, *args)
    assert abs(ln - float(loss)) <= 1e-12 * max(1.0, abs(ln)), (name, ln, float(loss))
    h = 1e-6
    fd = np.zeros_like(logp_np)
    for i in range(logp_np.shape[0]):
        for t in range(logp_np.shape[1]):
            p = logp_np.copy(); p[i, t] += h
            m = logp_np.copy(); m[i, t] -= h
            # detached quantities stay at the unperturbed logp (logp_det, and old in single update)
            fd[i, t] = (grpo_loss_np(p, logp_np, *args) - grpo_loss_np(m, logp_np, *args)) / (2 * h)
    err = np.max(np.abs(fd - grad.numpy()))
    assert err < 1e-8, (name, err)
    padded_grad = grad.numpy()[inp["mask"] == 0]
    if s["loss_type"] == "luspo" and ex["per_token_loss_shape"][1] == T:
        ex["luspo_broadcast"] = True
    else:
        # masked-out tokens never get gradient (luspo's [B, T] mean is the exception: see docstring)
        assert np.all(padded_grad == 0.0), name
        ex["luspo_broadcast"] = False

    return {
        "name": name,
        "inputs": inputs_key,
        "single_update": single_update,
        "settings": s,
        "loss": float(loss),
        "grad_logp": tolist(grad),
        "metrics": ex["metrics"],
        "importance_weights": tolist(ex["importance_weights"]),
        "per_token_loss": tolist(ex["per_token_loss"]),
        "per_token_kl": tolist(ex["per_token_kl"]),
    }, ex


# ---------------------------------------------------------------- importance-sampling correction
def is_correction_torch(old, samp, mask, mode, clip_min, clip_max):
    diff = (old - samp) * mask
    seq = mode in ("sequence_mask", "sequence_truncate")
    r = torch.exp(diff.sum(-1, keepdim=True) if seq else diff)
    if mode in ("sequence_truncate", "token_truncate"):
        r = torch.clamp(r, min=clip_min, max=clip_max)
    elif mode in ("sequence_mask", "token_mask"):
        lo = clip_min if clip_min is not None else -math.inf
        hi = clip_max if clip_max is not None else math.inf
        r = r.masked_fill((r < lo) | (r > hi), 0.0)
    else:
        raise ValueError(mode)
    mb = mask.bool()
    delta = torch.abs(old - samp)[mb]
    zero = torch.tensor(0.0)
    flat = r.flatten() if seq else r[mb]
    metrics = {
        "sampling/sampling_logp_difference/mean": float(delta.mean() if delta.numel() else zero),
        "sampling/sampling_logp_difference/max": float(delta.max() if delta.numel() else zero),
        "sampling/importance_sampling_ratio/min": float(flat.min() if flat.numel() else zero),
        "sampling/importance_sampling_ratio/mean": float(flat.mean() if flat.numel() else zero),
        "sampling/importance_sampling_ratio/max": float(flat.max() if flat.numel() else zero),
    }
    return r, metrics


def is_correction_np(old, samp, mask, mode, clip_min, clip_max):
    seq = mode.startswith("sequence")
    d = (old - samp) * mask
    r = np.exp(d.sum(1, keepdims=True)) if seq else np.exp(d)
    lo = -np.inf if clip_min is None else clip_min
    hi = np.inf if clip_max is None else clip_max
    r = np.clip(r, lo, hi) if mode.endswith("truncate") else np.where((r < lo) | (r > hi), 0.0, r)
    sel = mask > 0
    dv = np.abs(old - samp)[sel]
    rv = r.ravel() if seq else r[sel]
    f = lambda v, fn: float(fn(v)) if v.size else 0.0
    return r, [f(dv, np.mean), f(dv, np.max), f(rv, np.min), f(rv, np.mean), f(rv, np.max)]


# ---------------------------------------------------------------- advantages (one reward function)
def group_advantages(rewards, g, scale):
    r = torch.tensor(rewards, dtype=torch.float64)
    grouped = r.view(-1, g)
    mean = grouped.mean(dim=1).repeat_interleave(g)
    gstd = grouped.std(dim=1).repeat_interleave(g)  # unbiased (N-1)
    adv = r - mean
    if scale == "group":
        adv = adv / (gstd + 1e-4)
    elif scale == "batch":
        adv = adv / (r.std() + 1e-4)
    elif scale != "none":
        raise ValueError(scale)
    gs = grouped.std(dim=1)
    zero = torch.isclose(gs, torch.zeros_like(gs))
    return {
        "group_mean": tolist(grouped.mean(dim=1)),
        "group_std": tolist(gs),
        "batch_std": float(r.std()),
        "advantages": tolist(adv),
        "frac_reward_zero_std": float(zero.double().mean()),
    }


def adv_np(rewards, g, scale):
    r = np.asarray(rewards, dtype=np.float64)
    gr = r.reshape(-1, g)
    mean = np.repeat(gr.mean(1), g)
    std = np.repeat(gr.std(1, ddof=1), g)
    if scale == "group":
        return (r - mean) / (std + 1e-4)
    if scale == "batch":
        return (r - mean) / (r.std(ddof=1) + 1e-4)
    return r - mean


# ---------------------------------------------------------------- reward aggregation (TRL, with NaN)
def nanstd_torch(x, dim=None, keepdim=False):
    """Bessel-corrected std of the non-NaN entries; NaN for fewer than 2 (TRL's nanstd)."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
    var = var * torch.where(count > 1, count / (count - 1), torch.full_like(count, math.nan))
    std = torch.sqrt(var)
    return std if keepdim else std.squeeze(dim)


def reward_advantages_torch(per_func, g, weights, aggregation, scale, eps=1e-4):
    rpf = torch.tensor(per_func, dtype=torch.float64).T  # [N, K]
    w = torch.tensor(weights, dtype=torch.float64)
    unscorable = torch.isnan(rpf).all(dim=1)
    if aggregation == "sum_then_normalize":
        r = (rpf * w.unsqueeze(0)).nansum(dim=1)
        r[unscorable] = math.nan
        mean = torch.nanmean(r.view(-1, g), dim=1).repeat_interleave(g)
        if scale in ("group", "none"):
            std = nanstd_torch(r.view(-1, g), dim=1).repeat_interleave(g) if g > 1 else torch.zeros_like(r)
        elif scale == "batch":
            std = nanstd_torch(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
        else:
            raise ValueError(scale)
        adv = r - mean
        if scale != "none":
            adv = adv / (std + eps)
    elif aggregation == "normalize_then_sum":
        k = rpf.shape[1]
        grouped = rpf.view(-1, g, k)
        mk = torch.nanmean(grouped, dim=1, keepdim=True)
        sk = nanstd_torch(grouped, dim=1, keepdim=True) if g > 1 else torch.zeros_like(mk)
        z = ((grouped - mk) / (sk + eps)).view(-1, k)
        r = (z * w.unsqueeze(0)).nansum(dim=1)
        r[unscorable] = math.nan
        std = nanstd_torch(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
        adv = (r - torch.nanmean(r)) / (std + eps)
    else:
        raise ValueError(aggregation)
    return torch.nan_to_num(adv, nan=0.0), r


def reward_advantages_np(per_func, g, weights, aggregation, scale, eps=1e-4):
    """Independent loop version: statistics over the finite values only."""
    rpf = np.array(per_func, dtype=np.float64)  # [K, N]
    k, n = rpf.shape

    def stats(v):
        f = v[~np.isnan(v)]
        mean = f.mean() if f.size else np.nan
        std = f.std(ddof=1) if f.size > 1 else np.nan
        return mean, std

    uns = np.all(np.isnan(rpf), axis=0)
    out = np.zeros(n)
    if aggregation == "sum_then_normalize":
        r = np.array([np.nan if uns[i] else sum(weights[j] * rpf[j, i] for j in range(k) if not np.isnan(rpf[j, i]))
                      for i in range(n)])
        bstd = stats(r)[1] if n > 1 else 0.0
        for s0 in range(0, n, g):
            mean, gstd = stats(r[s0:s0 + g])
            std = bstd if scale == "batch" else (gstd if g > 1 else 0.0)
            for i in range(s0, s0 + g):
                out[i] = (r[i] - mean) if scale == "none" else (r[i] - mean) / (std + eps)
    else:
        z = np.full((k, n), np.nan)
        for j in range(k):
            for s0 in range(0, n, g):
                mean, std = stats(rpf[j, s0:s0 + g])
                std = std if g > 1 else 0.0
                z[j, s0:s0 + g] = (rpf[j, s0:s0 + g] - mean) / (std + eps)
        r = np.array([np.nan if uns[i] else sum(weights[j] * z[j, i] for j in range(k) if not np.isnan(z[j, i]))
                      for i in range(n)])
        mean, std = stats(r)
        std = std if n > 1 else 0.0
        out = (r - mean) / (std + eps)
    return np.where(np.isnan(out), 0.0, out)


def zero_std_groups(combined, g):
    """promedical's zeroStdGroups: per group, nanstd is close to 0 (torch.isclose) or < 2 finite values."""
    out = []
    for s0 in range(0, len(combined), g):
        std = nanstd_torch(torch.tensor(combined[s0:s0 + g], dtype=torch.float64))
        out.append(bool(torch.isnan(std)) or bool(torch.isclose(std, torch.zeros_like(std))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    logp = rng.uniform(-3.0, -0.1, size=(B, T))
    old_logp = logp + rng.normal(size=(B, T)) * 0.3
    ref_logp = logp + rng.normal(size=(B, T)) * 0.5
    advantages = rng.normal(size=B)
    mask = prefix_mask(LENGTHS, T)
    mask0 = prefix_mask(LENGTHS_ZERO_ROW, T)
    # The new inputs come from a generator of their own, so the original draws (and cases) are unchanged.
    rng_new = np.random.default_rng(SEED + 50)
    entropies = rng_new.uniform(0.2, 3.0, size=(B, T))
    sampling_logp = old_logp + rng_new.normal(size=(B, T)) * 0.7
    sampling_logp[2, 1] = old_logp[2, 1] - 1.5  # a token ratio of e^1.5 > clip_max 3
    is_ratio_token = rng_new.uniform(0.4, 1.8, size=(B, T))
    is_ratio_token[0, 1] = 0.0  # a token_mask zero: vespo's log clamps it at log(1e-8)
    is_ratio_token[0, 2] = 0.05  # (which, with this one, takes row 0's sum below log(1e-8))
    is_ratio_sequence = rng_new.uniform(0.4, 1.8, size=(B, 1))

    base = dict(logp=logp, old_logp=old_logp, ref_logp=ref_logp, advantages=advantages,
                entropies=entropies, sampling_logp=sampling_logp,
                is_ratio_token=is_ratio_token, is_ratio_sequence=is_ratio_sequence)
    inp_main = dict(base, mask=mask)
    inp_zero = dict(base, mask=mask0)
    # vespo's clamps: a per-token log-ratio of +25 (row 1, A > 0) and of -22 (row 4) push the
    # sequence log-ratio past 20 and below log(1e-8).
    old_extreme = old_logp.copy()
    old_extreme[1, 0] = logp[1, 0] - 25.0
    old_extreme[1, 1] = logp[1, 1] - 3.0
    old_extreme[4, 2] = logp[4, 2] + 22.0
    inp_extreme = dict(inp_main, old_logp=old_extreme)
    all_inputs = {"main": inp_main, "zero_mask_row": inp_zero, "extreme": inp_extreme}

    cases, extras = [], {}

    def add(name, s, key="main", single_update=False):
        c, ex = run_case(name, s, key, all_inputs[key], single_update)
        cases.append(c)
        extras[name] = ex
        return c

    # --- the original cases (names and values unchanged)
    for lt in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        add(f"{lt}_token_beta0.04", settings(loss_type=lt))
    add("grpo_clip_higher_0.28_beta0", settings(epsilon_high=0.28, beta=0.0))
    # With seed 11 the largest masked weight is ~1.491, so delta=1.5 never bites
    # (loss/grad equal the plain grpo case); delta=1.3 clamps exactly one token
    # (row 2, t=3, w~1.470, A<0).
    add("grpo_delta1.5", settings(delta=1.5))
    add("grpo_delta1.3", settings(delta=1.3))
    add("grpo_gspo_sequence_beta0", settings(importance_sampling_level="sequence", beta=0.0))
    su = add("grpo_single_update_beta0", settings(beta=0.0), single_update=True)
    for lt in ["grpo", "bnpo"]:
        add(f"{lt}_zero_mask_row", settings(loss_type=lt), "zero_mask_row")

    # --- every loss type at both levels (luspo: sequence only), beta 0.04
    CISPO_CAP = 1.2  # bites on this data (ScaleRL's 5.0 never would: see cispo_token_cap5)
    for level in ["token", "sequence"]:
        for lt in ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]:
            if lt == "luspo" and level == "token":
                continue
            if lt in ("grpo", "bnpo", "dr_grpo", "dapo") and level == "token":
                continue  # the original cases above
            kw = dict(loss_type=lt, importance_sampling_level=level)
            if lt == "cispo":
                kw["epsilon_high"] = CISPO_CAP
            add(f"{lt}_{level}_beta0.04", settings(**kw))
    add("luspo_sequence_beta0", settings(loss_type="luspo", importance_sampling_level="sequence", beta=0.0))
    add("luspo_zero_mask_row", settings(loss_type="luspo", importance_sampling_level="sequence", beta=0.0), "zero_mask_row")
    add("cispo_token_cap5", settings(loss_type="cispo", epsilon_high=5.0, beta=0.0))
    add("sapo_token_temperatures", settings(loss_type="sapo", sapo_temperature_pos=0.5, sapo_temperature_neg=2.0, beta=0.0))
    add("vespo_token_k_lambda", settings(loss_type="vespo", vespo_k_pos=1.5, vespo_lambda_pos=2.5,
                                         vespo_k_neg=4.0, vespo_lambda_neg=1.0, beta=0.0))
    add("vespo_extreme_clamps", settings(loss_type="vespo", beta=0.0, is_ratio="token"), "extreme")

    # --- bias-corrected KL
    add("grpo_bias_kl_token", settings(use_bias_correction_kl=True))
    add("grpo_bias_kl_sequence", settings(use_bias_correction_kl=True, importance_sampling_level="sequence"))
    add("grpo_bias_kl_single_update", settings(use_bias_correction_kl=True), single_update=True)
    add("dapo_bias_kl_token", settings(loss_type="dapo", use_bias_correction_kl=True))

    # --- off-policy sequence mask
    OPM = 0.2
    add("grpo_off_policy_sampling", settings(off_policy_mask_threshold=OPM, use_sampling_logp=True))
    add("dapo_off_policy_old", settings(loss_type="dapo", off_policy_mask_threshold=0.05, beta=0.0))

    # --- high-entropy token mask
    add("grpo_top_entropy_0.4", settings(top_entropy_quantile=0.4))
    add("dapo_top_entropy_0.4", settings(loss_type="dapo", top_entropy_quantile=0.4))
    add("grpo_top_entropy_0", settings(top_entropy_quantile=0.0, beta=0.0))
    add("luspo_top_entropy_0.4", settings(loss_type="luspo", importance_sampling_level="sequence",
                                          top_entropy_quantile=0.4, beta=0.0))
    add("bnpo_top_entropy_zero_mask_row", settings(loss_type="bnpo", top_entropy_quantile=0.4), "zero_mask_row")

    # --- entropy bonus
    add("dapo_entropy_coef0.01", settings(loss_type="dapo", entropy_coef=0.01))
    add("grpo_entropy_coef0.01", settings(entropy_coef=0.01))
    add("dapo_top_entropy_entropy_coef", settings(loss_type="dapo", top_entropy_quantile=0.4, entropy_coef=0.05))
    add("grpo_top_entropy_entropy_coef", settings(top_entropy_quantile=0.4, entropy_coef=0.05))

    # --- sampler importance-sampling ratio
    add("grpo_is_ratio_token", settings(is_ratio="token"))
    add("grpo_is_ratio_sequence", settings(is_ratio="sequence"))
    add("dapo_is_ratio_sequence", settings(loss_type="dapo", is_ratio="sequence", beta=0.0))
    add("sapo_is_ratio_token", settings(loss_type="sapo", is_ratio="token", beta=0.0))
    add("luspo_is_ratio_token", settings(loss_type="luspo", importance_sampling_level="sequence", is_ratio="token", beta=0.0))
    add("luspo_is_ratio_sequence", settings(loss_type="luspo", importance_sampling_level="sequence", is_ratio="sequence", beta=0.0))
    add("vespo_is_ratio_token", settings(loss_type="vespo", is_ratio="token"))
    add("vespo_is_ratio_sequence", settings(loss_type="vespo", is_ratio="sequence", beta=0.0))

    # --- everything at once (TRL's order: off-policy mask, entropy mask, IS ratio, + beta kl; bonus)
    add("dapo_all_options", settings(loss_type="dapo", off_policy_mask_threshold=OPM, use_sampling_logp=True,
                                     top_entropy_quantile=0.4, is_ratio="token", use_bias_correction_kl=True,
                                     entropy_coef=0.02, epsilon_high=0.28))

    by = {c["name"]: c for c in cases}

    # --- sanity checks on the single-update case: w == 1, loss == -mean_i(A_i * [len_i>0])
    assert all(v == 1.0 for row in su["importance_weights"] for v in row)
    exp_su = -np.mean([advantages[i] if LENGTHS[i] > 0 else 0.0 for i in range(B)])
    assert abs(su["loss"] - exp_su) < 1e-14, (su["loss"], exp_su)
    # coverage: the main inputs exercise both clip sides and the delta clamp
    m = by["grpo_token_beta0.04"]["metrics"]
    assert m["clip_ratio_low_mean"] > 0 and m["clip_ratio_high_mean"] > 0, m
    wt = np.array(by["grpo_delta1.5"]["importance_weights"])
    assert not np.any((wt > 1.5) & (mask > 0))
    assert by["grpo_delta1.5"]["loss"] == by["grpo_token_beta0.04"]["loss"]
    assert by["grpo_delta1.5"]["grad_logp"] == by["grpo_token_beta0.04"]["grad_logp"]
    assert np.sum((wt > 1.3) & (mask > 0) & (advantages[:, None] < 0)) == 1
    assert by["grpo_delta1.3"]["loss"] != by["grpo_token_beta0.04"]["loss"]
    assert by["grpo_clip_higher_0.28_beta0"]["metrics"]["clip_ratio_high_mean"] > 0

    # --- each new case exercises what its name says
    A_pos, A_neg = advantages > 0, advantages < 0
    assert A_pos.any() and A_neg.any()
    for name in ["cispo_token_beta0.04", "cispo_sequence_beta0.04"]:
        assert by[name]["metrics"]["cispo_clip_ratio"] > 0, name  # the cap bites
    assert by["cispo_token_cap5"]["metrics"]["cispo_clip_ratio"] == 0.0
    w_main = np.exp(logp - old_logp)
    assert abs(by["cispo_token_cap5"]["loss"] - float(-(w_main * advantages[:, None] * logp * mask).sum() / NUM_ITEMS_IN_BATCH)) < 1e-12
    assert by["sapo_token_temperatures"]["loss"] != by["sapo_token_beta0.04"]["loss"]
    # luspo: [B, 1] without a [B, T] factor, broadcast (padded positions count) with one
    assert not extras["luspo_sequence_beta0"]["luspo_broadcast"]
    assert not extras["luspo_is_ratio_sequence"]["luspo_broadcast"]
    for name in ["luspo_sequence_beta0.04", "luspo_is_ratio_token", "luspo_top_entropy_0.4"]:
        assert extras[name]["luspo_broadcast"], name
    g_lb = np.array(by["luspo_sequence_beta0.04"]["grad_logp"])
    assert np.any(g_lb[mask == 0] != 0.0)  # the padded kl terms reach the gradient, as in TRL
    # vespo: the clamps of the extreme inputs
    vx = extras["vespo_extreme_clamps"]
    lr_ext = logp - old_extreme
    assert lr_ext[1, 0] > 20 and lr_ext[4, 2] < -20
    lw = vx["log_w"].squeeze(1).numpy()
    seq = vx["seq_log_ratio"].squeeze(1).numpy()
    assert seq[1] > 20 and lw[1] == 20.0 and seq[4] < LOG_1E8 and lw[4] == LOG_1E8, (seq, lw)
    assert seq[0] < LOG_1E8  # the zero IS ratio of row 0
    assert float(vx["phi"][1]) == 0.0  # exp of a hugely negative log phi
    assert all(by[n]["metrics"]["vespo_phi_seq_mean"] > 0 for n in by if n.startswith("vespo"))
    assert by["vespo_is_ratio_token"]["loss"] != by["vespo_token_beta0.04"]["loss"]
    # the IS ratio enters vespo's Gamma weight, not the per-token product
    ptl_v = np.array(by["vespo_is_ratio_token"]["per_token_loss"])
    assert not np.allclose(ptl_v, np.array(by["vespo_token_beta0.04"]["per_token_loss"]) * is_ratio_token)
    # bias-corrected KL differs from the plain one, and in the single update its gradient carries beta*kl
    assert by["grpo_bias_kl_token"]["metrics"]["kl"] != by["grpo_token_beta0.04"]["metrics"]["kl"]
    su_b = by["grpo_bias_kl_single_update"]
    assert su_b["metrics"]["kl"] == by["grpo_token_beta0.04"]["metrics"]["kl"]  # coef_1 == 1
    assert su_b["grad_logp"] != run_case("tmp", settings(), "main", inp_main, True)[0]["grad_logp"]
    # off-policy mask: drops >= 1 sequence (A < 0, mean kl > threshold), keeps a high-kl A >= 0 one
    for name, thr in [("grpo_off_policy_sampling", OPM), ("dapo_off_policy_old", 0.05)]:
        ex = extras[name]
        opm = ex["off_policy_mask"].squeeze(1).numpy()
        kl_seq = ex["off_policy_mean_kl"].numpy()
        assert np.sum(opm == 0) >= 1, (name, kl_seq)
        assert np.all((opm == 0) == ((advantages < 0) & (kl_seq > thr)))
        assert np.min(np.abs(kl_seq - thr)) > 1e-4, (name, kl_seq)  # float32-safe
        assert np.any((advantages >= 0) & (kl_seq > thr)), (name, kl_seq)
    # top-entropy mask: drops >= 1 and keeps >= 1 active token; the threshold is float32-safe
    for name in ["grpo_top_entropy_0.4", "dapo_top_entropy_entropy_coef", "bnpo_top_entropy_zero_mask_row"]:
        ex = extras[name]
        em = ex["entropy_mask"].numpy()
        mk = all_inputs[by[name]["inputs"]]["mask"]
        assert 0 < em.sum() < mk.sum(), name
        thr = ex["entropy_threshold"]
        gaps = np.abs(entropies[mk > 0] - thr)
        rank = (1.0 - 0.4) * (int(mk.sum()) - 1)
        if name.endswith("zero_mask_row"):
            # 16 active tokens: rank 0.6 * 15 = 9 is an order statistic itself, kept (>=)
            assert rank == 9.0 and np.sum(gaps == 0) == 1 and np.sort(gaps)[1] > 1e-4, (name, thr)
        else:
            # 20 active tokens: rank 11.4, a real interpolation; float32-safe distance to every entry
            assert rank % 1 != 0 and np.min(gaps) > 1e-4, (name, thr)
    em0 = extras["grpo_top_entropy_0"]["entropy_mask"].numpy()
    assert em0.sum() == 1 and entropies[em0.astype(bool)][0] == entropies[mask > 0].max()
    for name in ["dapo_entropy_coef0.01", "grpo_entropy_coef0.01", "dapo_top_entropy_entropy_coef",
                 "grpo_top_entropy_entropy_coef", "dapo_all_options"]:
        mt = by[name]["metrics"]
        assert mt["policy_loss"] is not None and mt["policy_loss"] != by[name]["loss"], name
    assert abs(by["dapo_entropy_coef0.01"]["metrics"]["policy_loss"] - by["dapo_token_beta0.04"]["loss"]) < 1e-15
    assert abs(by["grpo_entropy_coef0.01"]["metrics"]["policy_loss"] - by["grpo_token_beta0.04"]["loss"]) < 1e-15
    assert by["grpo_is_ratio_token"]["loss"] != by["grpo_token_beta0.04"]["loss"]
    assert by["grpo_is_ratio_sequence"]["loss"] != by["grpo_token_beta0.04"]["loss"]
    ex = extras["dapo_all_options"]
    assert np.sum(ex["off_policy_mask"].numpy() == 0) >= 1 and 0 < ex["entropy_mask"].numpy().sum() < mask.sum()

    # ---------------------------------------------------------------- importance-sampling correction
    is_cases = []
    mask_empty = np.zeros((B, T))
    is_inputs = {"main": mask, "empty_mask": mask_empty}
    specs = []
    for mode in ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]:
        specs.append((f"{mode}_default", mode, None, 3.0, "main"))
        specs.append((f"{mode}_min0.5", mode, 0.5, 3.0, "main"))
    specs.append(("token_mask_min0.8_no_max", "token_mask", 0.8, None, "main"))
    specs.append(("sequence_truncate_min0.8_no_max", "sequence_truncate", 0.8, None, "main"))
    specs.append(("token_mask_empty_mask", "token_mask", None, 3.0, "empty_mask"))
    specs.append(("sequence_mask_empty_mask", "sequence_mask", None, 3.0, "empty_mask"))
    for name, mode, cmin, cmax, mkey in specs:
        mk = is_inputs[mkey]
        r, met = is_correction_torch(torch.tensor(old_logp), torch.tensor(sampling_logp), torch.tensor(mk), mode, cmin, cmax)
        rn, metn = is_correction_np(old_logp, sampling_logp, mk, mode, cmin, cmax)
        assert np.max(np.abs(rn - r.numpy())) < 1e-12, name
        assert np.max(np.abs(np.array(metn) - np.array(list(met.values())))) < 1e-12, name
        is_cases.append({"name": name, "mask": mkey, "mode": mode, "clip_min": cmin, "clip_max": cmax,
                         "ratio": tolist(r), "metrics": met})
    # the raw ratios really fall outside the clip ranges, on both sides
    raw_tok = np.exp((old_logp - sampling_logp) * mask)[mask > 0]
    raw_seq = np.exp(((old_logp - sampling_logp) * mask).sum(1))
    assert np.any(raw_tok > 3.0) and np.any(raw_tok < 0.5), raw_tok
    assert np.any(raw_seq > 3.0) and np.any(raw_seq < 0.5), raw_seq
    isc = {c["name"]: c for c in is_cases}
    assert isc["token_mask_default"]["metrics"]["sampling/importance_sampling_ratio/min"] == 0.0
    assert isc["token_truncate_default"]["metrics"]["sampling/importance_sampling_ratio/max"] == 3.0
    assert isc["sequence_truncate_min0.5"]["metrics"]["sampling/importance_sampling_ratio/min"] == 0.5
    assert all(v == 0.0 for v in isc["token_mask_empty_mask"]["metrics"].values())
    assert isc["sequence_mask_empty_mask"]["metrics"]["sampling/importance_sampling_ratio/mean"] == 1.0

    # ---------------------------------------------------------------- advantages (one function)
    adv_cases = []
    lit = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    for scale in ["group", "batch", "none"]:
        c = {"name": f"literature_{scale}", "rewards": lit, "num_generations": 4, "scale_rewards": scale}
        c.update(group_advantages(lit, 4, scale))
        adv_cases.append(c)
    a = {c["scale_rewards"]: np.array(c["advantages"]) for c in adv_cases}
    sign = np.array([1, -1, -1, 1, 0, 0, 0, 0], dtype=np.float64)
    assert np.allclose(a["group"], sign * 0.865875, atol=1e-6), a["group"]
    assert np.allclose(a["none"], sign * 0.5, atol=1e-15), a["none"]
    assert np.allclose(a["batch"], sign * 1.322526, atol=1e-6), a["batch"]
    assert adv_cases[0]["frac_reward_zero_std"] == 0.5

    r12 = rng.uniform(0.0, 1.0, size=12)
    r12[8:12] = 0.7  # last group constant -> exercises zero std
    r12 = r12.tolist()
    for scale in ["group", "batch", "none"]:
        c = {"name": f"random_{scale}", "rewards": r12, "num_generations": 4, "scale_rewards": scale}
        c.update(group_advantages(r12, 4, scale))
        adv_cases.append(c)
    for c in adv_cases:
        ref = adv_np(c["rewards"], c["num_generations"], c["scale_rewards"])
        assert np.max(np.abs(ref - np.array(c["advantages"]))) < 1e-12, c["name"]
    assert abs(adv_cases[3]["frac_reward_zero_std"] - 1.0 / 3.0) < 1e-15

    # ---------------------------------------------------------------- reward aggregation with NaN
    nan = math.nan
    rng2 = np.random.default_rng(SEED + 100)
    K, N, GR = 3, 16, 4
    rpf = rng2.uniform(-1.0, 2.0, size=(K, N))
    rpf[0, [2, 13]] = nan                 # function 0 did not score completions 2 and 13
    rpf[1, [0, 2, 3]] = nan               # function 1 scores only completion 1 of group 0
    rpf[2, [6, 7]] = nan
    rpf[:, [9, 10, 11]] = nan             # group 2: completions 9-11 unscored by every function
    rpf[:, 5] = nan                       # a completion no function scored, in a group with 3 scored
    rpf[0, 12:16] = 0.0                   # group 3: every function constant, so the sum is too
    rpf[1, 12:16] = 0.5                   # (completion 13 lacks function 0, whose reward is 0 anyway)
    rpf[2, 12:16] = -0.5
    rpf[0, 13] = nan
    weights = [1.0, 0.5, 2.0]
    per_func = rpf.tolist()
    rw_cases = []

    def add_rw(name, pf, g, wts, agg, scale):
        adv_t, comb_t = reward_advantages_torch(pf, g, wts, agg, scale)
        adv_n = reward_advantages_np(pf, g, wts, agg, scale)
        assert np.max(np.abs(adv_n - adv_t.numpy())) < 1e-12, name
        combined = np.array([nan if np.all(np.isnan(np.array(pf)[:, i])) else
                             sum(wts[k] * pf[k][i] for k in range(len(pf)) if not math.isnan(pf[k][i]))
                             for i in range(len(pf[0]))])
        zs = zero_std_groups(combined.tolist(), g)
        rw_cases.append({
            "name": name, "rewards_per_func": [nan_to_null(f) for f in pf], "num_generations": g,
            "weights": wts, "aggregation": agg, "scale_rewards": scale,
            "advantages": tolist(adv_t), "combined_rewards": nan_to_null(combined.tolist()),
            "aggregated_rewards": nan_to_null(tolist(comb_t)),
            "zero_std_groups": zs, "frac_zero_std": sum(zs) / len(zs),
        })

    for agg in ["sum_then_normalize", "normalize_then_sum"]:
        for scale in ["group", "batch", "none"]:
            add_rw(f"multi_{agg}_{scale}", per_func, GR, weights, agg, scale)
    add_rw("multi_sum_then_normalize_group_G1", per_func, 1, weights, "sum_then_normalize", "group")
    add_rw("multi_sum_then_normalize_batch_G1", per_func, 1, weights, "sum_then_normalize", "batch")
    add_rw("multi_normalize_then_sum_G1", per_func, 1, weights, "normalize_then_sum", "group")
    single = rpf[0].copy()
    single[[4, 6, 7]] = nan                # group 1 keeps one finite reward (completion 5 is NaN too)
    for scale in ["group", "batch", "none"]:
        add_rw(f"single_nan_{scale}", [single.tolist()], GR, [1.0], "sum_then_normalize", scale)
    rwc = {c["name"]: c for c in rw_cases}
    # coverage of the NaN situations the cases claim
    arr = np.array(per_func)
    assert np.any(np.isnan(arr[0])) and not np.all(np.isnan(arr[0]))           # a function missing on some
    assert np.any(np.all(np.isnan(arr), axis=0))                              # a completion no function scored
    comb = np.array([np.nan if v is None else v for v in rwc["multi_sum_then_normalize_group"]["combined_rewards"]])
    finite_per_group = (~np.isnan(comb.reshape(-1, GR))).sum(1)
    assert 1 in finite_per_group, finite_per_group                            # a group with one finite reward
    assert np.sum(~np.isnan(arr[1, 0:4])) == 1                                # ...and one for a function (GDPO)
    assert rwc["multi_sum_then_normalize_group"]["zero_std_groups"] == [False, False, True, True]
    for name in ["multi_sum_then_normalize_group", "multi_normalize_then_sum_group", "single_nan_group"]:
        adv_c = np.array(rwc[name]["advantages"])
        assert np.all(adv_c[np.all(np.isnan(arr), axis=0)] == 0.0), name       # unscored -> 0
    assert np.all(np.array(rwc["single_nan_group"]["advantages"])[4:8] == 0.0)  # one finite -> NaN std -> 0
    assert np.array(rwc["single_nan_none"]["advantages"])[5] == 0.0            # R - mean = 0 for the lone one
    # normalize_then_sum ignores scale_rewards, as TRL does
    assert rwc["multi_normalize_then_sum_group"]["advantages"] == rwc["multi_normalize_then_sum_none"]["advantages"]
    assert rwc["multi_sum_then_normalize_group"]["advantages"] != rwc["multi_sum_then_normalize_batch"]["advantages"]

    # ---------------------------------------------------------------- kl
    def kl_all(lp, rf):
        lp = torch.tensor(lp, dtype=torch.float64)
        rf = torch.tensor(rf, dtype=torch.float64)
        d = rf - lp
        return (lp - rf), (lp - rf) ** 2 / 2, torch.exp(d) - d - 1

    k1, k2, k3 = kl_all(-1.0, -1.5)
    assert abs(float(k1) - 0.5) < 1e-15 and abs(float(k2) - 0.125) < 1e-15
    assert abs(float(k3) - 0.106531) < 1e-6
    assert abs(float(k3) - (math.exp(-0.5) - 0.5)) < 1e-15
    kl_lp = rng.uniform(-4.0, -0.05, size=10)
    kl_ref = kl_lp + rng.normal(size=10) * 0.7
    rk1, rk2, rk3 = kl_all(kl_lp, kl_ref)
    assert np.all(rk3.numpy() >= 0)

    def inputs_json(inp, lengths):
        return {
            "logp": tolist(inp["logp"]), "old_logp": tolist(inp["old_logp"]), "ref_logp": tolist(inp["ref_logp"]),
            "mask": tolist(inp["mask"]), "advantages": tolist(inp["advantages"]), "lengths": lengths,
            "entropies": tolist(inp["entropies"]), "sampling_logp": tolist(inp["sampling_logp"]),
            "is_ratio_token": tolist(inp["is_ratio_token"]), "is_ratio_sequence": tolist(inp["is_ratio_sequence"]),
        }

    out = {
        "meta": {
            "generator": "test/reference/grpo_reference.py",
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "dtype": "float64",
            "seed": SEED,
            "encoding": "arrays are nested lists of float64 (row-major [B][T]); null means not applicable, "
                        "and a NaN reward (a function that did not score a completion) in rewards_per_func",
        },
        "loss": {
            "B": B, "G": G, "T": T,
            "inputs": {
                "main": inputs_json(inp_main, LENGTHS),
                "zero_mask_row": inputs_json(inp_zero, LENGTHS_ZERO_ROW),
                "extreme": inputs_json(inp_extreme, LENGTHS),
            },
            "cases": cases,
        },
        "importance_sampling": {
            "inputs": {"old_logp": tolist(old_logp), "sampling_logp": tolist(sampling_logp),
                       "masks": {k: tolist(v) for k, v in is_inputs.items()}},
            "cases": is_cases,
        },
        "advantages": {"epsilon": 1e-4, "cases": adv_cases},
        "reward_advantages": {"epsilon": 1e-4, "cases": rw_cases},
        "kl": {
            "literature": {"logp": -1.0, "ref_logp": -1.5,
                           "k1": float(k1), "k2": float(k2), "k3": float(k3)},
            "random": {"logp": tolist(kl_lp), "ref_logp": tolist(kl_ref),
                       "k1": tolist(rk1), "k2": tolist(rk2), "k3": tolist(rk3)},
        },
    }
    out_path = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(cases)} loss cases, {len(is_cases)} importance-sampling cases, "
          f"{len(adv_cases)} advantage cases, {len(rw_cases)} reward-aggregation cases")


if __name__ == "__main__":
    sys.exit(main())
