#!/usr/bin/python3
"""Independent PyTorch reference fixtures for promedical's AdamW optimizer,
learning-rate schedules and gradient-norm clipping.

Requirements: Debian's /usr/bin/python3 with numpy (1.24) and torch (1.13).
No transformers: the Hugging Face schedule formulas are re-implemented below.

Usage:  /usr/bin/python3 test/reference/optim_reference.py [--out PATH]
        (default PATH: test/fixtures/optim.json next to this directory)

Everything is computed in float64 (torch.set_default_dtype(torch.float64)).
After generating, the script re-derives the whole AdamW trajectory, every
clip case and every schedule independently in numpy / plain Python and
asserts agreement (|diff| <= 1e-12); it exits non-zero on any mismatch.

Encoding conventions
--------------------
* An "array" is an object {"shape": [int...], "data": [number...]} where
  `data` is the row-major (C order) flattening; a 1-D tensor of n elements
  has shape [n].
* Numbers are finite JSON numbers written with Python's repr (shortest
  round-trip double), so JSON.parse reproduces the exact float64 value.
  Non-finite values are written as the strings "inf", "-inf" or "nan"
  (this can only happen in clip.cases[2]). -0.0 is written as -0.0.
* Step indices are 0-based.

Fixture layout (optim.json)
---------------------------
{
  "meta": {"generator", "torch_version", "numpy_version", "dtype": "float64",
           "seed": 7, "encoding": str},

  "adamw": {
    "config": {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
               "amsgrad": false, "max_grad_norm": 1.0, "num_steps": 12,
               "schedule": "cosine_with_warmup", "num_warmup_steps": 3,
               "num_training_steps": 12, "num_cycles": 0.5},
    "param_order": ["w1", "w2", "b1", "norm"],   # order given to
                                                 # clip_grad_norm_ and to rng
    "groups": [{"name": "decay",    "weight_decay": 0.1, "params": ["w1", "w2"]},
               {"name": "no_decay", "weight_decay": 0.0, "params": ["b1", "norm"]}],
    "shapes": {"w1": [3, 4], "w2": [5, 2], "b1": [4], "norm": [5]},
    "initial_params": {name: array},              # before step 0
    "grad_scales": [12 numbers],                  # scale used to draw grads
    "steps": [ 12 x {
        "step": k,                                # 0..11
        "lr_multiplier": lambda(k),               # schedule value
        "lr": number,                             # param_groups[g]['lr'] used
                                                  # by this optimizer.step()
                                                  # (= 0.01 * lambda(k); same
                                                  # for both groups)
        "grad_norm": number,                      # value returned by
                                                  # clip_grad_norm_ (pre-clip
                                                  # total L2 norm)
        "clip_coef": number,                      # min(1, 1/(grad_norm+1e-6))
        "grads": {name: array},                   # raw grads, before clipping
        "clipped_grads": {name: array},           # grads after clipping (what
                                                  # AdamW actually consumed)
        "params": {name: array},                  # parameter values after step
        "exp_avg": {name: array},                 # state after step
        "exp_avg_sq": {name: array}               # state after step
    } ],
    "final_state": {name: {"step": 12, "exp_avg": array,
                           "exp_avg_sq": array}},
    "lr_after_training": number                   # lr after the 12th
                                                  # scheduler.step() (= 0.0)
  },

  "schedules": {
    "steps": [0, 1, ..., 30],
    "schedules": {
      "constant":             {"params": {}, "multipliers": [31 numbers]},
      "constant_with_warmup": {"params": {"num_warmup_steps": 5},
                               "multipliers": [...]},
      "linear":               {"params": {"num_warmup_steps": 5,
                                          "num_training_steps": 30},
                               "multipliers": [...]},
      "cosine":               {"params": {"num_warmup_steps": 5,
                                          "num_training_steps": 30,
                                          "num_cycles": 0.5},
                               "multipliers": [...]},
      "cosine_no_warmup":     {"params": {"num_warmup_steps": 0,
                                          "num_training_steps": 30,
                                          "num_cycles": 0.5},
                               "multipliers": [...]}
    }
  },                          # multipliers[i] = lambda(i); lr = base_lr*lambda

  "clip": {
    "formula": str,
    "cases": [ 3 x {
        "name": str,
        "max_norm": number, "norm_type": 2.0,
        "inputs": [array, ...],         # grads before clipping
        "total_norm": number | "inf",   # value returned by clip_grad_norm_
        "total_norm_is_finite": bool,
        "clip_coef": number,            # clamp(max_norm/(total_norm+1e-6), max=1)
        "clipped": [array, ...],        # grads after clipping, same order
        "clipped_has_nonfinite": bool,
        "unchanged": bool               # clipped bit-identical to inputs
    } ]
  }
}

Schedule formulas (Hugging Face transformers.optimization, re-implemented):
  constant:              lambda(s) = 1
  constant_with_warmup:  lambda(s) = s / max(1, W)            if s < W else 1
  linear:                lambda(s) = s / max(1, W)            if s < W
                         else max(0, (T - s) / max(1, T - W))
  cosine:                lambda(s) = s / max(1, W)            if s < W
                         else max(0, 0.5 * (1 + cos(pi * C * 2 * p))),
                         p = (s - W) / max(1, T - W)
  (W = num_warmup_steps, T = num_training_steps, C = num_cycles)
  LambdaLR sets lr = base_lr * lambda(last_epoch); last_epoch is 0 at
  construction and is incremented by each scheduler.step(), so the k-th
  optimizer.step() (0-based) runs with base_lr * lambda(k).

AdamW (torch 1.13 torch.optim.AdamW, amsgrad False, single-tensor path):
  t += 1
  p  = p * (1 - lr * wd)
  m  = beta1 * m + (1 - beta1) * g
  v  = beta2 * v + (1 - beta2) * g * g
  p  = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Clipping (torch.nn.utils.clip_grad_norm_, norm_type 2):
  total = || [||g_1||_2, ..., ||g_n||_2] ||_2
  coef  = min(1, max_norm / (total + 1e-6));  g_i *= coef  (always applied,
  even when coef == 1; with total == inf coef == 0, so finite entries become
  +-0 and inf entries become nan)
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

SEED = 7
TOL = 1e-12

torch.set_default_dtype(torch.float64)

# ---------------------------------------------------------------- encoding


def enc_num(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def enc_arr(t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [enc_num(v) for v in a.reshape(-1)]}


def close(a, b, tol=TOL):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return bool(np.all(np.abs(a - b) <= tol))


# ---------------------------------------------------------------- schedules
# Hugging Face formulas, see module docstring.


def sched_constant():
    return lambda s: 1.0


def sched_constant_with_warmup(num_warmup_steps):
    def f(s):
        if s < num_warmup_steps:
            return float(s) / float(max(1.0, num_warmup_steps))
        return 1.0
    return f


def sched_linear(num_warmup_steps, num_training_steps):
    def f(s):
        if s < num_warmup_steps:
            return float(s) / float(max(1, num_warmup_steps))
        return max(0.0, float(num_training_steps - s)
                   / float(max(1, num_training_steps - num_warmup_steps)))
    return f


def sched_cosine(num_warmup_steps, num_training_steps, num_cycles=0.5):
    def f(s):
        if s < num_warmup_steps:
            return float(s) / float(max(1, num_warmup_steps))
        progress = float(s - num_warmup_steps) / float(
            max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    return f


def lambdalr_trace(fn, n_steps, base_lr):
    """lrs seen by the k-th optimizer.step() for k = 0..n_steps-1 when
    stepping a real LambdaLR."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    out = []
    for _ in range(n_steps):
        out.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sch.step()
    return out


def build_schedules():
    steps = list(range(31))
    defs = [
        ("constant", {}, sched_constant()),
        ("constant_with_warmup", {"num_warmup_steps": 5},
         sched_constant_with_warmup(5)),
        ("linear", {"num_warmup_steps": 5, "num_training_steps": 30},
         sched_linear(5, 30)),
        ("cosine", {"num_warmup_steps": 5, "num_training_steps": 30, "num_cycles": 0.5},
         sched_cosine(5, 30, 0.5)),
        ("cosine_no_warmup", {"num_warmup_steps": 0, "num_training_steps": 30, "num_cycles": 0.5},
         sched_cosine(0, 30, 0.5)),
    ]
    out = {}
    for name, params, fn in defs:
        mult = [fn(s) for s in steps]
        # cross-check 1: LambdaLR with base lr 1.0 reproduces the multipliers
        # exactly, step by step.
        trace1 = lambdalr_trace(fn, len(steps), 1.0)
        assert trace1 == mult, (name, trace1, mult)
        # cross-check 2: with base lr 1e-2 the lr is exactly 1e-2 * lambda.
        trace2 = lambdalr_trace(fn, len(steps), 1e-2)
        assert trace2 == [1e-2 * m for m in mult], name
        out[name] = {"params": params, "multipliers": [enc_num(m) for m in mult]}

    # cross-check 3: closed-form values at hand-picked points.
    m = {k: v["multipliers"] for k, v in out.items()}
    assert all(v == 1.0 for v in m["constant"])
    assert m["constant_with_warmup"][:6] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert m["linear"][5] == 1.0 and m["linear"][30] == 0.0
    assert abs(m["linear"][17] - 13 / 25) < 1e-15
    assert m["cosine"][5] == 1.0 and m["cosine"][30] == 0.0
    assert abs(m["cosine"][17] - 0.5 * (1 + math.cos(math.pi * 12 / 25))) < 1e-15
    assert m["cosine_no_warmup"][0] == 1.0 and abs(m["cosine_no_warmup"][15] - 0.5) < 1e-15
    return {"steps": steps, "schedules": out}


# ---------------------------------------------------------------- clipping


def np_clip(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    coef = min(1.0, max_norm / (total + 1e-6))
    with np.errstate(invalid="ignore"):  # inf * 0 -> nan is expected
        return total, coef, [g * coef for g in grads]


def build_clip():
    rng = np.random.default_rng(SEED + 1)
    specs = [
        ("clipped_max_norm_1", 1.0, [(3, 4), (6,), (2, 2, 2)], 1.0, None),
        ("unchanged_max_norm_5", 5.0, [(4,), (3, 3)], 0.3, None),
        ("nonfinite_inf", 1.0, [(3,), (2, 2)], 1.0, (1, (0, 1))),
    ]
    cases = []
    for name, max_norm, shapes, scale, inf_at in specs:
        inputs = [rng.standard_normal(s) * scale for s in shapes]
        if inf_at is not None:
            inputs[inf_at[0]][inf_at[1]] = np.inf
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, g in zip(params, inputs):
            p.grad = torch.tensor(g)
        total = clip_total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        total = float(clip_total)
        coef = float(torch.clamp(max_norm / (clip_total + 1e-6), max=1.0))
        clipped = [p.grad.detach().numpy().copy() for p in params]
        has_nonfinite = any(not np.all(np.isfinite(c)) for c in clipped)
        unchanged = all(np.array_equal(c, g) for c, g in zip(clipped, inputs))

        # independent numpy check
        ntotal, ncoef, nclipped = np_clip(inputs, max_norm)
        if math.isfinite(total):
            assert abs(ntotal - total) <= TOL * max(1.0, total), name
            assert abs(ncoef - coef) <= TOL, name
            for a, b in zip(nclipped, clipped):
                assert close(a, b), name
        else:
            assert math.isinf(total) and total > 0 and math.isinf(ntotal), name
            assert coef == 0.0 and ncoef == 0.0, name
            for a, b in zip(nclipped, clipped):
                np.testing.assert_array_equal(a, b)  # nan == nan here
            assert has_nonfinite and np.isnan(clipped[inf_at[0]][inf_at[1]])
        if name.startswith("clipped"):
            assert total > max_norm and coef < 1.0 and not unchanged
            assert abs(math.sqrt(sum(float(np.sum(c * c)) for c in clipped)) - max_norm) < 1e-5
        if name.startswith("unchanged"):
            assert total < max_norm and coef == 1.0 and unchanged

        cases.append({
            "name": name,
            "max_norm": max_norm,
            "norm_type": 2.0,
            "inputs": [enc_arr(g) for g in inputs],
            "total_norm": enc_num(total),
            "total_norm_is_finite": math.isfinite(total),
            "clip_coef": enc_num(coef),
            "clipped": [enc_arr(c) for c in clipped],
            "clipped_has_nonfinite": bool(has_nonfinite),
            "unchanged": bool(unchanged),
        })
    return {
        "formula": "total = sqrt(sum_i ||g_i||_2^2) (computed as the 2-norm of the "
                   "per-tensor 2-norms); coef = min(1, max_norm / (total + 1e-6)); "
                   "every g_i is multiplied by coef (also when coef == 1). "
                   "torch 1.13 default error_if_nonfinite=False: an inf total gives "
                   "coef 0, finite entries become +-0 and inf entries become nan.",
        "cases": cases,
    }


# ---------------------------------------------------------------- AdamW

ADAM = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, amsgrad=False)
SHAPES = {"w1": (3, 4), "w2": (5, 2), "b1": (4,), "norm": (5,)}
ORDER = ["w1", "w2", "b1", "norm"]
GROUPS = [("decay", 0.1, ["w1", "w2"]), ("no_decay", 0.0, ["b1", "norm"])]
NUM_STEPS, WARMUP, TOTAL, CYCLES = 12, 3, 12, 0.5
MAX_GRAD_NORM = 1.0
# step 3: all-zero gradient; step 5: large (~1e3) gradient; steps 4 and 8 have
# total norm < 1 so clipping leaves them unchanged.
GRAD_SCALES = [1.0, 0.5, 2.0, 0.0, 0.1, 1e3, 0.3, 1.5, 0.05, 0.8, 3.0, 0.2]


def build_adamw():
    rng = np.random.default_rng(SEED)
    init = {n: rng.standard_normal(SHAPES[n]) for n in ORDER}
    grads = [{n: rng.standard_normal(SHAPES[n]) * GRAD_SCALES[k] for n in ORDER}
             for k in range(NUM_STEPS)]

    params = {n: torch.nn.Parameter(torch.tensor(init[n])) for n in ORDER}
    opt = torch.optim.AdamW(
        [{"params": [params[n] for n in names], "weight_decay": wd}
         for _, wd, names in GROUPS],
        lr=ADAM["lr"], betas=ADAM["betas"], eps=ADAM["eps"], amsgrad=ADAM["amsgrad"])
    lam = sched_cosine(WARMUP, TOTAL, CYCLES)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lam)

    steps = []
    for k in range(NUM_STEPS):
        lr = opt.param_groups[0]["lr"]
        assert all(g["lr"] == lr for g in opt.param_groups)
        assert lr == ADAM["lr"] * lam(k)
        for n in ORDER:
            params[n].grad = torch.tensor(grads[k][n])
        gn = float(torch.nn.utils.clip_grad_norm_([params[n] for n in ORDER], MAX_GRAD_NORM))
        clipped = {n: params[n].grad.detach().clone() for n in ORDER}
        opt.step()
        sch.step()
        st = {n: opt.state[params[n]] for n in ORDER}
        steps.append({
            "step": k,
            "lr_multiplier": lam(k),
            "lr": lr,
            "grad_norm": enc_num(gn),
            "clip_coef": min(1.0, MAX_GRAD_NORM / (gn + 1e-6)),
            "grads": {n: enc_arr(grads[k][n]) for n in ORDER},
            "clipped_grads": {n: enc_arr(clipped[n]) for n in ORDER},
            "params": {n: enc_arr(params[n]) for n in ORDER},
            "exp_avg": {n: enc_arr(st[n]["exp_avg"]) for n in ORDER},
            "exp_avg_sq": {n: enc_arr(st[n]["exp_avg_sq"]) for n in ORDER},
        })
    final_state = {n: {"step": int(opt.state[params[n]]["step"].item()),
                       "exp_avg": enc_arr(opt.state[params[n]]["exp_avg"]),
                       "exp_avg_sq": enc_arr(opt.state[params[n]]["exp_avg_sq"])}
                   for n in ORDER}
    out = {
        "config": {"lr": ADAM["lr"], "betas": list(ADAM["betas"]), "eps": ADAM["eps"],
                   "amsgrad": ADAM["amsgrad"], "max_grad_norm": MAX_GRAD_NORM,
                   "num_steps": NUM_STEPS, "schedule": "cosine_with_warmup",
                   "num_warmup_steps": WARMUP, "num_training_steps": TOTAL,
                   "num_cycles": CYCLES},
        "param_order": ORDER,
        "groups": [{"name": g, "weight_decay": wd, "params": names} for g, wd, names in GROUPS],
        "shapes": {n: list(SHAPES[n]) for n in ORDER},
        "initial_params": {n: enc_arr(init[n]) for n in ORDER},
        "grad_scales": GRAD_SCALES,
        "steps": steps,
        "final_state": final_state,
        "lr_after_training": opt.param_groups[0]["lr"],
    }
    check_adamw_numpy(out, init, grads)
    return out


def check_adamw_numpy(out, init, grads):
    """Re-derive the whole trajectory (clip -> schedule -> AdamW) in numpy."""
    b1, b2 = ADAM["betas"]
    eps = ADAM["eps"]
    wd = {n: wdv for _, wdv, names in GROUPS for n in names}
    p = {n: init[n].copy() for n in ORDER}
    m = {n: np.zeros(SHAPES[n]) for n in ORDER}
    v = {n: np.zeros(SHAPES[n]) for n in ORDER}
    arr = lambda a, n: np.array(a["data"], dtype=np.float64).reshape(SHAPES[n])
    saw_zero = saw_large = saw_unclipped = False
    for k in range(NUM_STEPS):
        rec = out["steps"][k]
        t = k + 1
        # schedule (independent closed form)
        if k < WARMUP:
            lam = k / max(1, WARMUP)
        else:
            prog = (k - WARMUP) / max(1, TOTAL - WARMUP)
            lam = max(0.0, 0.5 * (1.0 + np.cos(np.pi * CYCLES * 2.0 * prog)))
        lr = ADAM["lr"] * lam
        assert abs(lr - rec["lr"]) <= 1e-17, (k, lr, rec["lr"])
        # clipping
        g = grads[k]
        total = float(np.sqrt(sum(np.sum(g[n] ** 2) for n in ORDER)))
        assert abs(total - rec["grad_norm"]) <= TOL * max(1.0, total), k
        coef = min(1.0, MAX_GRAD_NORM / (total + 1e-6))
        assert abs(coef - rec["clip_coef"]) <= TOL, k
        saw_zero |= total == 0.0
        saw_large |= total > 1e3
        saw_unclipped |= 0.0 < total < MAX_GRAD_NORM
        for n in ORDER:
            assert close(arr(rec["grads"][n], n), g[n], 0.0), (k, n)
            gc = g[n] * coef
            assert close(arr(rec["clipped_grads"][n], n), gc), (k, n)
            # AdamW
            p[n] = p[n] * (1.0 - lr * wd[n])
            m[n] = b1 * m[n] + (1.0 - b1) * gc
            v[n] = b2 * v[n] + (1.0 - b2) * gc * gc
            step_size = lr / (1.0 - b1 ** t)
            denom = np.sqrt(v[n]) / math.sqrt(1.0 - b2 ** t) + eps
            p[n] = p[n] - step_size * m[n] / denom
            assert close(arr(rec["params"][n], n), p[n]), (k, n)
            assert close(arr(rec["exp_avg"][n], n), m[n]), (k, n)
            assert close(arr(rec["exp_avg_sq"][n], n), v[n]), (k, n)
    assert saw_zero and saw_large and saw_unclipped
    for n in ORDER:
        fs = out["final_state"][n]
        assert fs["step"] == NUM_STEPS
        assert close(arr(fs["exp_avg"], n), m[n]) and close(arr(fs["exp_avg_sq"], n), v[n])
    assert out["lr_after_training"] == 0.0


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                         / "fixtures" / "optim.json"))
    args = ap.parse_args()
    fixture = {
        "meta": {
            "generator": "test/reference/optim_reference.py",
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "dtype": "float64",
            "seed": SEED,
            "encoding": "arrays are {shape, data} with row-major flat data; "
                        "non-finite numbers are the strings 'inf', '-inf', 'nan'",
        },
        "adamw": build_adamw(),
        "schedules": build_schedules(),
        "clip": build_clip(),
    }
    text = json.dumps(fixture, allow_nan=False, indent=1)
    Path(args.out).write_text(text + "\n")
    # round-trip check: every number survives JSON exactly.
    assert json.loads(text) == fixture
    print(f"wrote {args.out} ({len(text)} bytes); all cross-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
