#!/usr/bin/env python3
"""Golden fixtures for allmrec's OPT decoder (tests/opt/test_opt_golden.c).

Builds two small randomly initialised Hugging Face OPTForCausalLM models and
records what transformers computes for them, in fp32 on the CPU:

  pre_ln/   2 layers, hidden 64, 4 heads, ffn 128, vocab 122 (pre-LayerNorm,
            final LayerNorm: the shape of every released OPT but 350m)
  post_ln/  the same with word_embed_proj_dim 32 (project_in / project_out)
            and do_layer_norm_before = false (the opt-350m shape)

Each folder holds the model as Hugging Face writes it (config.json +
model.safetensors, lm_head tied and therefore not stored) and
fixtures.safetensors with:
  ids (B, T) i32, mask (B, T) u8 (row 1 left padded, row 2 right padded),
  inject_pos (K) i32 flat b*T+t, inject (K, Wd) f32 vectors replacing the
  token embeddings there, logits (B, T, V) f32 (padded positions zeroed),
  targets (B, T) i32 (next-token id scored from position t, -100 = none),
  loss (1) f32 (HF's loss with labels), grad_inject (K, Wd) f32,
  gen_ids (2, Tg) i32 + gen_mask (2, Tg) u8 (left padded prompts) and
  gen_out (2, 10) i32 = generate(input_ids, repetition_penalty=1.5,
  max_new_tokens=10, min_new_tokens=2), gen_emb_inject_pos / gen_emb_inject /
  gen_emb_out: the same prompts as inputs_embeds with injected vectors
  (HF then penalises generated ids only), score_prompt (1, Ts) i32,
  score_cands (5, Lc) i32 padded with -1, score_sum (5) f64 summed
  log-likelihoods of each candidate after the prompt.

Run (torch 2.5.1, transformers 4.46.3, safetensors; CPU is enough):
  python3 tests/golden/opt/make_opt_fixtures.py tests/fixtures/opt ../shared/data/tokenizer_gpt2_opt
(the second argument adds e2e_vocab/, see e2e() below).
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import OPTConfig, OPTForCausalLM

torch.set_num_threads(1)
OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/opt"
V = 122


def make_model(seed, word_embed_proj_dim, pre_ln):
    torch.manual_seed(seed)
    cfg = OPTConfig(vocab_size=V, hidden_size=64, num_hidden_layers=2, ffn_dim=128,
                    num_attention_heads=4, max_position_embeddings=64,
                    word_embed_proj_dim=word_embed_proj_dim, do_layer_norm_before=pre_ln,
                    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2)
    cfg._attn_implementation = "eager"
    m = OPTForCausalLM(cfg).eval()
    # larger weights than HF's 0.02 init, so logits are far from ties
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p) / max(1.0, (p.shape[-1] / 16) ** 0.5))
    return m


def fixtures(m, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = m.config
    Wd = cfg.word_embed_proj_dim
    emb = m.get_input_embeddings()
    B, T = 3, 10
    ids = torch.randint(3, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, :3] = 0      # left padding
    mask[2, T - 2:] = 0  # right padding
    ids[1, :3] = 1
    ids[2, T - 2:] = 1
    inject_pos = torch.tensor([0 * T + 2, 0 * T + 5, 1 * T + 6, 2 * T + 1], dtype=torch.long)
    inject = 0.5 * torch.randn(len(inject_pos), Wd, generator=g)
    # labels in HF's convention (scored against logits of the previous position)
    labels = torch.full((B, T), -100, dtype=torch.long)
    labels[0, 4:] = ids[0, 4:]
    labels[1, 6:] = ids[1, 6:]
    labels[2, 3:T - 2] = ids[2, 3:T - 2]

    x = emb(ids).detach().clone()
    x.view(B * T, Wd)[inject_pos] = inject
    x.requires_grad_(True)
    out = m(inputs_embeds=x, attention_mask=mask, labels=labels)
    out.loss.backward()
    logits = out.logits.detach() * mask[..., None]
    grad_inject = x.grad.view(B * T, Wd)[inject_pos].detach()
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = labels[:, 1:]

    f = {
        "ids": ids.int(), "mask": mask.to(torch.uint8), "inject_pos": inject_pos.int(),
        "inject": inject.float(), "logits": logits.float(), "targets": targets.int(),
        "loss": out.loss.detach().reshape(1).float(), "grad_inject": grad_inject.float(),
    }

    # greedy generation, ids given: HF penalises prompt and generated ids
    Tg = 7
    gen_ids = torch.randint(3, V, (2, Tg), generator=g)
    gen_mask = torch.ones(2, Tg, dtype=torch.long)
    gen_mask[1, :2] = 0
    gen_ids[1, :2] = 1
    with torch.no_grad():
        o = m.generate(input_ids=gen_ids, attention_mask=gen_mask, max_new_tokens=10, min_new_tokens=2,
                       do_sample=False, repetition_penalty=1.5, eos_token_id=2, pad_token_id=1)
    f["gen_ids"] = gen_ids.int()
    f["gen_mask"] = gen_mask.to(torch.uint8)
    f["gen_out"] = o[:, Tg:].int()
    # the same prompts as inputs_embeds with injected vectors: generated ids only are penalised
    gpos = torch.tensor([0 * Tg + 1, 1 * Tg + 4], dtype=torch.long)
    ginj = 0.5 * torch.randn(2, Wd, generator=g)
    xe = emb(gen_ids).detach().clone()
    xe.view(2 * Tg, Wd)[gpos] = ginj
    with torch.no_grad():
        o2 = m.generate(inputs_embeds=xe, attention_mask=gen_mask, max_new_tokens=8, do_sample=False,
                        repetition_penalty=1.5, eos_token_id=2, pad_token_id=1)
    f["gen_emb_inject_pos"] = gpos.int()
    f["gen_emb_inject"] = ginj.float()
    f["gen_emb_out"] = o2.int()

    # candidate scoring: sum log p(candidate | prompt)
    Ts = 8
    prompt = torch.randint(3, V, (1, Ts), generator=g)
    lens = [1, 3, 4, 2, 4]
    Lc = max(lens)
    cands = torch.full((len(lens), Lc), -1, dtype=torch.long)
    sums = []
    for c, L in enumerate(lens):
        cands[c, :L] = torch.randint(3, V, (L,), generator=g)
        seq = torch.cat([prompt[0], cands[c, :L]])[None]
        with torch.no_grad():
            lp = torch.log_softmax(m(input_ids=seq).logits.double(), -1)[0]
        sums.append(sum(lp[Ts - 1 + j, cands[c, j]].item() for j in range(L)))
    f["score_prompt"] = prompt.int()
    f["score_cands"] = cands.int()
    f["score_sum"] = torch.tensor(sums, dtype=torch.float64)
    return f


def main():
    for name, wd, pre_ln, seed in [("pre_ln", 64, True, 1), ("post_ln", 32, False, 2)]:
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        m = make_model(seed, wd, pre_ln)
        m.save_pretrained(d, safe_serialization=True)
        f = fixtures(m, 100 + seed)
        save_file({k: v.contiguous() for k, v in f.items()}, os.path.join(d, "fixtures.safetensors"))
        print(name, "loss", f["loss"].item(), "gen", f["gen_out"].tolist(), "gen_emb", f["gen_emb_out"].tolist())
    # drop what save_pretrained adds that the C tests do not need
    for name in ("pre_ln", "post_ln"):
        p = os.path.join(OUT, name, "generation_config.json")
        if os.path.exists(p):
            os.remove(p)



# ---------------------------------------------------------------------------
# End to end with the real GPT-2/OPT vocabulary: an A-LLMRec prompt (text with
# [UserRep]/[HistoryEmb]/[CandidateEmb]) tokenized by Hugging Face's GPT-2 BPE,
# renumbered into OPT's fairseq ids, with the 4 added tokens at 50265..50268
# as A-LLMRec's resize (vocabulary 50269), through a tiny OPT stored in f16.
#   python3 tests/golden/opt/make_opt_fixtures.py tests/fixtures/opt ../shared/data/tokenizer_gpt2_opt
def e2e(out_dir, tok_dir):
    from transformers import GPT2TokenizerFast
    tok = GPT2TokenizerFast(vocab_file=os.path.join(tok_dir, "vocab.json"),
                            merges_file=os.path.join(tok_dir, "merges.txt"))
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"additional_special_tokens": ["[UserRep]", "[HistoryEmb]", "[CandidateEmb]"]})
    line = {}
    with open(os.path.join(tok_dir, "fairseq_gpt2_dict.txt")) as f:
        for i, l in enumerate(f):
            w = l.split()[0]
            if w.isdigit():
                line[int(w)] = i
    def opt_id(g):
        return 50265 + (g - 50257) if g >= 50257 else 4 + line[g]
    text = ('[UserRep] is a user representation.This user has watched "The Matrix"[HistoryEmb],'
            '"Alien (1979)"[HistoryEmb] in the previous. Recommend one next movie for this user to watch '
            'next from the following movie title set, "Heat"[CandidateEmb],"Up"[CandidateEmb],'
            '"Jaws 2"[CandidateEmb]. The recommendation is ')
    target = '"Heat"'
    g = tok(text, add_special_tokens=False)["input_ids"]
    gt = tok(target, add_special_tokens=False)["input_ids"]
    # O_u before OPT's BOS: position 0 is the user representation, then </s>, then the prompt
    # (the [UserRep] token itself stays in the text, as the release's prompt has it)
    ids = [0, 2] + [opt_id(x) for x in g]
    tgt = [opt_id(x) for x in gt] + [2]
    seq = ids + tgt
    T = len(seq)
    V = 50269
    torch.manual_seed(5)
    cfg = OPTConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                    max_position_embeddings=T + 16, word_embed_proj_dim=16, dropout=0.0,
                    attention_dropout=0.0, pad_token_id=1, bos_token_id=2, eos_token_id=2)
    cfg._attn_implementation = "eager"
    m = OPTForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.5 * torch.randn_like(p) / max(1.0, (p.shape[-1] / 16) ** 0.5))
    m = m.half().float()  # the weights as stored (f16), computed in f32
    d = os.path.join(out_dir, "e2e_vocab")
    os.makedirs(d, exist_ok=True)
    m.half().save_pretrained(d, safe_serialization=True)
    m.float()
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)
    hist = [i for i, x in enumerate(ids) if x == 50267]
    cand = [i for i, x in enumerate(ids) if x == 50268]
    inject_pos = [0] + hist + cand
    gen = torch.Generator().manual_seed(9)
    inject = 0.5 * torch.randn(len(inject_pos), 16, generator=gen)
    x = m.get_input_embeddings()(torch.tensor([seq])).detach().clone()
    x[0, inject_pos] = inject
    x.requires_grad_(True)
    labels = torch.full((1, T), -100, dtype=torch.long)
    labels[0, len(ids):] = torch.tensor(tgt)
    o = m(inputs_embeds=x, labels=labels)
    o.loss.backward()
    targets = torch.full((1, T), -100, dtype=torch.long)
    targets[0, :-1] = labels[0, 1:]
    with torch.no_grad():
        xe = x.detach()[:, : len(ids)]
        go = m.generate(inputs_embeds=xe, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                        max_new_tokens=8, do_sample=False, repetition_penalty=1.5, eos_token_id=2, pad_token_id=1)
    f = {
        "text": torch.tensor(list(text.encode()), dtype=torch.uint8),
        "target_text": torch.tensor(list(target.encode()), dtype=torch.uint8),
        "ids": torch.tensor([seq], dtype=torch.int32), "prompt_len": torch.tensor([len(ids)], dtype=torch.int32),
        "inject_pos": torch.tensor(inject_pos, dtype=torch.int32), "inject": inject.float(),
        "targets": targets.int(), "loss": o.loss.detach().reshape(1).float(),
        "grad_inject": x.grad[0, inject_pos].float(),
        "last_logits": o.logits[0, -1].detach().float(), "gen_out": go.int(),
    }
    save_file({k: v.contiguous() for k, v in f.items()}, os.path.join(d, "fixtures.safetensors"))
    print("e2e", len(ids), "prompt tokens; loss", o.loss.item(), "gen", go.tolist())


if __name__ == "__main__":
    main()
    if len(sys.argv) > 2:
        e2e(OUT, sys.argv[2])
