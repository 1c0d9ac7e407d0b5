"""Summarise one of our runs (train_log.jsonl + metrics.json of RUN_DIR) in the
JSON layout of run_recbole.py: test full-ranking HR@10 / NDCG@10 and the
training seconds of every epoch (the shared loop's "seconds", validation excluded).

    python ours_json.py RUN_DIR OUT.json MODEL DATASET EPOCHS THREADS
"""
import json
import sys

run, out, model, ds, epochs, threads = sys.argv[1:]
# the log of the last run only: a restarted run (train.restart=true) appends after a new "start" event
log = [json.loads(l) for l in open(run + "/train_log.jsonl") if l.strip()]
starts = [i for i, e in enumerate(log) if e.get("event") == "start"]
ep = [e for e in log[starts[-1] if starts else 0:] if e.get("event") == "epoch"]
m = json.load(open(run + "/metrics.json"))["results"]
r = [x for x in m if x["scenario"] == "all" and x["kind"] == "full"][0]
res = {"model": model, "dataset": ds, "epochs": int(epochs), "threads": int(threads),
       "test": {"hit@10": r["hit@10"], "ndcg@10": r["ndcg@10"]}, "test_users": r["n_users"],
       "epoch_train_seconds": [e["seconds"] for e in ep],
       "mean_epoch_train_seconds": sum(e["seconds"] for e in ep) / len(ep)}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res))
