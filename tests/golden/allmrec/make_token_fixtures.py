#!/usr/bin/env python3
"""Golden token ids of A-LLMRec prompts under the release's tokenizer.

Writes tests/fixtures/allmrec/prompt_tokens.jsonl, one JSON object per prompt:
  {"name", "dataset", "phrasing": [verb_past, verb, noun] or null,
   "history": [titles], "candidates": [titles], "target_title": str,
   "prompt": str, "ids": [...], "target": str, "target_ids": [...]}
- prompt/target: built here from RELEASE.md 1.5 (not from the release's code):
  ' is a user representation.' + 'This user has <past> ' + H + ' in the previous.
  Recommend one next <noun> for this user to <verb> next from the following
  <noun> title set, ' + C + '. The recommendation is '; H = last 10 history
  titles '"t"[HistoryEmb]' joined by ','; C = '"t"[CandidateEmb]' joined by ',';
  without a phrasing the two clauses are dropped. Target '"t"</s>'.
- ids: the slow GPT2Tokenizer of transformers 4.32.1 (pure Python), loaded with
  AutoTokenizer(dir, use_fast=False) from a directory that mirrors facebook/opt's
  tokenizer files (vocab.json with OPT ids built from fairseq_gpt2_dict.txt as
  ../shared/data/tokenizer_gpt2_opt/SOURCE.md says, plus the four
  madeupword0000..0003 fillers to 50,265 entries; bos/eos/unk "</s>", pad
  "<pad>", add_bos_token), then configured exactly as the release (L4R:18-29):
  add_special_tokens pad [PAD], bos/eos/unk </s>, additional [UserRep]
  [HistoryEmb] [CandidateEmb]. tokenizer(prompt).input_ids (BOS prepended);
  target_ids = tokenizer(target).input_ids[1:] (the release drops its BOS).

Titles are real: Beauty 2014 items.tsv, Video Games 2018 items.tsv, MovieLens
100k u.item (latin-1), chosen to include commas, quotes, apostrophes and
non-ASCII; plus "No Title" fallbacks and empty histories. 60 prompts.

Usage: /work/venv-golden/bin/python tests/golden/allmrec/make_token_fixtures.py [--shared ../shared]
Made with transformers 4.32.1 (slow tokenizer; `tokenizers` not needed).
"""
import argparse, json, os, random, tempfile

import transformers
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

PHRASING = {"Movies_and_TV": ("watched", "watch", "movie"), "Video_Games": ("played", "play", "game"),
            "Luxury_Beauty": ("bought", "buy", "item"), "Toys_and_Games": ("bought", "buy", "item")}


def quoted(t):
    return '"' + (t if t else "No Title") + '"'


def build_prompt(phrasing, history, cands, history_len=10):
    h = ",".join(quoted(t) + "[HistoryEmb]" for t in history[-history_len:])
    c = ",".join(quoted(t) + "[CandidateEmb]" for t in cands)
    s = " is a user representation."
    if phrasing:
        past, verb, noun = phrasing
        s += "This user has " + past + " " + h + " in the previous. Recommend one next " + noun + \
             " for this user to " + verb + " next from the following " + noun + " title set, " + c
    else:
        s += h + c
    return s + ". The recommendation is "


def opt_tokenizer_dir(shared, tmp):
    d = os.path.join(shared, "data/tokenizer_gpt2_opt")
    gpt2 = json.load(open(os.path.join(d, "vocab.json"), encoding="utf-8"))
    inv = {v: k for k, v in gpt2.items()}
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    with open(os.path.join(d, "fairseq_gpt2_dict.txt")) as f:
        for line_no, line in enumerate(f):
            tok = line.split()[0]
            if not tok.isdigit():
                break
            vocab[inv[int(tok)]] = 4 + line_no
    for k in range(4):  # facebook/opt's vocab.json ends with madeupword0000..0003 (50,265 entries)
        vocab["madeupword%04d" % k] = len(vocab)
    assert len(vocab) == 50265
    json.dump(vocab, open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), encoding="utf-8") as fi, \
            open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as fo:
        fo.write(fi.read())
    # facebook/opt writes these as AddedToken dicts; without the Rust `tokenizers`
    # package 4.32.1's fallback AddedToken dataclass has no __str__ and breaks
    # them, so plain strings (the release replaces all four by plain strings anyway)
    json.dump({"tokenizer_class": "GPT2Tokenizer", "errors": "replace", "add_prefix_space": False,
               "add_bos_token": True, "bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>",
               "pad_token": "<pad>"}, open(os.path.join(tmp, "tokenizer_config.json"), "w"))
    json.dump({"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>"},
              open(os.path.join(tmp, "special_tokens_map.json"), "w"))
    json.dump({"model_type": "opt", "vocab_size": 50272}, open(os.path.join(tmp, "config.json"), "w"))
    return tmp


def release_tokenizer(shared, tmp):
    tok = AutoTokenizer.from_pretrained(opt_tokenizer_dir(shared, tmp), use_fast=False)
    assert type(tok).__name__ == "GPT2Tokenizer", type(tok)
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"bos_token": "</s>"})
    tok.add_special_tokens({"eos_token": "</s>"})
    tok.add_special_tokens({"unk_token": "</s>"})
    tok.add_special_tokens({"additional_special_tokens": ["[UserRep]", "[HistoryEmb]", "[CandidateEmb]"]})
    assert len(tok) == 50269 and tok.pad_token_id == 50265, (len(tok), tok.pad_token_id)
    assert tok.convert_tokens_to_ids(["[UserRep]", "[HistoryEmb]", "[CandidateEmb]"]) == [50266, 50267, 50268]
    assert tok("A photo of a cat")["input_ids"] == [2, 250, 1345, 9, 10, 4758]
    ids = tok('"A"[HistoryEmb] in the previous.')["input_ids"]
    assert ids[4:7] == [50267, 179, 5], ids  # 'in' (179), not 'Ġin' (11): RELEASE.md 1.5
    return tok


def load_titles(shared):
    def tsv(p, col):
        with open(p, encoding="utf-8") as f:
            return [r.rstrip("\n").split("\t")[col] for r in list(f)[1:]]
    beauty = tsv(os.path.join(shared, "data/amazon_beauty_2014/items.tsv"), 2)
    games = tsv(os.path.join(shared, "data/amazon_videogames_2018_bigrec/items.tsv"), 3)
    with open(os.path.join(shared, "data/movielens_100k/u.item"), encoding="latin-1") as f:
        movies = [l.split("|")[1] for l in f]
    return {"Luxury_Beauty": beauty, "Video_Games": games, "Movies_and_TV": movies}


def pick(pool, rng, n, special):
    """n titles, about a third of them from `special` (titles with , " ' or non-ASCII)"""
    out = []
    for _ in range(n):
        src = special if special and rng.random() < 0.35 else pool
        out.append(src[rng.randrange(len(src))])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/allmrec/prompt_tokens.jsonl"))
    a = ap.parse_args()
    assert transformers.__version__ == "4.32.1", transformers.__version__
    rng = random.Random(20240411)
    titles = load_titles(a.shared)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tok = release_tokenizer(a.shared, tmp)
        k = 0
        for ds, pool in titles.items():
            special = [t for t in pool if any(ch in t for ch in ",\"'") or any(ord(ch) > 127 for ch in t)]
            for j in range(20):
                # history sizes: empty, 1, 10, 10+, and random in between
                n_hist = [0, 1, 10, 13, 2, 7, 25, 0][j] if j < 8 else rng.randrange(0, 30)
                hist = pick(pool, rng, n_hist, special)
                cands = pick(pool, rng, 20, special)
                if j == 3:
                    hist[-1] = ""  # "No Title" fallback
                    cands[5] = ""
                target = cands[rng.randrange(20)]
                phrasing = PHRASING[ds] if j != 19 else None  # one no-clause prompt per dataset
                prompt = build_prompt(phrasing, hist, cands)
                tgt = quoted(target) + "</s>"
                rows.append({"name": "%s_%02d" % (ds, j), "dataset": ds if phrasing else "other",
                             "phrasing": list(phrasing) if phrasing else None, "history": hist,
                             "candidates": cands, "target_title": target, "prompt": prompt,
                             "ids": tok(prompt)["input_ids"], "target": tgt,
                             "target_ids": tok(tgt)["input_ids"][1:]})
                k += 1
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_in = sum(1 for r in rows for i, x in enumerate(r["ids"][1:]) if x == 179 and r["ids"][i] == 50267)
    print("wrote %d prompts to %s (%d with 'in' after [HistoryEmb])" % (len(rows), a.out, n_in))


if __name__ == "__main__":
    main()
