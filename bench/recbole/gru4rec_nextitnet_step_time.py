"""Seconds per training step of RecBole 1.2.0's GRU4Rec and NextItNet on one
batch shape, for the speed comparison with ours (whose steps have the same
shape: 128 rows of a 50-item window). RecBole's models are built on the atomic
dataset written by h5_to_atomic.py (for n_items and the config), then trained
for `--steps` Adam steps (cross-entropy over all items, lr 1e-3) on full-length
sequences drawn from that dataset; the first step is a warm-up and not timed.

    python gru4rec_nextitnet_step_time.py --model NextItNet --data-dir DIR --dataset NAME --steps 5 --threads 2
"""
import argparse
import json
import time

import torch
from recbole.config import Config
from recbole.data import create_dataset
from recbole.utils import get_model, init_seed

p = argparse.ArgumentParser()
p.add_argument("--model", required=True, choices=["GRU4Rec", "NextItNet"])
p.add_argument("--data-dir", required=True)
p.add_argument("--dataset", required=True)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--json", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
cfg = {"data_path": a.data_dir, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
       "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
       "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None,
       "embedding_size": 50, "hidden_size": 50, "num_layers": 1, "dropout_prob": 0.3,
       "kernel_size": 3, "block_num": 5, "dilations": [1, 4], "reg_weight": 0.0,
       "device": "cpu", "use_gpu": False, "seed": 42, "reproducibility": True}
config = Config(model=a.model, dataset=a.dataset, config_dict=cfg)
init_seed(42, True)
dataset = create_dataset(config)
model = get_model(a.model)(config, dataset)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
n_items = dataset.item_num
g = torch.Generator().manual_seed(0)
secs = []
for s in range(a.steps + 1):
    seq = torch.randint(1, n_items, (128, 50), generator=g)
    inter = {"item_id_list": seq, "item_length": torch.full((128,), 50, dtype=torch.long),
             "item_id": torch.randint(1, n_items, (128,), generator=g)}
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = model.calculate_loss(inter)
    loss.backward()
    opt.step()
    if s > 0:
        secs.append(time.perf_counter() - t0)
res = {"model": a.model, "dataset": a.dataset, "batch": 128, "window": 50, "threads": a.threads,
       "step_seconds": secs, "mean_step_seconds": sum(secs) / len(secs)}
print(json.dumps(res))
if a.json:
    json.dump(res, open(a.json, "w"), indent=1)
