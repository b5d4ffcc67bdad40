# PyTorch eager reference for `lorkd bench decompose`: one decomposition training step (torchvision
# shufflenet_v2_x1_0 with T rank-r experts on every non-depthwise conv, a head per task, the
# summed per-task CE / B, backward, SGD momentum) on task-sorted batches with the given task
# counts. Runs the routed and the gathered strategies, each channels_last and NCHW (or the
# "formats" given), on "device" (default cpu) under "precision" (fp32 or bf16 autocast), and
# prints one JSON line with every configuration's images per second and the best.
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F, torchvision

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
DEV = torch.device(a.get("device", "cpu"))
AMP = a.get("precision", "fp32") == "bf16"


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize(DEV)
torch.manual_seed(0)
T, R = len(a["classes"]), a["rank"]


class Expert(nn.Module):
    def __init__(self, base, state):
        super().__init__()
        self.base, self.state = base, state
        k, cin, cout = base.kernel_size[0], base.in_channels, base.out_channels
        self.A = nn.Parameter(torch.randn(T, R * k, cin * k) * 0.01)
        self.B = nn.Parameter(torch.zeros(T, cout * k, R * k))

    def delta(self, t):
        return (self.B[t] @ self.A[t]).view_as(self.base.weight)

    def forward(self, x):
        counts, s = self.state["counts"], self.state["strategy"]
        y = self.base(x)
        pointwise = self.base.kernel_size[0] == 1 and self.base.stride[0] == 1
        if s == "gathered" and pointwise:
            b, c, h, w = x.shape
            ids = self.state["ids"]
            low = torch.bmm(self.B[ids], torch.bmm(self.A[ids], x.reshape(b, c, h * w)))
            return y + low.view(b, -1, h, w)
        outs, o = [], 0
        for t, n in enumerate(counts):
            if n == 0:
                continue
            xt = x[o:o + n]
            o += n
            if pointwise:
                z = F.conv2d(xt, self.A[t].view(R, -1, 1, 1))
                outs.append(F.conv2d(z, self.B[t].view(-1, R, 1, 1)))
            else:
                outs.append(F.conv2d(xt, self.delta(t), None, self.base.stride, self.base.padding))
        return y + torch.cat(outs, 0)


def inject(m, state):
    for name, child in list(m.named_children()):
        if isinstance(child, nn.Conv2d) and child.groups == 1:
            setattr(m, name, Expert(child, state))
        else:
            inject(child, state)


def build(cl):
    state = {}
    m = torchvision.models.shufflenet_v2_x1_0()
    m.fc = nn.Identity()
    inject(m, state)
    heads = nn.ModuleList(nn.Linear(1024, c) for c in a["classes"])
    m, heads = m.to(DEV), heads.to(DEV)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    return m, heads, state


def batches(cl):
    out = []
    for counts in a["counts"]:
        b = sum(counts)
        x = torch.randn(b, 3, a["input"], a["input"], device=DEV)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        ids = torch.cat([torch.full((n,), t, dtype=torch.long) for t, n in enumerate(counts)]).to(DEV)
        ys = [torch.randint(0, a["classes"][t], (n,)).to(DEV) for t, n in enumerate(counts)]
        out.append((x, counts, ids, ys))
    return out


def run(strategy, cl):
    m, heads, state = build(cl)
    m.train()
    opt = torch.optim.SGD(list(m.parameters()) + list(heads.parameters()), lr=0.05, momentum=0.9, weight_decay=1e-4)
    data = batches(cl)

    def step(x, counts, ids, ys):
        state.update(counts=counts, ids=ids, strategy=strategy)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=AMP):
            f = m(x)
            loss, o = 0, 0
            for t, n in enumerate(counts):
                if n:
                    loss = loss + F.cross_entropy(heads[t](f[o:o + n]), ys[t], reduction="sum")
                    o += n
        (loss / x.shape[0]).backward()
        opt.step()

    step(*data[0])
    best = float("inf")
    for _ in range(a["repeats"]):
        sync()
        t0 = time.perf_counter()
        for d in data:
            step(*d)
        sync()
        best = min(best, time.perf_counter() - t0)
    return sum(sum(c) for c in a["counts"]) / best


formats = a.get("formats", ["cl", "nchw"])
res = {f"{s}_{f}": run(s, f == "cl") for s in ("routed", "gathered") for f in formats}
key = max(res, key=res.get)
print(json.dumps({"img_per_s": res[key], "best": key, "configs": res, "torch": torch.__version__, "device": str(DEV), "precision": a.get("precision", "fp32")}))
