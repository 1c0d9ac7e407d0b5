#!/usr/bin/env python3
"""Golden fixtures for A-LLMRec's LLM evaluation (tests/allmrec/test_llm_generate.c):
generation and decoding exactly as the release gets them under transformers 4.32.1
(RELEASE.md 1.6).

generation/  a tiny random OPTForCausalLM (OPTConfig: vocab 50,269 = A-LLMRec's resized
             vocabulary, 2 layers, hidden 16, 2 heads, ffn 32; seeded; weights stored in f16
             and computed in f32) and fixtures.safetensors:
  embeds (2, T, 16) f32   the two left-padded rows given as inputs_embeds, laid out as the
                          release: [O_u] [PAD]*k </s> prompt (O_u a random vector, the rest
                          embed_tokens(ids))
  ids (2, T) i32          the ids behind embeds (O_u slot: 0, never read)
  mask (2, T) u8          [1, 0..0, 1..1]
  gen_out (2, L) i32      generate(inputs_embeds=..., attention_mask=..., max_length=40,
                          repetition_penalty=1.5, min_length=1, pad_token_id=2,
                          do_sample=False, num_beams=1): under 4.32.1 input_ids starts as
                          [[2]] (the dummy BOS: counted by max_length, in the penalty set),
                          so this is 2 followed by <= 39 new ids, finished rows padded with 2
  gen_other (2, L2) i32   the same generation with the penalty set started empty (the later
                          transformers semantics), to show the fixture tells the two apart
decode_cases.json  [{"ids": [...], "text": ...}]: 4.32.1 slow GPT2Tokenizer configured as the
             release (L4R:18-29) on an OPT-numbered vocab.json (fairseq ids + the four
             madeupword fillers, RELEASE.md section 6 decision 7), decoded as AM:406-408:
             ids 0 -> 2, batch_decode(skip_special_tokens=True) with the default
             clean_up_tokenization_spaces=True, then .strip().

Run (venv with CPU torch + transformers==4.32.1):
  python3 tests/golden/allmrec/make_generation_fixtures.py tests/fixtures/allmrec ../shared/data/tokenizer_gpt2_opt
"""
import json
import os
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Tokenizer, OPTConfig, OPTForCausalLM

assert transformers.__version__ == "4.32.1", transformers.__version__
torch.set_num_threads(1)
OUT = sys.argv[1]
TOK = sys.argv[2]
V, H = 50269, 16


def make_model(seed):
    torch.manual_seed(seed)
    cfg = OPTConfig(vocab_size=V, hidden_size=H, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                    max_position_embeddings=1024, word_embed_proj_dim=H, dropout=0.0, attention_dropout=0.0,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2)
    m = OPTForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.5 * torch.randn_like(p) / max(1.0, (p.shape[-1] / 16) ** 0.5))
        # a long EOS row: its logit is large in magnitude, so the penalty on id 2 decides
        # whether and when a row stops
        m.model.decoder.embed_tokens.weight[2] *= 6.0
    return m.half().float()  # the weights as stored (f16), computed in f32


def generate(m, embeds, mask, penalise_bos):
    kw = dict(attention_mask=mask, max_length=40, repetition_penalty=1.5, min_length=1, pad_token_id=2,
              do_sample=False, num_beams=1)
    with torch.no_grad():
        if penalise_bos:
            return m.generate(inputs_embeds=embeds, **kw)  # 4.32.1: input_ids = [[2]]
        # the penalty set started empty: an empty input_ids (later transformers)
        ids0 = torch.empty((embeds.shape[0], 0), dtype=torch.long)
        kw["max_length"] = 39
        return m.generate(inputs_embeds=embeds, input_ids=ids0, **kw)


def rows(m, seed):
    g = torch.Generator().manual_seed(seed)
    emb = m.get_input_embeddings()
    n0, n1, k1 = 9, 6, 3  # prompt lengths (after </s>) and row 1's padding
    T = 2 + n0
    ids = torch.zeros(2, T, dtype=torch.long)
    mask = torch.ones(2, T, dtype=torch.long)
    ids[0, 1] = 2
    ids[0, 2:] = torch.randint(4, 50265, (n0,), generator=g)
    ids[1, 1:1 + k1] = 50265  # [PAD]
    mask[1, 1:1 + k1] = 0
    ids[1, 1 + k1] = 2
    ids[1, 2 + k1:] = torch.randint(4, 50265, (n1,), generator=g)
    with torch.no_grad():
        x = emb(ids).clone()
    x[:, 0] = 0.8 * torch.randn(2, H, generator=g)  # O_u
    return ids, mask, x


def main_generation():
    for mseed in range(1, 200):
        m = make_model(mseed)
        ids, mask, x = rows(m, 1000 + mseed)
        out = generate(m, x, mask, True)
        other = generate(m, x, mask, False)
        new = out[:, 1:]
        ends = [(r == 2).nonzero() for r in new]
        stop0 = int(ends[0][0]) if len(ends[0]) else None
        stop1 = int(ends[1][0]) if len(ends[1]) else None
        differ = other.shape != new.shape or not torch.equal(other, new)
        # want: one row stops early (pads with 2 after), the other runs on, and the two
        # penalty scopes give different tokens
        if stop0 is not None and 3 <= stop0 < 30 and stop1 is None and differ:
            break
    else:
        raise SystemExit("no seed gave the wanted case")
    d = os.path.join(OUT, "generation")
    os.makedirs(d, exist_ok=True)
    m.half().save_pretrained(d, safe_serialization=True)
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)
    f = {"embeds": x.float(), "ids": ids.int(), "mask": mask.to(torch.uint8), "gen_out": out.int(),
         "gen_other": other.int()}
    save_file({k: v.contiguous() for k, v in f.items()}, os.path.join(d, "fixtures.safetensors"))
    print("model seed", mseed, "row 0 stops after", stop0 + 1, "new tokens")
    print("gen_out", out.tolist())
    print("gen_other", other.tolist())


def make_release_tokenizer(tmp):
    gpt2 = json.load(open(os.path.join(TOK, "vocab.json"), encoding="utf-8"))
    inv = {v: k for k, v in gpt2.items()}
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    with open(os.path.join(TOK, "fairseq_gpt2_dict.txt")) as f:
        for line_no, line in enumerate(f):
            tok = line.split()[0]
            if not tok.isdigit():
                break
            vocab[inv[int(tok)]] = 4 + line_no
    for i in range(4):  # facebook/opt's vocab.json has 50,265 entries
        vocab["madeupword%04d" % i] = len(vocab)
    assert len(vocab) == 50265
    vp = os.path.join(tmp, "vocab.json")
    json.dump(vocab, open(vp, "w", encoding="utf-8"), ensure_ascii=False)
    # facebook/opt special_tokens_map: bos/eos/unk </s>, pad <pad>
    tok = GPT2Tokenizer(vocab_file=vp, merges_file=os.path.join(TOK, "merges.txt"), bos_token="</s>",
                        eos_token="</s>", unk_token="</s>", pad_token="<pad>", add_bos_token=True,
                        add_prefix_space=False)
    tok.add_special_tokens({'pad_token': '[PAD]'})
    tok.add_special_tokens({'bos_token': '</s>'})
    tok.add_special_tokens({'eos_token': '</s>'})
    tok.add_special_tokens({'unk_token': '</s>'})
    tok.add_special_tokens({'additional_special_tokens': ['[UserRep]', '[HistoryEmb]', '[CandidateEmb]']})
    assert len(tok) == 50269 and tok.pad_token_id == 50265
    assert tok.convert_tokens_to_ids(['[UserRep]', '[HistoryEmb]', '[CandidateEmb]']) == [50266, 50267, 50268]
    return tok


DECODE_TEXTS = [
    '"The Matrix"', ' "Heat" .', 'It is good , isn\'t it ?', "I don 't know", "it 's the user 's choice",
    "we 're here , they 've gone , I 'm out !", "a ' b", "rock ' n ' roll", "Tom 's ' best '",
    'Caf\u00e9 "Am\u00e9lie" ( 2001 ) .', "  leading and trailing  ", "no space.before", "Ocean's Eleven",
    '"Alien" , "Aliens"', "I can't won't", " .", " n't", "x ?? y !! z", "LLM: \"Up\"",
    "\u65e5\u672c\u8a9e \u306e title ,",
]


def main_decode():
    with tempfile.TemporaryDirectory() as tmp:
        tok = make_release_tokenizer(tmp)
    cases = []
    g = torch.Generator().manual_seed(7)
    for text in DECODE_TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        cases.append(ids)
    # specials mixed in: the release's 0 -> 2 mapping, EOS and pads, the added tokens,
    # <pad> (1) and <unk> (3), which are no longer special and print literally
    base = tok.encode(' Hello , world', add_special_tokens=False)
    cases.append([2] + base + [2, 2, 2])
    cases.append([0, 0] + base + [0])
    cases.append(base[:2] + [50265, 50266] + base[2:] + [50267, 50268, 2])
    cases.append([1] + base + [3, 2])
    cases.append(base + [50261, 2])  # a madeupword filler
    cases.append(torch.randint(4, 50265, (12,), generator=g).tolist())
    cases.append([2, 2])
    out = []
    for ids in cases:
        mapped = [2 if i == 0 else i for i in ids]  # AM:406
        text = tok.batch_decode(torch.tensor([mapped]), skip_special_tokens=True)[0].strip()
        out.append({"ids": ids, "text": text})
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "decode_cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    for c in out:
        print(c["ids"][:8], repr(c["text"]))


if __name__ == "__main__":
    main_generation()
    main_decode()
