#!/usr/bin/python3
"""PyTorch side of bench/profile.ts: the same bench step under torch.autograd.profiler, grouped by op kind.

    /usr/bin/python3 bench/profile_pytorch.py [--case train_tiny_t512|rm_tiny_b4_t256|train_0.6b_t512] [--steps N] [--threads 2]

The step is bench/model_pytorch.py's (its model, inputs and losses are imported from there):
train_tiny_t512 full fine-tuning, rm_tiny_b4_t256 a Bradley-Terry step of 4 pairs x 256 tokens,
train_0.6b_t512 LoRA r8 on q/v with gradient checkpointing. One warm-up step, N plain steps, then
N profiled steps. Times are each op's self CPU time (aten::matmul's own time excludes the aten::mm
under it); "framework (rest)" is the wall time no op saw (Python, dispatch). Autograd nodes
(XBackward0, AccumulateGrad) are the engine's own time. Tables on stderr, one JSON line on stdout.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_pytorch as mp  # noqa: E402  (also puts test/reference on the path)
from model_pytorch import ref  # noqa: E402

KINDS = {
    "matmul": "mm bmm addmm baddbmm addbmm matmul linear dot mv",
    "elementwise": "add add_ mul mul_ sub sub_ rsub div div_ exp log neg sqrt rsqrt pow sigmoid silu silu_backward sigmoid_backward "
                   "softplus softplus_backward where masked_fill masked_fill_ cos sin to _to_copy fill_ zero_ threshold_backward abs "
                   "clamp maximum minimum ne eq gt lt ge le reciprocal triu tril",
    "reductions": "sum mean max amax min amin prod argmax",
    "softmax-like": "softmax _softmax _softmax_backward_data log_softmax _log_softmax _log_softmax_backward_data nll_loss "
                    "nll_loss_forward nll_loss_backward nll_loss_nd nll_loss2d_forward cross_entropy_loss",
    "transposes (copy_/contiguous)": "copy_ contiguous clone",
    "gathers/scatters": "index index_select embedding embedding_backward embedding_dense_backward index_add_ index_put_ "
                        "_index_put_impl_ gather scatter scatter_add_ repeat_interleave",
    "slices/concat/pad/tile": "cat _cat stack constant_pad_nd repeat",
    "reshape/views": "view reshape _unsafe_view transpose t permute expand as_strided unsqueeze squeeze alias detach detach_ "
                     "slice select split chunk narrow _reshape_alias expand_as view_as unbind flatten unflatten lift_fresh numpy_T",
    "allocation (empty/zeros)": "empty empty_like empty_strided zeros zeros_like ones ones_like full new_empty new_zeros "
                                "new_empty_strided resize_ scalar_tensor arange",
    "host reads": "item _local_scalar_dense",
}
KIND_OF = {name: kind for kind, names in KINDS.items() for name in names.split()}
SHAPED = {"mm", "bmm", "addmm", "baddbmm"}


def kind_of(event_name):
    if event_name.startswith("autograd::") or "Backward" in event_name or "AccumulateGrad" in event_name:
        return "autograd nodes"
    return KIND_OF.get(event_name.removeprefix("aten::"), "other")


def matmul_key(name, shapes):
    """(batch, M, K, N) of an mm / addmm / bmm / baddbmm call and its flops."""
    a, b = (shapes[1], shapes[2]) if name in ("addmm", "baddbmm") else (shapes[0], shapes[1])
    batch = a[0] if len(a) == 3 else 1
    M, K, N = a[-2], a[-1], b[-1]
    return f"{batch},{M},{K},{N}", 2 * batch * M * K * N


def bench_step(case):
    """The bench step of `case` (model_pytorch.measure's train_step / rm_step) and its gradient reset."""
    big = case == "train_0.6b_t512"
    rank = 8 if big else 0
    d = ref.Dims(mp.CONFIGS["0.6B" if big else "tiny"])
    model = mp.build_model(d, rank)
    model.gradient_checkpointing = big
    mp.set_trainable(model, rank)
    params = list(model.parameters())
    if case == "rm_tiny_b4_t256":
        pairs, seq = 4, 256
        ids = torch.randint(0, d.V, (2 * pairs, seq), generator=torch.Generator().manual_seed(2))
        head = torch.nn.Linear(d.H, 1, bias=False)
        torch.nn.init.normal_(head.weight, std=0.02)
        params.append(head.weight)

        def step():
            r = head(model.hidden_states(ids)[:, -1]).squeeze(-1)
            torch.nn.functional.softplus(-(r[:pairs] - r[pairs:])).mean().backward()
    else:
        ids = torch.randint(0, d.V, (1, 512), generator=torch.Generator().manual_seed(512))

        def step():
            ref.causal_lm_loss(model(ids), ids).backward()

    def clear_grads():
        for p in params:
            p.grad = None

    return step, clear_grads


def timed_steps(step, clear_grads, n):
    ms = []
    for _ in range(n):
        clear_grads()
        t0 = time.perf_counter()
        step()
        ms.append(1000 * (time.perf_counter() - t0))
    return ms


def profile_case(case, steps):
    step, clear_grads = bench_step(case)
    timed_steps(step, clear_grads, 1)  # warm-up
    plain_ms = timed_steps(step, clear_grads, steps)
    with torch.autograd.profiler.profile(record_shapes=True) as prof:
        profiled_ms = timed_steps(step, clear_grads, steps)
    wall = sum(profiled_ms) / steps
    kinds = defaultdict(lambda: [0.0, 0])
    ops = defaultdict(lambda: [0.0, 0])
    shapes = defaultdict(lambda: [0.0, 0, 0])
    for e in prof.key_averages(group_by_input_shape=True):
        ms = e.self_cpu_time_total / 1000 / steps
        for table, key in ((kinds, kind_of(e.key)), (ops, e.key)):
            table[key][0] += ms
            table[key][1] += e.count / steps
        name = e.key.removeprefix("aten::")
        if name in SHAPED and e.input_shapes:
            key, flop = matmul_key(name, e.input_shapes)
            shapes[key][0] += ms
            shapes[key][1] += e.count / steps
            shapes[key][2] += flop * e.count / steps
    seen = sum(ms for ms, _ in kinds.values())
    kinds["framework (rest)"] = [wall - seen, 0]

    def rows(table):
        return sorted(({"name": k, "ms": ms, "share": ms / wall, "calls": calls} for k, (ms, calls) in table.items()),
                      key=lambda r: -r["ms"])

    matmuls = sorted(({"shape": k, "ms": ms, "calls": calls, "gflops": flop / ms / 1e6 if ms > 0 else 0}
                      for k, (ms, calls, flop) in shapes.items()), key=lambda r: -r["ms"])
    return {"case": case, "steps": steps, "plain_ms": plain_ms, "profiled_ms": profiled_ms,
            "kinds": rows(kinds), "ops": rows(ops), "matmuls": matmuls}


def tables(p):
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    out = [f"### PyTorch {p['case']} ({p['steps']} steps; mean step {mean(p['plain_ms']):.0f} ms plain, "
           f"{mean(p['profiled_ms']):.0f} ms profiled)", "",
           "| op kind | ms/step | share | calls/step |", "|---|---|---|---|"]
    out += [f"| {r['name']} | {r['ms']:.1f} | {100 * r['share']:.1f}% | {r['calls']:.0f} |" for r in p["kinds"]]
    out += ["", "| op (top 15) | ms/step | share | calls/step |", "|---|---|---|---|"]
    out += [f"| {r['name']} | {r['ms']:.1f} | {100 * r['share']:.1f}% | {r['calls']:.0f} |" for r in p["ops"][:15]]
    out += ["", "| mm (batch, M, K, N) | calls/step | ms/step | GFLOP/s |", "|---|---|---|---|"]
    out += [f"| {r['shape']} | {r['calls']:.0f} | {r['ms']:.1f} | {r['gflops']:.1f} |" for r in p["matmuls"][:10]]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="train_tiny_t512", choices=["train_tiny_t512", "rm_tiny_b4_t256", "train_0.6b_t512"])
    parser.add_argument("--steps", type=int, help="timed steps (default 3; 1 for 0.6B)")
    parser.add_argument("--threads", type=int, default=2)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    blas = mp.loaded_blas_libraries()
    blas_threads = mp.set_blas_threads(blas, a.threads)
    p = profile_case(a.case, a.steps or (1 if a.case == "train_0.6b_t512" else 3))
    mp.log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas} ({blas_threads} threads)\n\n{tables(p)}\n")
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, **p}))


if __name__ == "__main__":
    main()
