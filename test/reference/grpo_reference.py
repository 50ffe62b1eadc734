#!/usr/bin/python3
"""Independent PyTorch reference fixtures for promedical's GRPO math.

Re-implements (no TRL import) the loss of Hugging Face TRL's
GRPOTrainer._compute_loss (v1.x semantics), the group-relative advantage
computation and the k1/k2/k3 KL estimators, in torch float64 with autograd.

Requirements: Debian's /usr/bin/python3 with numpy (1.24) and torch (1.13).

Usage:  /usr/bin/python3 test/reference/grpo_reference.py [--out PATH]
        (default PATH: test/fixtures/grpo.json next to this directory)

After generating, every loss case is re-derived in plain numpy (forward) and
its gradient checked by central finite differences; literature values are
asserted. The script exits non-zero on any mismatch.

Loss math (per case)
--------------------
  log_ratio = logp - old_logp                         (old_logp constant)
  token:    log_w = log_ratio
  sequence: log_w[i] = sum_t(log_ratio*mask)[i] / clamp(sum_t mask[i], 1)
  w = exp(log_w); coef_1 = w (clamped to max=delta if delta is set)
  coef_2 = clamp(w, 1-eps_low, 1+eps_high)
  per_token_loss = -min(coef_1*A[:,None], coef_2*A[:,None])
  per_token_kl = exp(ref-logp) - (ref-logp) - 1;  += beta*kl if beta != 0
  grpo:    mean_i( sum_t(l*m)_i / clamp(sum_t m_i, 1) )
  bnpo:    sum(l*m) / clamp(sum(m), 1)
  dr_grpo: sum(l*m) / (B * max_completion_length)      (max_completion_length=8)
  dapo:    sum(l*m) / clamp(num_items_in_batch, 1)     (num_items_in_batch=40)
  metrics: masked means sum(x*m)/clamp(sum(m),1) of kl (null if beta == 0),
           is_low  = (w < 1-eps_low)  & (A<0),
           is_high = (w > 1+eps_high) & (A>0),  region = low | high
           (w = un-delta-clamped coef_1; broadcast over t for sequence level)
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


def tolist(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float64).tolist()
    return float(x)


def prefix_mask(lengths, t):
    m = np.zeros((len(lengths), t))
    for i, n in enumerate(lengths):
        m[i, :n] = 1.0
    return m


# ---------------------------------------------------------------- torch loss
def grpo_loss_torch(logp, old_logp, ref_logp, mask, adv, s):
    """logp requires grad. Returns (loss, extras dict of tensors)."""
    eps_low, eps_high = s["epsilon_low"], s["epsilon_high"]
    beta, delta = s["beta"], s["delta"]
    log_ratio = logp - old_logp
    if s["importance_sampling_level"] == "token":
        log_w = log_ratio
    elif s["importance_sampling_level"] == "sequence":
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        raise ValueError(s["importance_sampling_level"])
    coef_1 = torch.exp(log_w)
    w = coef_1
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    if delta is not None:
        coef_1 = torch.clamp(coef_1, max=delta)
    a = adv.unsqueeze(1)
    ptl = -torch.min(coef_1 * a, coef_2 * a)
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1
    if beta != 0.0:
        ptl = ptl + beta * kl
    lt = s["loss_type"]
    if lt == "grpo":
        loss = ((ptl * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif lt == "bnpo":
        loss = (ptl * mask).sum() / mask.sum().clamp(min=1.0)
    elif lt == "dr_grpo":
        loss = (ptl * mask).sum() / (ptl.size(0) * s["max_completion_length"])
    elif lt == "dapo":
        loss = (ptl * mask).sum() / max(float(s["num_items_in_batch"]), 1.0)
    else:
        raise ValueError(lt)

    def mmean(x):
        x = x.to(mask.dtype).expand_as(mask)
        return (x * mask).sum() / mask.sum().clamp(min=1.0)

    low = (w < 1 - eps_low) & (a < 0)
    high = (w > 1 + eps_high) & (a > 0)
    region = low | high
    metrics = {
        "kl": float(mmean(kl)) if beta != 0.0 else None,
        "clip_ratio_low_mean": float(mmean(low)),
        "clip_ratio_high_mean": float(mmean(high)),
        "clip_ratio_region_mean": float(mmean(region)),
    }
    extras = {
        "importance_weights": w.expand_as(mask),
        "per_token_loss": ptl,
        "per_token_kl": kl,
        "metrics": metrics,
    }
    return loss, extras


# ---------------------------------------------------------------- numpy check
def grpo_loss_np(logp, old_logp, ref_logp, mask, adv, s):
    eps_low, eps_high, beta, delta = s["epsilon_low"], s["epsilon_high"], s["beta"], s["delta"]
    lr = logp - old_logp
    if s["importance_sampling_level"] == "sequence":
        lw = (lr * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
        lw = np.repeat(lw[:, None], logp.shape[1], axis=1)
    else:
        lw = lr
    w = np.exp(lw)
    c1 = w if delta is None else np.minimum(w, delta)
    c2 = np.clip(w, 1 - eps_low, 1 + eps_high)
    a = adv[:, None]
    ptl = -np.minimum(c1 * a, c2 * a)
    d = ref_logp - logp
    kl = np.exp(d) - d - 1
    if beta != 0.0:
        ptl = ptl + beta * kl
    lt = s["loss_type"]
    if lt == "grpo":
        return np.mean((ptl * mask).sum(1) / np.maximum(mask.sum(1), 1.0))
    if lt == "bnpo":
        return (ptl * mask).sum() / max(mask.sum(), 1.0)
    if lt == "dr_grpo":
        return (ptl * mask).sum() / (logp.shape[0] * s["max_completion_length"])
    if lt == "dapo":
        return (ptl * mask).sum() / max(float(s["num_items_in_batch"]), 1.0)
    raise ValueError(lt)


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
    }
    s.update(kw)
    return s


def run_case(name, s, inputs_key, inp, single_update=False):
    logp_np = inp["logp"]
    old_np = logp_np.copy() if single_update else inp["old_logp"]
    logp = torch.tensor(logp_np, requires_grad=True)
    old = torch.tensor(old_np)
    ref = torch.tensor(inp["ref_logp"])
    mask = torch.tensor(inp["mask"])
    adv = torch.tensor(inp["advantages"])
    if single_update:
        old_t = logp.detach()  # TRL: old_per_token_logps = per_token_logps.detach()
    else:
        old_t = old
    loss, ex = grpo_loss_torch(logp, old_t, ref, mask, adv, s)
    (grad,) = torch.autograd.grad(loss, logp)

    # ---- independent checks
    ln = grpo_loss_np(logp_np, old_np, inp["ref_logp"], inp["mask"], inp["advantages"], s)
    assert abs(ln - float(loss)) <= 1e-12, (name, ln, float(loss))
    h = 1e-6
    fd = np.zeros_like(logp_np)
    for i in range(logp_np.shape[0]):
        for t in range(logp_np.shape[1]):
            p = logp_np.copy(); p[i, t] += h
            m = logp_np.copy(); m[i, t] -= h
            # old_logp is a constant: in the single-update case it stays fixed at logp
            fd[i, t] = (grpo_loss_np(p, old_np, inp["ref_logp"], inp["mask"], inp["advantages"], s)
                        - grpo_loss_np(m, old_np, inp["ref_logp"], inp["mask"], inp["advantages"], s)) / (2 * h)
    err = np.max(np.abs(fd - grad.numpy()))
    assert err < 1e-8, (name, err)
    # masked-out tokens never get gradient
    assert np.all(grad.numpy()[inp["mask"] == 0] == 0.0), name

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
    }


# ---------------------------------------------------------------- advantages
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

    base = dict(logp=logp, old_logp=old_logp, ref_logp=ref_logp, advantages=advantages)
    inp_main = dict(base, mask=mask)
    inp_zero = dict(base, mask=mask0)

    cases = []
    for lt in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        cases.append(run_case(f"{lt}_token_beta0.04", settings(loss_type=lt), "main", inp_main))
    cases.append(run_case("grpo_clip_higher_0.28_beta0",
                          settings(epsilon_high=0.28, beta=0.0), "main", inp_main))
    # With seed 11 the largest masked weight is ~1.491, so delta=1.5 never bites
    # (loss/grad equal the plain grpo case); delta=1.3 clamps exactly one token
    # (row 2, t=3, w~1.470, A<0).
    cases.append(run_case("grpo_delta1.5", settings(delta=1.5), "main", inp_main))
    cases.append(run_case("grpo_delta1.3", settings(delta=1.3), "main", inp_main))
    cases.append(run_case("grpo_gspo_sequence_beta0",
                          settings(importance_sampling_level="sequence", beta=0.0), "main", inp_main))
    su = run_case("grpo_single_update_beta0", settings(beta=0.0), "main", inp_main, single_update=True)
    cases.append(su)
    for lt in ["grpo", "bnpo"]:
        cases.append(run_case(f"{lt}_zero_mask_row", settings(loss_type=lt), "zero_mask_row", inp_zero))

    # --- sanity checks on the single-update case: w == 1, loss == -mean_i(A_i * [len_i>0])
    assert all(v == 1.0 for row in su["importance_weights"] for v in row)
    exp_su = -np.mean([advantages[i] if LENGTHS[i] > 0 else 0.0 for i in range(B)])
    assert abs(su["loss"] - exp_su) < 1e-14, (su["loss"], exp_su)
    # coverage: the main inputs exercise both clip sides and the delta clamp
    by = {c["name"]: c for c in cases}
    m = by["grpo_token_beta0.04"]["metrics"]
    assert m["clip_ratio_low_mean"] > 0 and m["clip_ratio_high_mean"] > 0, m
    wt = np.array(by["grpo_delta1.5"]["importance_weights"])
    assert not np.any((wt > 1.5) & (mask > 0))
    assert by["grpo_delta1.5"]["loss"] == by["grpo_token_beta0.04"]["loss"]
    assert by["grpo_delta1.5"]["grad_logp"] == by["grpo_token_beta0.04"]["grad_logp"]
    assert np.sum((wt > 1.3) & (mask > 0) & (advantages[:, None] < 0)) == 1
    assert by["grpo_delta1.3"]["loss"] != by["grpo_token_beta0.04"]["loss"]
    assert by["grpo_clip_higher_0.28_beta0"]["metrics"]["clip_ratio_high_mean"] > 0

    # ---------------------------------------------------------------- advantages
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

    out = {
        "meta": {
            "generator": "test/reference/grpo_reference.py",
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "dtype": "float64",
            "seed": SEED,
            "encoding": "arrays are nested lists of float64 (row-major [B][T]); null means not applicable",
        },
        "loss": {
            "B": B, "G": G, "T": T,
            "inputs": {
                "main": {
                    "logp": tolist(logp), "old_logp": tolist(old_logp), "ref_logp": tolist(ref_logp),
                    "mask": tolist(mask), "advantages": tolist(advantages), "lengths": LENGTHS,
                },
                "zero_mask_row": {
                    "logp": tolist(logp), "old_logp": tolist(old_logp), "ref_logp": tolist(ref_logp),
                    "mask": tolist(mask0), "advantages": tolist(advantages), "lengths": LENGTHS_ZERO_ROW,
                },
            },
            "cases": cases,
        },
        "advantages": {"epsilon": 1e-4, "cases": adv_cases},
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
    print(f"wrote {out_path}: {len(cases)} loss cases, {len(adv_cases)} advantage cases")


if __name__ == "__main__":
    sys.exit(main())
