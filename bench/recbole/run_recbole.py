"""Train and evaluate one RecBole model (NeuMF or SASRec) on an atomic dataset
written by h5_to_atomic.py, with the protocol of bench/recbole/README.md:
leave-one-out by sequence position, full ranking over all items, HR@10 and
NDCG@10, embedding size 50, batch 128, Adam, a fixed number of epochs, the
model of the best validation NDCG@10 evaluated on the test split.

    python run_recbole.py --model NeuMF --data-dir DIR --dataset NAME --epochs E --json OUT.json

Prints and writes the test metrics and the mean training seconds per epoch.
Uses recbole.config / data / trainer directly (recbole.quick_start imports ray).
"""
import argparse
import json
import time

import torch

# RecBole 1.2.0 reloads its own checkpoint with torch.load(); PyTorch >= 2.6 loads
# weights only by default, which refuses RecBole's pickled config: restore the old default.
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import get_model, init_seed  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--model", required=True, choices=["NeuMF", "SASRec", "GRU4Rec", "NextItNet"])
p.add_argument("--data-dir", required=True)
p.add_argument("--dataset", required=True)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--eval-step", type=int, default=1,
               help="validate every N epochs (0: never; the last epoch's model is tested)")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--json", required=True)
p.add_argument("--set", nargs="*", default=[], help="extra key=value (YAML values)")
a = p.parse_args()
torch.set_num_threads(a.threads)

cfg = {
    "data_path": a.data_dir,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Hit", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "train_batch_size": 128,
    "eval_batch_size": 4096,
    "learner": "adam",
    "learning_rate": 0.001,
    "epochs": a.epochs,
    "eval_step": a.eval_step,
    "stopping_step": 1000,
    "seed": 42,
    "reproducibility": True,
    "device": "cpu",
    "use_gpu": False,
    "show_progress": False,
    "checkpoint_dir": "saved",  # relative to the working directory (compare.sh: runs/)
    "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                              "candidate_num": 0},
}
if a.model == "NeuMF":
    cfg.update({"mf_embedding_size": 50, "mlp_embedding_size": 50, "mlp_hidden_size": [100, 50],
                "dropout_prob": 0.1, "mf_train": True, "mlp_train": True})
else:  # sequential models: one uniform negative per target. RecBole 1.2's SASRec offers BPR (pairwise,
    # -log sigmoid(s_pos - s_neg)) or CE over all items; ours (the release) is BCE on the positive and
    # the negative, so BPR with one negative is the nearest
    cfg.update({"MAX_ITEM_LIST_LENGTH": 50, "loss_type": "BPR", "hidden_size": 50, "embedding_size": 50})
if a.model == "SASRec":
    cfg.update({"n_layers": 2, "n_heads": 1, "inner_size": 50, "hidden_dropout_prob": 0.5,
                "attn_dropout_prob": 0.5, "hidden_act": "relu", "layer_norm_eps": 1e-8})
for kv in a.set:
    k, v = kv.split("=", 1)
    import yaml
    cfg[k] = yaml.safe_load(v)

config = Config(model=a.model, dataset=a.dataset, config_dict=cfg)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
trainer = Trainer(config, model)

# time the training part of each epoch (RecBole's _train_epoch), not the validation
epoch_secs = []
_train_epoch = trainer._train_epoch
def timed(*args, **kw):
    t0 = time.perf_counter()
    r = _train_epoch(*args, **kw)
    epoch_secs.append(time.perf_counter() - t0)
    return r
trainer._train_epoch = timed

best_valid, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
t0 = time.perf_counter()
test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
test_secs = time.perf_counter() - t0
res = {
    "model": a.model, "dataset": a.dataset, "epochs": a.epochs, "threads": a.threads,
    "n_users": int(dataset.user_num - 1), "n_items": int(dataset.item_num - 1),
    "train_interactions": len(train_data.dataset),
    "best_valid": {k: float(v) for k, v in (best_valid_result or {}).items()},  # {} with --eval-step 0
    "test": {k: float(v) for k, v in test.items()},
    "epoch_train_seconds": epoch_secs,
    "mean_epoch_train_seconds": sum(epoch_secs) / max(len(epoch_secs), 1),
    "test_eval_seconds": test_secs,
    "recbole_config": {k: (v if isinstance(v, (int, float, str, list, dict, bool, type(None))) else str(v))
                       for k, v in cfg.items()},
}
with open(a.json, "w") as w:
    json.dump(res, w, indent=1)
print(json.dumps({"test": res["test"], "mean_epoch_train_seconds": res["mean_epoch_train_seconds"]}))
