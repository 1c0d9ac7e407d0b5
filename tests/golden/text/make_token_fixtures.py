#!/usr/bin/env python3
"""Golden token ids for allmrec's tokenizers, produced by Hugging Face.

Writes tests/fixtures/text/tokens_golden.jsonl: one JSON object per line
  {"text": str, "src": str, "bert": [ids], "opt": [ids], "opt_dec": str}
- bert: BertTokenizerFast(vocab.txt of ../shared/data/tokenizer_bert_uncased,
  do_lower_case=True)(text)["input_ids"]  ([CLS] ... [SEP], no truncation).
  The slow BertTokenizer is run too and every difference is reported (it
  differs from the Rust one only on rare Unicode corner cases).
- opt: GPT2TokenizerFast over an OPT-numbered vocab.json built from
  fairseq_gpt2_dict.txt exactly as the staged SOURCE.md says (OPT id = 4 +
  0-based dict line of the GPT-2 id; 0..3 = <s> <pad> </s> <unk>), bos = eos =
  "</s>", pad "<pad>", unk "<unk>", "</s>" prepended (OPT's add_bos_token), plus
  A-LLMRec's added tokens [PAD] [UserRep] [HistoryEmb] [CandidateEmb];
  checked against the staged transformers test vector first.
- opt_dec: tokenizer.decode(opt ids without the BOS, clean_up_tokenization_spaces=False).

Strings: >= 2,000 real item titles/descriptions from ../shared/data (Beauty
items.tsv, Scientific item json, MovieLens u.item, Video Games items.tsv),
descriptions cut to 400 characters, plus hand-made edge cases.

Usage: python3 tests/golden/text/make_token_fixtures.py [--shared ../shared]
Needs: pip install transformers tokenizers (made with transformers 4.46.3,
tokenizers 0.20.3).
"""
import argparse, json, os, random, sys, tempfile

import tokenizers
import transformers
from transformers import BertTokenizer, BertTokenizerFast, GPT2TokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

EDGE = [
    "", " ", "   ", "\t", "\n", "\n\n\n", " \n", "a   b\n\n c", " leading space", "trailing spaces   ",
    "Hello world", "HELLO WORLD", "hello  world", "A photo of a cat",
    "Café Müller naïve résumé Ångström façade Øresund", "Crème brûlée à la française",
    "Straße Maßband GROẞ", "İstanbul ıI", "ΣΊΣΥΦΟΣ σοφός", "Ελληνικά", "Привет, мир! Ёлка",
    "日本語のテキストです。", "中文字符测试，你好！", "한국어 텍스트 테스트", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３",
    "ไทย ภาษา", "हिन्दी भाषा", "العربية نص", "עברית טקסט", "Tiếng Việt có dấu",
    "e\u0301 a\u0300 combining", "\u00e9 vs e\u0301", "ﬁ ﬂ ligatures", "½ ² ³ ⅷ", "№ ™ © ®",
    "emoji 👍 👍🏽 🎉 ❤️ 🥰 🧪", "family 👨‍👩‍👧 zwj", "flags 🇺🇸🇯🇵", "\U0001F970\U0001FAE0",
    "ctrl \x00 nul \x07 bell \x1b esc \x7f del", "tab\tnew\nret\rvt\x0bff\x0c", "nel\x85 nbsp\xa0 zwsp\u200b bom\ufeff",
    "line\u2028sep\u2029para", "ideographic\u3000space", "soft\u00adhyphen", "\ufffd replacement",
    "private \ue000 use", "unassigned \u0378 \U000E0080",
    "a" * 99, "b" * 100, "c" * 101, "supercalifragilisticexpialidocious" * 4, "x" * 300,
    "Ǆǅǆ ǈ titlecase", "ÀÉÎÕÜ àéîõü", "Ⅻ roman", "①②③ circled",
    "don't I'll we've they're she'd it's I'm 'tis O'Neil", "DON'T I'LL", "rock 'n' roll", "''quotes''",
    "12345 3.14159 1,000,000 -42 +7 1e10", "2019-03-04 12:30:45", "$19.99 €5 £3 ¥100", "50%off 3x 4K",
    "“smart quotes” ‘single’ — em-dash – en-dash … ellipsis", "math ∑ ∫ √ ∞ ≈ ≠ ≤ ≥ ± × ÷",
    "<html><body>tags</body></html>", "path/to/file.txt C:\\dir\\x", "email@example.com http://x.y/z?q=1&r=2",
    "#hashtag @mention", "snake_case camelCase kebab-case", "...!!!???", "---", "__init__",
    "</s>", "</s></s>", " </s> ", "a</s>b", "<s> <pad> <unk>", "[PAD]", "[PAD][PAD] [PAD]",
    "[UserRep]", "[HistoryEmb]", "[CandidateEmb]", "[UserRep][HistoryEmb][CandidateEmb]",
    "[CLS] hello [SEP] [MASK] [UNK]", "[cls] lower [sep]", "[UserRep is not closed", "<|endoftext|>",
    '[UserRep] is a user representation.This user has bought "OPI Nail Lacquer"[HistoryEmb],"Dr. Scholl\'s Bath"[HistoryEmb] in the previous. Recommend one next item for this user to buy next from the following item title set, "A"[CandidateEmb],"B"[CandidateEmb]. The recommendation is ',
    '"Toy Story (1995)"</s>', "Mixed 中文 and English 123 ünïcödé 👍",
]


def load_strings(shared):
    out = []
    p = os.path.join(shared, "data/amazon_beauty_2014/items.tsv")
    with open(p, encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f][1:]
    for r in rows[:700]:
        out.append(("beauty_title", r[2]))
    for r in rows[700:800]:
        out.append(("beauty_categories", r[3]))
    p = os.path.join(shared, "data/amazon_scientific_2018/Scientific.item.json")
    items = json.load(open(p, encoding="utf-8"))
    keys = list(items)[:500]
    for k in keys:
        out.append(("sci_title", items[k].get("title", "")))
        d = items[k].get("description", "")
        if d:
            out.append(("sci_description", d[:400]))
    p = os.path.join(shared, "data/movielens_100k/u.item")
    with open(p, encoding="latin-1") as f:
        for i, l in enumerate(f):
            if i >= 400:
                break
            out.append(("ml100k_title", l.split("|")[1]))
    p = os.path.join(shared, "data/amazon_videogames_2018_bigrec/items.tsv")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            rows = [l.rstrip("\n").split("\t") for l in f][1:]
        for r in rows[:300]:
            if len(r) > 2:
                out.append(("games_title", r[2]))
    for e in EDGE:
        out.append(("edge", e))
    return out


def make_opt_tokenizer(shared, tmp):
    d = os.path.join(shared, "data/tokenizer_gpt2_opt")
    gpt2 = json.load(open(os.path.join(d, "vocab.json"), encoding="utf-8"))
    inv = {v: k for k, v in gpt2.items()}
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    with open(os.path.join(d, "fairseq_gpt2_dict.txt")) as f:
        for line_no, line in enumerate(f):
            tok = line.split()[0]
            if not tok.isdigit():
                break  # madeupword padding
            vocab[inv[int(tok)]] = 4 + line_no
    vp = os.path.join(tmp, "vocab.json")
    json.dump(vocab, open(vp, "w", encoding="utf-8"), ensure_ascii=False)
    tok = GPT2TokenizerFast(vocab_file=vp, merges_file=os.path.join(d, "merges.txt"),
                            bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                            add_bos_token=True, add_prefix_space=False)
    tok.add_special_tokens({"additional_special_tokens": ["<s>", "<unk>"]})
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"additional_special_tokens": ["[UserRep]", "[HistoryEmb]", "[CandidateEmb]"]})
    # the published OPT test vector (transformers' OPTTokenizationTest)
    got = tok("A photo of a cat")["input_ids"]
    assert got == [2, 250, 1345, 9, 10, 4758], got
    assert tok.convert_tokens_to_ids("bos") == 31957
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/text/tokens_golden.jsonl"))
    a = ap.parse_args()
    strings = load_strings(a.shared)
    vocab_txt = os.path.join(a.shared, "data/tokenizer_bert_uncased/vocab.txt")
    bert = BertTokenizerFast(vocab_file=vocab_txt, do_lower_case=True)
    bert_slow = BertTokenizer(vocab_file=vocab_txt, do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        opt = make_opt_tokenizer(a.shared, tmp)
        n_diff = 0
        with open(a.out, "w", encoding="utf-8") as f:
            for src, s in strings:
                b = bert(s)["input_ids"]
                bs = bert_slow(s)["input_ids"]
                if b != bs:
                    n_diff += 1
                    print("note: slow BertTokenizer differs on %r" % s[:60], file=sys.stderr)
                o = opt(s)["input_ids"]
                dec = opt.decode(o[1:], clean_up_tokenization_spaces=False)
                rec = {"text": s, "src": src, "bert": b, "opt": o, "opt_dec": dec}
                if "\x00" in s:  # C strings stop at NUL: give the exact bytes too
                    rec["hex"] = s.encode("utf-8").hex()
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print("wrote %d strings to %s (transformers %s, tokenizers %s); slow/fast BERT differ on %d"
          % (len(strings), a.out, transformers.__version__, tokenizers.__version__, n_diff))


if __name__ == "__main__":
    main()
