#!/usr/bin/env python3
"""Golden fixtures for allmrec's Longformer encoder (tests/longformer/test_longformer_golden.c).

A tiny randomly initialised Hugging Face LongformerModel (fp32, CPU, dropout 0,
no pooler), attention windows 4 and 8 (one-sided 2 and 4) on its two layers, a
batch of two sequences of T = 13 tokens (longer than both windows; HF pads
them to 16 internally), the second one padded after 9 tokens, global attention
on the first token (global_attention_mask[:, 0] = 1), random token types.

Two cases, each a folder:
  longformer/  LongformerModel(input_ids, attention_mask, global_attention_mask,
               token_type_ids): positions from the ids as RoBERTa does
  recformer/   the same encoder with RECFORMER's embeddings (Li et al. 2023):
               an item-position table (max_item_embeddings 6) added to the
               word embeddings, given to LongformerModel as inputs_embeds with
               the positions of the ids passed explicitly (RecformerEmbeddings
               computes word + position + token type + item position -> LayerNorm,
               which is what LongformerEmbeddings does with these inputs_embeds)

Each folder holds config.json + model.safetensors (the model as save_pretrained
writes it; recformer/ adds embeddings.item_position_embeddings.weight) and
fixtures.safetensors:
  ids, type_ids (B, T) i32; mask, global (B, T) u8; item_pos (B, T) i32 (recformer)
  out (B, T, C) f32: last_hidden_state
  r (B, T, C) f32: the loss is sum(out * r)
  grad.<name> for every parameter (HF state-dict names)

Run (torch, transformers 4.46.3, safetensors; CPU):
  /work/venv-golden/bin/python tests/golden/longformer/make_longformer_fixtures.py tests/fixtures/longformer
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LongformerConfig, LongformerModel

torch.set_num_threads(1)
OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/longformer"
B, T, V, PAD = 2, 13, 50, 1


def config():
    return LongformerConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=24, type_vocab_size=4,
                            attention_window=[4, 8], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            layer_norm_eps=1e-5, pad_token_id=PAD, bos_token_id=0, eos_token_id=2,
                            initializer_range=0.3)


def batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, V, (B, T), generator=g)
    ids[:, 0] = 0  # <s>
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = PAD
    glob = torch.zeros(B, T, dtype=torch.long)
    glob[:, 0] = 1
    types = torch.randint(0, 4, (B, T), generator=g)
    types[1, 9:] = 0
    item_pos = torch.zeros(B, T, dtype=torch.long)  # RECFORMER: 0 for <s>, item k for its tokens
    item_pos[:, 1:5] = 1
    item_pos[:, 5:9] = 2
    item_pos[:, 9:] = 3
    item_pos[1, 9:] = 0
    return ids, mask, glob, types, item_pos


def randomise(model, seed):
    # LayerNorms start at (1, 0) and biases at 0: random values so their gradients are tested in general position
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm.weight" in n:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def make(name, recformer):
    torch.manual_seed(21)
    cfg = config()
    if recformer:
        cfg.max_item_embeddings = 6  # RecformerConfig's key for the item-position table
    model = LongformerModel(cfg, add_pooling_layer=False).eval()
    randomise(model, 22)
    item = None
    if recformer:
        item = torch.nn.Embedding(6, 16)
        with torch.no_grad():
            item.weight.copy_(0.3 * torch.randn(6, 16, generator=torch.Generator().manual_seed(23)))
    out_dir = os.path.join(OUT, name)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    if recformer:  # the item-position table beside the encoder's weights
        from safetensors.torch import load_file
        sd = load_file(os.path.join(out_dir, "model.safetensors"))
        sd["embeddings.item_position_embeddings.weight"] = item.weight.detach().clone()
        save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    ids, mask, glob, types, item_pos = batch()
    if recformer:
        pos = (torch.cumsum(ids.ne(PAD).long(), 1) * ids.ne(PAD).long()) + PAD
        emb = model.embeddings.word_embeddings(ids) + item(item_pos)
        o = model(inputs_embeds=emb, attention_mask=mask, global_attention_mask=glob, token_type_ids=types,
                  position_ids=pos)
    else:
        o = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, token_type_ids=types)
    out = o.last_hidden_state
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(24))
    (out * r).sum().backward()
    fx = {"ids": ids.to(torch.int32), "type_ids": types.to(torch.int32), "mask": mask.to(torch.uint8),
          "global": glob.to(torch.uint8), "out": out.detach().contiguous(), "r": r}
    for n, p in model.named_parameters():
        fx["grad." + n] = p.grad.detach().clone().contiguous()
    if recformer:
        fx["item_pos"] = item_pos.to(torch.int32)
        fx["grad.embeddings.item_position_embeddings.weight"] = item.weight.grad.detach().clone()
    save_file(fx, os.path.join(out_dir, "fixtures.safetensors"))
    print(name, "out norm", float(out.detach().norm()), "params", sum(p.numel() for p in model.parameters()))


make("longformer", False)
make("recformer", True)
