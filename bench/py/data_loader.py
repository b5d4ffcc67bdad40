# PyTorch's DataLoader over torchvision's ImageFolder (PIL decoding) for `lorkd bench data`: two
# shuffled epochs with persistent workers, the second timed (the first warms the workers and the
# page cache, as lorkd's side does), with the CPU time per image of the main process and its
# workers. 224-jpeg:
# RandomResizedCrop(size), RandomHorizontalFlip, ToTensor, Normalize; raw: RandomHorizontalFlip,
# ToTensor, Normalize (the images are stored at the size). Prints one JSON line.
import json, os, sys, time
import torch, torchvision
from torchvision import transforms as T

a = json.loads(sys.argv[1])
torch.set_num_threads(1)
norm = T.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
if a["crop"]:
    tf = T.Compose([T.RandomResizedCrop(a["size"]), T.RandomHorizontalFlip(), T.ToTensor(), norm])
else:
    tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), norm])
ds = torchvision.datasets.ImageFolder(a["root"], transform=tf, loader=lambda p: __import__("PIL.Image").Image.open(p).convert("RGB"))
dl = torch.utils.data.DataLoader(ds, batch_size=a["batch"], shuffle=True, num_workers=a["workers"], drop_last=False, persistent_workers=a["workers"] > 0)
def cpu_s(pids):
    """CPU seconds (user + system) of these processes so far, from /proc (None where it is absent)."""
    try:
        t = 0
        for p in pids:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        return t / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None

for x, y in dl:
    pass
# The main process and its persistent workers: CPU time per image, a figure a busy machine bends less.
pids = [os.getpid()] + [w.pid for w in getattr(dl._iterator, "_workers", [])]
c0 = cpu_s(pids)
n = 0
t = time.perf_counter()
for x, y in dl:
    n += x.shape[0]
dt = time.perf_counter() - t
c1 = cpu_s(pids)
cpu = None if c0 is None or c1 is None else 1000 * (c1 - c0) / n
print(json.dumps({"images": n, "seconds": dt, "img_per_s": n / dt, "cpu_ms_per_img": cpu}))
