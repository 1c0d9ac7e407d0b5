#!/usr/bin/env python3
"""Golden Stage-2 step of A-LLMRec, reimplemented from RELEASE.md 1.5 (not from the release's code).

Writes tests/fixtures/allmrec/stage2_tiny/:
  config.json + model.safetensors  a tiny OPT (vocab 50,269 so that [PAD] 50265 and the
                                   A-LLMRec tokens 50266..50268 are real rows; 2 layers, hidden 16)
  rows.json                        the two rows: titles, item indices, prompt and target texts
  fixtures.safetensors             x_u (2, 8), v (n_items, 128) item vectors, F_U/F_I parameters
                                   ("log_emb_proj.0.weight", ..., "item_emb_proj.3.bias"),
                                   llm_ids / llm_mask (B, T-1) and labels (B, T) of the release's
                                   layout, loss (1), grad.<param> for every F_U/F_I tensor,
                                   d_inject (B + n_markers, 16): dloss/dO_u rows then dloss/dO_i in
                                   (row, position) order
The step, as RELEASE.md 1.5 describes the release:
  F_U = Linear(8,16)-LayerNorm-LeakyReLU-Linear(16,16), F_I = Linear(128,16)-LayerNorm-GELU-Linear(16,16),
  xavier_normal_ on the two Linear weights of each, PyTorch default biases, LN 1/0 (seeded torch).
  Prompts: make_token_fixtures.build_prompt (Luxury_Beauty phrasing), target '"title"</s>', tokenised by
  the 4.32.1 slow tokenizer set up as L4R:18-29; inputs padded right with [PAD] to the longest, targets
  likewise; per row input[:n_in] + target[1:] + input[n_in:] (ids and masks); labels = ids with [PAD]
  -> -100 and the first n_in -> -100, then a -100 column in front (the O_u slot); embeddings
  embed_tokens(ids) with the k-th [HistoryEmb] / [CandidateEmb] of a row replaced by F_I of its k-th
  history item / candidate; inputs_embeds = [F_U(x_u)] + embeddings, attention mask [1] + mask;
  loss = OPTForCausalLM(inputs_embeds, attention_mask, labels).loss (mean over every target token of
  the batch). fp32 CPU, dropout 0 (the release runs OPT in eval mode).

Usage: /work/venv-golden/bin/python tests/golden/allmrec/make_stage2_fixtures.py [--shared ../shared]
Made with torch (CPU, PyPI) and transformers 4.32.1.
"""
import argparse, json, os, sys, tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import OPTConfig, OPTForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
from make_token_fixtures import PHRASING, build_prompt, quoted, release_tokenizer  # noqa: E402

D_USER, D_ITEM, H = 8, 128, 16


def projection(d_in, act):
    f = torch.nn.Sequential(torch.nn.Linear(d_in, H), torch.nn.LayerNorm(H), act, torch.nn.Linear(H, H))
    torch.nn.init.xavier_normal_(f[0].weight)
    torch.nn.init.xavier_normal_(f[3].weight)
    return f


def tiny_opt():
    cfg = OPTConfig(vocab_size=50269, hidden_size=H, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                    max_position_embeddings=2048, word_embed_proj_dim=H, do_layer_norm_before=True,
                    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2)
    m = OPTForCausalLM(cfg).eval()
    with torch.no_grad():  # weights larger than HF's 0.02 so the gradients are not tiny
        for name, p in m.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/allmrec/stage2_tiny"))
    a = ap.parse_args()
    assert transformers.__version__ == "4.32.1", transformers.__version__
    torch.manual_seed(1234)
    opt = tiny_opt()
    fu = projection(D_USER, torch.nn.LeakyReLU())
    fi = projection(D_ITEM, torch.nn.GELU())
    with open(os.path.join(a.shared, "data/amazon_beauty_2014/items.tsv"), encoding="utf-8") as f:
        titles = [r.rstrip("\n").split("\t")[2] for r in list(f)[1:]]
    # two users: 3 history items (one without a title) and 12 (the last 10 shown); 20 candidates each
    pick = [5, 17, 230, 1203, 88, 9, 451, 2020, 1500, 77, 310, 999, 1234, 4321, 3000, 42, 64, 128, 256, 512,
            1024, 2048, 11, 13, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]
    v_titles = [titles[i] for i in pick]
    v_titles[2] = ""  # "No Title"
    rows = [{"history": [0, 1, 2], "candidates": list(range(3, 23)), "target": 7},
            {"history": list(range(22, 34)), "candidates": list(range(10, 30))[::-1], "target": 40}]
    tok_dir = tempfile.mkdtemp()
    tok = release_tokenizer(a.shared, tok_dir)
    pad, hid, cid = tok.pad_token_id, *tok.convert_tokens_to_ids(["[HistoryEmb]", "[CandidateEmb]"])
    prompts, targets, shown = [], [], []
    for r in rows:
        h = r["history"][-10:]
        shown.append(h)
        prompts.append(build_prompt(PHRASING["Luxury_Beauty"], [v_titles[i] for i in r["history"]],
                                    [v_titles[i] for i in r["candidates"]]))
        targets.append(quoted(v_titles[r["target"]]) + "</s>")
        r["prompt"], r["target_text"], r["history_shown"] = prompts[-1], targets[-1], h
    # the release's batch (tokenizer padding side right, its default)
    tin = tok(prompts, return_tensors="pt", padding="longest")
    tout = tok(targets, return_tensors="pt", padding="longest")
    ids, masks, n_ins = [], [], []
    for i in range(len(rows)):
        n_in = int(tin["attention_mask"][i].sum())
        n_ins.append(n_in)
        ids.append(torch.cat([tin["input_ids"][i][:n_in], tout["input_ids"][i][1:], tin["input_ids"][i][n_in:]]))
        masks.append(torch.cat([tin["attention_mask"][i][:n_in], tout["attention_mask"][i][1:],
                                tin["attention_mask"][i][n_in:]]))
    ids, masks = torch.stack(ids), torch.stack(masks)
    labels = ids.masked_fill(ids == pad, -100)
    for i, n in enumerate(n_ins):
        labels[i, :n] = -100
    B = len(rows)
    labels = torch.cat([torch.full((B, 1), -100, dtype=torch.long), labels], 1)
    # vectors
    x_u = torch.randn(B, D_USER)
    v = torch.rand(len(v_titles), D_ITEM)
    o_u = fu(x_u)
    o_u.retain_grad()
    emb = opt.get_input_embeddings()(ids).clone()
    o_i_list = []
    for i, r in enumerate(rows):
        hp = (ids[i] == hid).nonzero().flatten().tolist()
        cp = (ids[i] == cid).nonzero().flatten().tolist()
        assert len(hp) == len(shown[i]) and len(cp) == len(r["candidates"])
        items_at = {p: shown[i][k] for k, p in enumerate(hp)}
        items_at.update({p: r["candidates"][k] for k, p in enumerate(cp)})
        for p in sorted(items_at):
            o = fi(v[items_at[p]].unsqueeze(0))[0]
            o.retain_grad()
            o_i_list.append(o)
            emb[i, p] = o
    embeds = torch.cat([o_u.unsqueeze(1), emb], 1)
    att = torch.cat([torch.ones(B, 1, dtype=masks.dtype), masks], 1)
    out = opt(inputs_embeds=embeds, attention_mask=att, labels=labels)
    loss = out.loss
    loss.backward()
    d_inject = torch.cat([o_u.grad] + [o.grad.unsqueeze(0) for o in o_i_list], 0)
    n_tgt = int((labels != -100).sum())
    print("loss %.6f over %d target tokens, T = %d, %d injected vectors" % (loss.item(), n_tgt, ids.shape[1] + 1,
                                                                         d_inject.shape[0]))
    os.makedirs(a.out, exist_ok=True)
    opt.save_pretrained(a.out, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(a.out, extra)
        if os.path.exists(p):
            os.remove(p)
    t = {"x_u": x_u, "v": v, "llm_ids": ids.to(torch.int32), "llm_mask": masks.to(torch.int32),
         "labels": labels.to(torch.int32), "loss": loss.detach().reshape(1), "d_inject": d_inject.detach()}
    for prefix, net in (("log_emb_proj", fu), ("item_emb_proj", fi)):
        for name, p in net.named_parameters():
            t["%s.%s" % (prefix, name)] = p.detach().clone()
            t["grad.%s.%s" % (prefix, name)] = p.grad.detach().clone()
    save_file({k: x.contiguous() for k, x in t.items()}, os.path.join(a.out, "fixtures.safetensors"))
    json.dump({"titles": v_titles, "rows": rows, "n_targets": n_tgt, "phrasing": list(PHRASING["Luxury_Beauty"])},
              open(os.path.join(a.out, "rows.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
