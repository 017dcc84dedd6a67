"""Peer baseline for bench_train_step: the same LRU model written the way users
write it in PyTorch eager mode (a plain loop over time), run with
/usr/bin/python3 (Debian's torch 1.13). Same sizes, optimiser and loss.

    python3 python_lru_step.py [--blocks 1] [--state 256] [--hidden 8] [--batch 50]
                               [--length 784] [--steps 10] [--threads 2]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LRU(nn.Module):
    def __init__(self, n, h, r_min=0.9, r_max=0.999, max_phase=6.28):
        super().__init__()
        u1, u2 = torch.rand(n), torch.rand(n)
        radius_sq = r_min**2 + u1 * (r_max**2 - r_min**2)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(radius_sq)))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - radius_sq)))
        self.B_re = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
        self.B_im = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
        self.C_re = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
        self.C_im = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(h))

    def forward(self, u):  # u {B, L, H}
        lam = torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))
        bt = torch.exp(self.gamma_log)[:, None] * torch.complex(self.B_re, self.B_im)
        c = torch.complex(self.C_re, self.C_im)
        bu = torch.complex(u, torch.zeros_like(u)) @ bt.T  # {B, L, N}
        x = torch.zeros(u.shape[0], bt.shape[0], dtype=bu.dtype)
        states = []
        for uk in bu.unbind(1):
            x = lam * x + uk
            states.append(x)
        xs = torch.stack(states, 1)
        return (xs @ c.T).real + self.D * u


class Block(nn.Module):
    def __init__(self, n, h):
        super().__init__()
        self.norm = nn.BatchNorm1d(h, affine=False)
        self.lru = LRU(n, h)
        self.glu_value, self.glu_gate = nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x):
        z = self.norm(x.transpose(1, 2)).transpose(1, 2)
        z = F.gelu(self.lru(z))
        return x + self.glu_value(z) * torch.sigmoid(self.glu_gate(z))


class Model(nn.Module):
    def __init__(self, blocks, n, h):
        super().__init__()
        self.encoder = nn.Linear(1, h)
        self.blocks = nn.ModuleList([Block(n, h) for _ in range(blocks)])
        self.head = nn.Linear(h, 10)

    def forward(self, x):
        h = self.encoder(x)
        for b in self.blocks:
            h = b(h)
        return self.head(h.mean(1))


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("blocks", 1), ("state", 256), ("hidden", 8), ("batch", 50),
                          ("length", 784), ("steps", 10), ("threads", 2)]:
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a.blocks, a.state, a.hidden)
    ssm = [p for n, p in model.named_parameters() if n.split(".")[-1] in
           ("nu_log", "theta_log", "gamma_log", "B_re", "B_im")]
    other = [p for n, p in model.named_parameters() if n.split(".")[-1] not in
             ("nu_log", "theta_log", "gamma_log", "B_re", "B_im")]
    opt = torch.optim.AdamW([{"params": ssm, "lr": 5e-4, "weight_decay": 0.0},
                             {"params": other, "lr": 1e-3, "weight_decay": 0.01}])
    x = torch.rand(a.batch, a.length, 1)
    y = torch.randint(0, 10, (a.batch,))
    times = []
    for step in range(a.steps + 2):
        start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if step >= 2:
            times.append(1e3 * (time.perf_counter() - start))
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"bench": "train_step", "impl": "pytorch-eager-python",
                      "ms_per_step": median, "steps_per_s": 1e3 / median, "threads": a.threads}))


if __name__ == "__main__":
    main()
