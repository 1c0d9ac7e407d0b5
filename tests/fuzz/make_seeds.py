#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz harness into tests/fuzz/seeds/<name>/.

Seeds are tiny valid (or nearly valid) inputs that show the fuzzer each
format's shape; the fuzzer mutates them. An input standing for several files
holds them separated by the line "%%%%" (fuzz_util.h: FUZZ_SEP). Only the
standard library is used. Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n%%%%\n"


def seed(harness, name, *parts):
    d = os.path.join(HERE, "seeds", harness)
    os.makedirs(d, exist_ok=True)
    data = SEP.join(p.encode() if isinstance(p, str) else p for p in parts)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blob = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, 7)
    one = safetensors_bytes([("w", "F32", [2, 3], f32), ("ids", "I64", [2], struct.pack("<2q", 5, -1)),
                             ("h", "F16", [], struct.pack("<e", 0.5)), ("b", "BF16", [2], b"\x80\x3f\x00\x40"),
                             ("m", "U8", [1, 3], b"\x01\x00\x01"), ("i", "I32", [1], struct.pack("<i", 9)),
                             ("d", "F64", [1], struct.pack("<d", 2.5))], {"format": "pt"})
    seed("safetensors", "one", one)
    a = safetensors_bytes([("x", "F32", [2], struct.pack("<2f", 1, 2))])
    b = safetensors_bytes([("y", "F16", [1, 2], struct.pack("<2e", 1, 2))])
    index = json.dumps({"metadata": {"total_size": 12}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})
    seed("safetensors", "sharded", index, a, b)


def hf_config_seeds():
    fix = os.path.join(HERE, "..", "fixtures")
    opt = open(os.path.join(fix, "opt", "pre_ln", "config.json")).read()
    distil = open(os.path.join(fix, "text", "distilbert_tiny", "config.json")).read()
    bert = json.dumps({"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16,
                       "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"})
    seed("hf_config", "opt", opt)
    seed("hf_config", "distilbert", distil)
    seed("hf_config", "sbert", bert, json.dumps({"max_seq_length": 8, "do_lower_case": False}),
         json.dumps([{"idx": 0, "type": "sentence_transformers.models.Transformer"},
                     {"idx": 2, "type": "sentence_transformers.models.Normalize"}]),
         json.dumps({"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True,
                     "pooling_mode_cls_token": False}))


# GPT-2 byte-to-unicode for the handful of bytes the seeds use
def b2u(s):
    return s.replace(" ", "\u0120").replace("\n", "\u010a")


def bpe_files():
    toks = ["<|endoftext|>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
        ["\u0120", "\u010a", ".", ",", "!", "'", "0", "1", "th", "\u0120t", "he", "\u0120the", "er", "in"]
    vocab = json.dumps({t: i for i, t in enumerate(toks)}, ensure_ascii=False)
    merges = "#version: 0.2\nt h\n\u0120 t\nh e\n\u0120t he\ne r\ni n\n"
    return vocab, merges


def tokenizer_seeds():
    vocab, merges = bpe_files()
    text = "the winter's tale, in 1 hour! \u00e9t\u00e9 \U0001F600\n\n  </s>"
    seed("tokenizer_bpe", "small", vocab, merges, text)
    seed("tokenizer_bpe", "spaces", vocab, merges, "a" * 40 + " " * 5 + "the" * 10)
    wp = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sat", ",", ".", "un",
                    "##aff", "##able", "\u4e2d"]) + "\n"
    seed("tokenizer_wordpiece", "small", wp, "The cats sat, unaffable. Caf\u00e9 \u4e2d\u6587 \x00\x07 x")
    special = json.dumps({"bos_token": "</s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    tj = json.dumps({"added_tokens": [{"id": 40, "content": "[UserRep]", "special": True},
                                      {"id": 41, "content": "[HistoryEmb]", "special": True}]})
    cfg = json.dumps({"add_bos_token": True, "added_tokens_decoder": {"42": {"content": "[CandidateEmb]"}}})
    dict_txt = "".join(f"{i} {100 - i}\n" for i in range(1, 30)) + "madeupword0000 0\n"
    seed("tokenizer_dir", "bpe", vocab, merges, tj, json.dumps({"[X]": 43}), special, cfg, dict_txt,
         "[UserRep] the [HistoryEmb]in er")
    seed("tokenizer_dir", "wordpiece", wp, "", "", "", json.dumps({"unk_token": "[UNK]", "cls_token": "[CLS]"}),
         json.dumps({"do_lower_case": True}), "", "[CLS] the cats [SEP]")


def data_seed(harness, name, flags, *parts):
    seed(harness, name, bytes([flags]) + (parts[0].encode("latin-1") if isinstance(parts[0], str) else parts[0]),
         *[p.encode("latin-1") if isinstance(p, str) else p for p in parts[1:]])


def data_seeds():
    import gzip
    users, items = ["A1", "A2", "A3"], ["B1", "B2", "B3", "B4"]
    rev = ""
    for k, u in enumerate(users):
        for j, i in enumerate(items):
            rev += json.dumps({"overall": 1.0 + (k + j) % 5, "reviewerID": u, "asin": i,
                               "unixReviewTime": 1400000000 + 100 * j - k, "reviewText": "ok",
                               "style": {"Size:": " 1"}}) + "\n"
    meta = "".join(json.dumps({"asin": i, "title": f"Item {i} &amp; co", "description": ["d", "e"],
                               "category": ["Beauty", "Skin"], "brand": "Acme"}) + "\n" for i in items)
    data_seed("data_amazon_json", "plain", 0x10, rev, meta)
    data_seed("data_amazon_json", "gzip_drop", 0x1e, gzip.compress(rev.encode(), mtime=0),
              gzip.compress(meta.encode(), mtime=0))
    lit = "".join(repr({"asin": i, "title": f"It's {i}", "description": "x", "salesRank": {"Beauty": 3},
                        "categories": [["Beauty", "Skin"]], "related": {"also_bought": ["B1"]}, "price": 1.5,
                        "imUrl": None, "flag": True}) + "\n" for i in items)
    data_seed("data_amazon_literal", "small", 0x11, rev, lit)
    data_seed("data_movielens", "ml100k", 0x00, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
              "196\t302\t4\t881250900\n196\t1\t5\t881250949\n",
              "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
              "302|Caf\xe9 (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n")
    data_seed("data_movielens", "ml1m", 0x40, "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
              "1193::One Flew (1975)::Drama\n661::James (1996)::Animation|Children's|Musical\n")
    data_seed("data_recbole", "small", 0x00,
              "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti9\t4\t30\nu1\ti8\t3\t10\n"
              "u2\ti9\t5\t5\n",
              "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\ni9\tNine\t1999\tAction\n")
    data_seed("data_recbole", "seq", 0x00,
              "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ti1 i2 i3\ti4\nu2\ti2\ti3\n", "")
    items_tsv = "item_id\tasin\ttitle\tcategories\n1\tA1\tOne\tBeauty > Nails\n4\tA4\ttitle_4\tBeauty\n"
    data_seed("data_p5", "p5", 0x40, "1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n", items_tsv)
    data_seed("data_p5", "presplit", 0xc0, "1 1 2 3\n2 4 5\n3 2\n", items_tsv, "1 6\n2\n3\n", "1\n3 7\n2 1\n")
    data_seed("data_lcrec", "small", 0x00, '{"0": [0, 1, 2], "1": [3, 1], "10": [2, 0], "2": [4]}',
              '{"0": {"title": "Zero.", "description": "d0", "brand": "B", "categories": "x,y"}, '
              '"4": {"title": "Four.", "description": "", "brand": "", "categories": ""}}')
    data_seed("data_csv", "csv", 0x00, 'user,item,timestamp,rating\nalice,"Book, The",20,5\nalice,pen,10,4\n'
              'bob,pen,5,2\nbob,"say ""hi""",6,5\n',
              'item,title,description,brand\n"Book, The","The Book","A book, with commas",Acme\npen,Pen,,\n')
    data_seed("data_csv", "tsv", 0x40, "user\titem\nu\tb\nu\ta\nv\ta\n", "item\ttitle\na\tA\n")


def read_repo(*path):
    return open(os.path.join(HERE, "..", "..", *path), "rb").read()


def yaml_seeds():
    seed("yaml_config", "sasrec", read_repo("configs", "sasrec", "base.yaml"), "", "train.epochs=3\nmodel.d=[1, 2]")
    seed("yaml_config", "stage1", read_repo("configs", "stage1", "release.yaml"))
    seed("yaml_config", "with_base", "base: base.yaml\ntrain: {lr: 1.0e-3, seeds: [1, 2, 3]}\nname: 'x: \\'y'\n"
         "runs:\n  - {name: a, n: 1}\n  - {name: b}\nempty: ~\nflag: yes\n",
         "train: {batch_size: 128, lr: 1}\nmodel:\n  d: 64\n  # comment\n  tags: [a, \"b c\"]\n",
         "train.batch_size=64\nmodel.tags=~")
    seed("experiment", "quickstart", read_repo("experiments", "quickstart.yaml"))
    seed("experiment", "table1", read_repo("experiments", "table1.yaml"), "experiment.name=t")
    seed("experiment", "table11", read_repo("experiments", "table11.yaml"))


def h5_seeds():
    # edit lists (h5_image.c): op, target, then the op's bytes; empty = the template unchanged
    for h in ("h5_dataset", "h5_checkpoint"):
        seed(h, "unchanged", b"")
        seed(h, "set_elements", bytes([0, 1, 0, 3, 30, 0, 2, 0, 7, 200]))
        seed(h, "attrs", bytes([3, 0, 4, 3, 1, 10, 3, 2, 2, 4, 5]))
        seed(h, "resize_drop", bytes([1, 1, 0, 3, 2, 4, 6, 2, 1, 7, 3, 5]))


if __name__ == "__main__":
    h5_seeds()
    yaml_seeds()
    data_seeds()
    safetensors_seeds()
    hf_config_seeds()
    tokenizer_seeds()
