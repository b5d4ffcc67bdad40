# PyTorch's DataLoader over torchvision's ImageFolder (PIL decoding) for `lorkd bench data`: two
# shuffled epochs with persistent workers, the second timed (the first warms the workers and the
# page cache, as lorkd's side does). 224-jpeg:
# RandomResizedCrop(size), RandomHorizontalFlip, ToTensor, Normalize; raw: RandomHorizontalFlip,
# ToTensor, Normalize (the images are stored at the size). Prints one JSON line.
import json, sys, time
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
for x, y in dl:
    pass
n = 0
t = time.perf_counter()
for x, y in dl:
    n += x.shape[0]
dt = time.perf_counter() - t
print(json.dumps({"images": n, "seconds": dt, "img_per_s": n / dt}))
