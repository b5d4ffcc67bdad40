# PyTorch eager reference for `lorkd bench ops`: per-op dispatch time of small ops and conv2d
# forward+backward throughput. Prints one JSON line.
import json, sys, time
import torch

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])

def per_call_us(f, n):
    for _ in range(min(n, 200)):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6

x = torch.randn(4)
y = torch.randn(4)
m = torch.randn(8, 8)
out = {
    "add_us": per_call_us(lambda: x + y, a["n"]),
    "mul_scalar_us": per_call_us(lambda: x * 2.0, a["n"]),
    "relu_us": per_call_us(lambda: torch.relu(x), a["n"]),
    "matmul_8_us": per_call_us(lambda: m @ m, a["n"]),
}
c = a["conv"]
inp = torch.randn(c["batch"], c["cin"], c["size"], c["size"], requires_grad=True)
w = torch.randn(c["cout"], c["cin"], 3, 3, requires_grad=True)
def conv_step():
    torch.nn.functional.conv2d(inp, w, padding=1).sum().backward()
    inp.grad = None
    w.grad = None
out["conv_fwd_bwd_ms"] = per_call_us(conv_step, c["steps"]) / 1000

# Optimiser steps over shufflenet_v2_x1_0's parameters with fixed random gradients (foreach).
import torchvision
def step_ms(make):
    model = torchvision.models.shufflenet_v2_x1_0(num_classes=10)
    ps = list(model.parameters())
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-3
    opt = make(ps)
    return per_call_us(opt.step, 20) / 1000
out["sgd_step_ms"] = step_ms(lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=True))
out["adamw_step_ms"] = step_ms(lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True))
out["adamw_step_composed_ms"] = step_ms(lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=False))
print(json.dumps(out))
