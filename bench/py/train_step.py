# PyTorch eager reference for `lorkd bench train`: the same training step (forward, cross-entropy,
# backward, SGD momentum update) of a torchvision model. Prints one JSON line.
import json, resource, sys, time
import torch, torchvision

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
torch.manual_seed(0)
m = getattr(torchvision.models, a["model"])(num_classes=a["classes"])
x = torch.randn(a["batch"], 3, a["input"], a["input"])
y = torch.randint(0, a["classes"], (a["batch"],))
if a["format"] == "channels_last":
    m = m.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
m.train()

def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()

def forward():
    with torch.no_grad():
        m(x)

f = forward if a.get("forward_only") else step
for _ in range(a["warmup"]):
    f()
t = time.perf_counter()
for _ in range(a["steps"]):
    f()
dt = (time.perf_counter() - t) / a["steps"]
print(json.dumps({"img_per_s": a["batch"] / dt, "ms_per_step": dt * 1000,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch": torch.__version__}))
