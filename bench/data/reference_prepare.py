#!/usr/bin/env python3
"""Reference preprocessing for bench_data_prepare: the A-LLMRec release's
algorithm (pre_train/sasrec/data_preprocess.py), restated with json.loads:

  pass 1 over the gzip reviews: count reviews per user and per item
         (Beauty/Toys: reviews with overall < 3 are left out of the counts);
  metadata: read every line of meta_<Category>.json with json.loads into a dict;
  pass 2 over the gzip reviews: keep a review if its user and item have at
         least 5 (Beauty/Toys: 4) counted reviews; number users and items from 1
         in order of first appearance; item text = title + first description
         element ("Empty description" when empty; description first, in one try);
  sort each user's items by time (stable) and write "user item" lines.

Usage: reference_prepare.py <Category>.json.gz meta_<Category>.json out.txt
Prints users, items, interactions on stdout.
"""
import gzip
import json
import sys
from collections import defaultdict


def parse(path):
    g = gzip.open(path, "rb")
    for l in g:
        yield json.loads(l)


def preprocess(reviews, meta, out):
    fname = reviews
    countU = defaultdict(lambda: 0)
    countP = defaultdict(lambda: 0)
    bt = ("Beauty" in fname) or ("Toys" in fname)
    for l in parse(reviews):
        if bt and l["overall"] < 3:
            continue
        countU[l["reviewerID"]] += 1
        countP[l["asin"]] += 1
    usermap, itemmap = {}, {}
    usernum = itemnum = 0
    User = {}
    name_dict = {"title": {}, "description": {}}
    with open(meta, "r") as f:
        json_data = f.readlines()
    data_list = [json.loads(line[:-1]) for line in json_data]
    meta_dict = {}
    for l in data_list:
        meta_dict[l["asin"]] = l
    threshold = 4 if bt else 5
    for l in parse(reviews):
        asin = l["asin"]
        rev = l["reviewerID"]
        time = l["unixReviewTime"]
        if countU[rev] < threshold or countP[asin] < threshold:
            continue
        if rev in usermap:
            userid = usermap[rev]
        else:
            usernum += 1
            userid = usernum
            usermap[rev] = userid
            User[userid] = []
        if asin in itemmap:
            itemid = itemmap[asin]
        else:
            itemnum += 1
            itemid = itemnum
            itemmap[asin] = itemid
        User[userid].append([time, itemid])
        try:
            if len(meta_dict[asin]["description"]) == 0:
                name_dict["description"][itemmap[asin]] = "Empty description"
            else:
                name_dict["description"][itemmap[asin]] = meta_dict[asin]["description"][0]
            name_dict["title"][itemmap[asin]] = meta_dict[asin]["title"]
        except Exception:
            pass
    for userid in User.keys():
        User[userid].sort(key=lambda x: x[0])
    n = 0
    with open(out, "w") as f:
        for user in User.keys():
            for i in User[user]:
                f.write("%s %d\n" % (user, i[1]))
                n += 1
    print(usernum, itemnum, n)


if __name__ == "__main__":
    preprocess(sys.argv[1], sys.argv[2], sys.argv[3])
