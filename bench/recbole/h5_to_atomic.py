"""Write an allmrec prepared dataset (HDF5) as a RecBole atomic file, so that
RecBole trains and evaluates on exactly our interaction sequences.

    python h5_to_atomic.py DATASET.h5 OUT_DIR NAME   ->  OUT_DIR/NAME/NAME.inter

Columns: user_id:token (our 0-based user index), item_id:token (our item id),
timestamp:float = the item's position in the user's sequence, so RecBole's
time-ordered leave-one-out (eval_args order TO, split LS valid_and_test) puts
the same item last (test) and second last (valid) as `allmrec data split`.
"""
import os
import sys

import h5py

src, out_dir, name = sys.argv[1:4]
f = h5py.File(src, "r")
items = f["users/items"][:]
offsets = f["users/offsets"][:]
os.makedirs(os.path.join(out_dir, name), exist_ok=True)
path = os.path.join(out_dir, name, name + ".inter")
with open(path + ".tmp", "w") as w:
    w.write("user_id:token\titem_id:token\ttimestamp:float\n")
    for u in range(len(offsets) - 1):
        for t, i in enumerate(items[offsets[u]:offsets[u + 1]]):
            w.write(f"{u}\t{int(i)}\t{t}\n")
os.replace(path + ".tmp", path)
print(f"{path}: {len(offsets) - 1} users, {len(items)} interactions")
