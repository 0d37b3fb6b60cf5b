#!/usr/bin/python3
"""bench/train, the PyTorch side for scale (not part of CI): the same LoRA training step as bench/train/run.ts —
a Llama of the given shape, LoRA r 16 (alpha 32) on all seven projections, frozen base, packed micro-batch of
`rows` rows × `row_len` tokens with no attention across rows, next-token cross-entropy, AdamW on the LoRA
parameters — timed as forward-only (no_grad) and as a full train step, in interleaved rounds; median (min–max).

    /usr/bin/python3 bench/train/pytorch.py [--shape stories260K|smollm2-135m] [--rows 8] [--row-len 64] [--rounds 5]

Debian's python3-torch (1.13, CPU). Random weights: only the shapes matter for speed.
"""
import argparse, json, math, os, statistics, sys, time

import torch
import torch.nn.functional as F

SHAPES = {
    "stories260K": dict(hidden=64, inter=172, layers=5, heads=8, kv=4, head_dim=8, vocab=512),
    "smollm2-135m": dict(hidden=576, inter=1536, layers=30, heads=9, kv=3, head_dim=64, vocab=49152),
}


class LoraLinear(torch.nn.Module):
    def __init__(self, i, o, r=16, alpha=32):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(o, i) / math.sqrt(i), requires_grad=False)
        self.a = torch.nn.Parameter(torch.randn(r, i) / math.sqrt(i))
        self.b = torch.nn.Parameter(torch.randn(o, r) * 0.01)
        self.s = alpha / r

    def forward(self, x):
        return x @ self.w.t() + self.s * ((x @ self.a.t()) @ self.b.t())


def rope(x, pos, theta=10000.0):
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    f = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cos(f).repeat(1, 2), torch.sin(f).repeat(1, 2)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, I, D = c["hidden"], c["inter"], c["head_dim"]
        self.emb = torch.nn.Parameter(torch.randn(c["vocab"], H) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["layers"]):
            m = torch.nn.ModuleDict(dict(
                q=LoraLinear(H, c["heads"] * D), k=LoraLinear(H, c["kv"] * D), v=LoraLinear(H, c["kv"] * D),
                o=LoraLinear(c["heads"] * D, H), gate=LoraLinear(H, I), up=LoraLinear(H, I), down=LoraLinear(I, H)))
            self.layers.append(m)

    @staticmethod
    def norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    def forward(self, ids, pos, mask):
        c = self.c
        T, D = ids.shape[0], c["head_dim"]
        x = self.emb[ids]
        for m in self.layers:
            h = self.norm(x)
            q = rope(m["q"](h).view(T, c["heads"], D).transpose(0, 1), pos)
            k = rope(m["k"](h).view(T, c["kv"], D).transpose(0, 1), pos)
            v = m["v"](h).view(T, c["kv"], D).transpose(0, 1)
            rep = c["heads"] // c["kv"]
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(D) + mask
            y = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, c["heads"] * D)
            x = x + m["o"](y)
            h = self.norm(x)
            x = x + m["down"](F.silu(m["gate"](h)) * m["up"](h))
        return self.norm(x) @ self.emb.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="stories260K", choices=list(SHAPES))
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--row-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    c = SHAPES[a.shape]
    model = Llama(c)
    T = a.rows * a.row_len
    ids = torch.randint(3, c["vocab"], (T,))
    pos = torch.arange(a.row_len).repeat(a.rows)
    seg = torch.arange(T) // a.row_len
    allowed = (seg[:, None] == seg[None, :]) & (torch.arange(T)[:, None] >= torch.arange(T)[None, :])
    mask = torch.zeros(T, T).masked_fill(~allowed, float("-inf"))
    labels = torch.roll(ids, -1).clone()
    labels[a.row_len - 1 :: a.row_len] = -100
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def fwd():
        with torch.no_grad():
            model(ids, pos, mask)

    def step():
        logits = model(ids, pos, mask)
        loss = F.cross_entropy(logits, labels, ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    fwd(); step()  # warm-up
    res = {"fwd": [], "train": []}
    load0 = os.getloadavg()[0]
    for _ in range(a.rounds):
        for k, f in (("fwd", fwd), ("train", step)):
            t0 = time.perf_counter()
            f()
            res[k].append(T / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in res.items()}
    out = {
        "shape": a.shape, "T": T, "rows": a.rows, "threads": a.threads, "torch": torch.__version__,
        "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "fwd_tok_s": round(med["fwd"], 1), "fwd_spread": [round(min(res["fwd"]), 1), round(max(res["fwd"]), 1)],
        "train_tok_s": round(med["train"], 1), "train_spread": [round(min(res["train"]), 1), round(max(res["train"]), 1)],
        "train_vs_fwd": round(med["train"] / med["fwd"], 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
