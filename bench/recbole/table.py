"""The side-by-side table of bench/recbole/out/<model>_<dataset>_{recbole,ours}.json
(written by compare.sh) as Markdown: test HR@10 / NDCG@10 (full ranking) and the
mean and minimum training seconds per epoch of both, with the ratios.

    python bench/recbole/table.py [OUT_DIR]
"""
import glob
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out")
print("| model | dataset | epochs | threads | HR@10 RecBole | HR@10 ours | NDCG@10 RecBole | NDCG@10 ours "
      "| NDCG rel. diff | s/epoch RecBole mean (min) | s/epoch ours mean (min) | speed-up mean (min) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for rb_path in sorted(glob.glob(os.path.join(out, "*_recbole.json"))):
    ours_path = rb_path.replace("_recbole.json", "_ours.json")
    if not os.path.exists(ours_path):
        continue
    rb, us = json.load(open(rb_path)), json.load(open(ours_path))
    h_rb, n_rb = rb["test"]["hit@10"], rb["test"]["ndcg@10"]
    h_us, n_us = us["test"]["hit@10"], us["test"]["ndcg@10"]
    t_rb, t_us = rb["mean_epoch_train_seconds"], us["mean_epoch_train_seconds"]
    m_rb, m_us = min(rb["epoch_train_seconds"]), min(us["epoch_train_seconds"])
    # RecBole's sequential epoch is every prefix of every sequence, ours one row per user (README):
    # their epoch times measure different amounts of training
    speed = f"{t_rb / t_us:.1f}x ({m_rb / m_us:.1f}x)" if us["model"] == "ncf" else "not comparable (epochs differ)"
    print(f"| {us['model']} | {us['dataset']} | {us['epochs']} | {us['threads']} | {h_rb:.4f} | {h_us:.4f} "
          f"| {n_rb:.4f} | {n_us:.4f} | {(n_us - n_rb) / n_rb:+.1%} | {t_rb:.2f} ({m_rb:.2f}) | {t_us:.2f} ({m_us:.2f}) "
          f"| {speed} |")
