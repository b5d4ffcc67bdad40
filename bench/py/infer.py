# PyTorch eager reference for `lorkd bench infer`: torchvision's network with the same weights
# (a safetensors file written by lorkd), eval mode, under torch.inference_mode(), in NCHW and
# channels_last; reports the better of the two per case. Prints one JSON line.
import json, struct, sys, time
import numpy as np
import torch, torchvision

a = json.loads(sys.argv[1])


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    kinds = {"F32": np.float32, "I64": np.int64}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[lo:hi], dtype=kinds[v["dtype"]]).copy().reshape(v["shape"]))
    return out


def time_per_batch(f, min_s, min_reps):
    f()
    f()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_s:
        f()
        reps += 1
    return (time.perf_counter() - t0) / reps


nets = {}
for name, path in a["weights"].items():
    m = getattr(torchvision.models, name)(num_classes=a["num_classes"])
    m.load_state_dict(load_safetensors(path))
    m.eval()
    nets[name] = m

rows = []
for c in a["cases"]:
    torch.set_num_threads(c["threads"])
    m = nets[c["model"]]
    x = torch.rand(c["batch"], 3, c["input"], c["input"])
    best, fmt = 0.0, None
    for f in ["contiguous", "channels_last"]:
        mf = m.to(memory_format=torch.channels_last) if f == "channels_last" else m.to(memory_format=torch.contiguous_format)
        xf = x.contiguous(memory_format=torch.channels_last) if f == "channels_last" else x.contiguous()
        with torch.inference_mode():
            s = time_per_batch(lambda: mf(xf), a["min_s"], a["min_reps"])
        ips = c["batch"] / s
        if ips > best:
            best, fmt = ips, f
    rows.append({**c, "img_per_s": best, "format": fmt})
print(json.dumps({"rows": rows, "torch": torch.__version__}))
