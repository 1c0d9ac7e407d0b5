#!/usr/bin/env python3
"""Golden fixtures for A-LLMRec Stage 1 (tests/allmrec/test_stage1_golden.c).

A short PyTorch reimplementation of the Stage-1 loss written from
../shared/docs/RELEASE.md section 1.4 (not from the release's code):

  two_layer_mlp(x) = (s, fc2(s)),  s = sigmoid(fc1(x))       (fc1: in -> 16, fc2: 16 -> in)
  E_p, E_n   rows of a frozen item table (B, d);  x_u (B, d)
  Q_p, Q_n   = mean-pooled DistilBERT over the quoted item texts '"title, description"'
  e, Ê = mlp(E);  q, Q̂ = mlp2(Q)
  l = mean_d(x_u * Ê)   (rec_logit mean)   or sum_d (dot)
  L_rec   = BCEwithLogits(l_p, 1) + BCEwithLogits(l_n, 0)
  L_match = MSE(e_p, q_p) + MSE(e_n, q_n)
  L_irec  = MSE(Ê_p, E_p) + MSE(Ê_n, E_n)
  L_trec  = MSE(Q̂_p, Q_p.detach()) + MSE(Q̂_n, Q_n.detach())
  L = rec_w L_rec + match_w L_match + alpha L_irec + beta L_trec

d = 8, d_joint = 16, B = 5 users, a tiny random DistilBertModel (2 layers,
hidden 32, 2 heads, ffn 64, dropout 0) with a vocabulary cut from the
uncased WordPiece vocab (../shared/data/tokenizer_bert_uncased/vocab.txt):
the special tokens plus every piece the ten texts use. Greedy longest-match
WordPiece gives the same pieces with the cut vocabulary (every piece it
picked is kept; longer prefixes were absent before too), so the ids are
those of the full tokenizer renumbered. Tokenised by transformers 4.32.1's
slow BertTokenizer (lower-case, [CLS] ... [SEP], truncation to
max_seq_length = 20, right padding), as sentence-transformers 2.2.2 does.

Writes tests/fixtures/allmrec/stage1/:
  config.json, vocab.txt, sentence_bert_config.json, model.safetensors (the SBERT, HF names)
  texts.json        the ten texts (pos rows then neg rows) and their ids
  golden.safetensors:
    xu (5, 8), E (10, 8) pos rows then neg rows, ids (10, T) i32, mask (10, T) u8
    init.<mlp|mlp2>.<fc1|fc2>.<weight|bias>       the autoencoders before the step
    <case>.loss (5) f64 = rec, match, irec, trec, total
    <case>.grad.<name>  d total / d every AE tensor (mlp.*, mlp2.*) and DistilBERT tensor (sbert.<hf name>)
    A.after.<name>      every parameter after one Adam(1e-4, (0.9, 0.98), 1e-8) step of case A
  cases: A weights (1, 1, 0.5, 0.2) mean;  B (1, 1, 0.5, 0.5) mean;  C (1, 1, 0.5, 0.2) dot.
Run with /work/venv-golden (CPU torch, transformers 4.32.1):
  python tests/golden/allmrec/make_stage1_fixtures.py ../shared/data/tokenizer_bert_uncased/vocab.txt
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import BertTokenizer, DistilBertConfig, DistilBertModel

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(os.path.join(HERE, "..", "..", "fixtures", "allmrec", "stage1"))
D, DJ, B, HID, MAXLEN = 8, 16, 5, 32, 20

TITLES = [  # (title, description) with the release's fallbacks already applied
    ("Pure Argan Oil", "Cold-pressed, 100% organic; for hair & skin."),
    ("No Title", "No Description"),
    ("L'Oréal Paris Voluminous Mascara", "Black \"carbon\" formula"),
    ("Nail Polish, Red", "Empty description"),
    ("Shampoo", "A very long description that goes on and on about the shampoo's many virtues until the "
                "tokenizer has to truncate it"),
    ("Crème Brûlée Lip Balm", "No Description"),
    ("Tweezers", "Stainless steel, slanted tip"),
    ("No Title", "Soft bristles"),
    ("Eye Shadow Palette (12 colours)", "Matte and shimmer"),
    ("Sunscreen SPF 50", "Water-resistant for 80 minutes"),
]


def text_of(title, desc):
    return '"' + title + ", " + desc + '"'


def cut_vocab(full_vocab_path, texts):
    full = BertTokenizer(full_vocab_path, do_lower_case=True)
    used = set()
    for t in texts:
        used.update(full.tokenize(t.strip()))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    order = {tok: i for i, tok in enumerate(full.vocab)}
    pieces = specials + sorted(used - set(specials), key=lambda x: order[x])
    with open(os.path.join(OUT, "vocab.txt"), "w", encoding="utf-8") as f:
        for p in pieces:
            f.write(p + "\n")
    cut = BertTokenizer(os.path.join(OUT, "vocab.txt"), do_lower_case=True)
    for t in texts:  # the renumbering argument above, checked
        assert cut.tokenize(t.strip()) == full.tokenize(t.strip()), t
    return cut, len(pieces)


class TwoLayerMLP(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = torch.nn.Linear(dim, DJ)
        self.fc2 = torch.nn.Linear(DJ, dim)

    def forward(self, x):
        s = torch.sigmoid(self.fc1(x))
        return s, self.fc2(s)


def pooled(sbert, ids, mask):
    h = sbert(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def stage1_loss(sbert, mlp, mlp2, xu, E, ids, mask, w, dot):
    rec_w, match_w, alpha, beta = w
    Q = pooled(sbert, ids, mask)
    e, Eh = mlp(E)
    q, Qh = mlp2(Q)
    p, n = slice(0, B), slice(B, 2 * B)
    red = (lambda a: a.sum(-1)) if dot else (lambda a: a.mean(-1))
    lp, ln = red(xu * Eh[p]), red(xu * Eh[n])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    mse = torch.nn.functional.mse_loss
    l_rec = bce(lp, torch.ones_like(lp)) + bce(ln, torch.zeros_like(ln))
    l_match = mse(e[p], q[p]) + mse(e[n], q[n])
    l_irec = mse(Eh[p], E[p]) + mse(Eh[n], E[n])
    l_trec = mse(Qh[p], Q[p].detach()) + mse(Qh[n], Q[n].detach())
    total = rec_w * l_rec + match_w * l_match + alpha * l_irec + beta * l_trec
    return total, [l_rec, l_match, l_irec, l_trec, total]


def named(sbert, mlp, mlp2):
    out = [("sbert." + k, v) for k, v in sbert.named_parameters()]
    out += [("mlp." + k, v) for k, v in mlp.named_parameters()]
    out += [("mlp2." + k, v) for k, v in mlp2.named_parameters()]
    return out


def main():
    full_vocab = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared", "data",
                                                                     "tokenizer_bert_uncased", "vocab.txt")
    os.makedirs(OUT, exist_ok=True)
    texts = [text_of(t, d) for t, d in TITLES]
    tok, V = cut_vocab(full_vocab, texts)
    enc = tok([t.strip() for t in texts], padding=True, truncation="longest_first", max_length=MAXLEN,
              return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]

    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=V, dim=HID, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
                           dropout=0.0, attention_dropout=0.0, pad_token_id=0)
    sbert = DistilBertModel(cfg)
    with torch.no_grad():  # larger-than-init weights so every term matters
        for k, p in sbert.named_parameters():
            if "LayerNorm" in k or "layer_norm" in k or k.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(10.0)
    mlp, mlp2 = TwoLayerMLP(D), TwoLayerMLP(HID)  # nn.Linear default init, as the release
    xu = torch.randn(B, D)
    E = 0.5 * torch.randn(2 * B, D)

    cfg.save_pretrained(OUT)
    with open(os.path.join(OUT, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": MAXLEN, "do_lower_case": False}, f)
    save_file({k: v.detach().contiguous() for k, v in sbert.state_dict().items()},
              os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "texts.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "ids": ids.tolist(), "mask": mask.tolist()}, f, ensure_ascii=False, indent=0)

    fx = {"xu": xu, "E": E, "ids": ids.to(torch.int32), "mask": mask.to(torch.uint8)}
    for k, v in list(mlp.named_parameters()):
        fx["init.mlp." + k] = v.detach().clone()
    for k, v in list(mlp2.named_parameters()):
        fx["init.mlp2." + k] = v.detach().clone()
    sbert.train()  # dropout is 0: train mode changes nothing but is what the release runs
    cases = {"A": ((1.0, 1.0, 0.5, 0.2), False), "B": ((1.0, 1.0, 0.5, 0.5), False), "C": ((1.0, 1.0, 0.5, 0.2), True)}
    for name, (w, dot) in cases.items():
        for _, p in named(sbert, mlp, mlp2):
            p.grad = None
        total, terms = stage1_loss(sbert, mlp, mlp2, xu, E, ids, mask, w, dot)
        total.backward()
        fx[name + ".loss"] = torch.tensor([t.item() for t in terms], dtype=torch.float64)
        for k, p in named(sbert, mlp, mlp2):
            fx[name + ".grad." + k] = p.grad.detach().clone()
        print(name, [round(t.item(), 6) for t in terms])
    # one Adam step of case A
    params = [p for _, p in named(sbert, mlp, mlp2)]
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    opt.zero_grad()
    total, _ = stage1_loss(sbert, mlp, mlp2, xu, E, ids, mask, cases["A"][0], False)
    total.backward()
    opt.step()
    for k, p in named(sbert, mlp, mlp2):
        fx["A.after." + k] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in fx.items()}, os.path.join(OUT, "golden.safetensors"))
    print("vocab", V, "ids", tuple(ids.shape), "->", OUT)


if __name__ == "__main__":
    main()
