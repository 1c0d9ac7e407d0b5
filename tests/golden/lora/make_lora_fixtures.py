#!/usr/bin/env python3
"""Golden fixtures for allmrec's LoRA adapters on OPT (tests/lora/test_lora_golden.c).

A tiny randomly initialised Hugging Face OPTForCausalLM (fp32, CPU, dropout 0)
wrapped by peft's get_peft_model, for two adapter settings:

  qv/   TALLRec's targets (q_proj, v_proj), r 8, alpha 16
  all/  every linear layer (q_proj, k_proj, v_proj, out_proj, fc1, fc2), r 4, alpha 12
  all_post_ln/  the same on the opt-350m shape (do_layer_norm_before false,
        word_embed_proj_dim 16: project_in / project_out)

lora_dropout is 0 in both (dropout masks are torch's RNG; the C test checks its
own dropout path against finite differences instead). B is set to random
values (peft starts it at zero, which would make every A gradient zero).

Each folder holds:
  base/           the base model (config.json + model.safetensors)
  adapter/        the adapters as peft writes them (save_pretrained with
                  safe_serialization: adapter_config.json + adapter_model.safetensors)
  fixtures.safetensors:
    ids (B, T) i32, mask (B, T) u8 (row 1 right padded), targets (B, T) i32
    (pre-shifted labels: targets[t] = labels[t + 1], -100 = not scored),
    loss (1) f32 (HF's loss with labels), logits (B, T, V) f32 (padded
    positions zeroed), for every adapter tensor <name>: grad.<name> (its
    gradient) and step.<name> (its value after one torch.optim.Adam step,
    lr 1e-2, betas (0.9, 0.999), eps 1e-8).

Run (torch, transformers 4.32.1, peft 0.6.2, safetensors; CPU is enough):
  python3 tests/golden/lora/make_lora_fixtures.py tests/fixtures/lora
"""
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import OPTConfig, OPTForCausalLM

torch.set_num_threads(1)
OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/lora"
B, T, V = 2, 12, 80


def batch():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(3, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = 1  # pad
    labels = ids.clone()
    labels[:, :5] = -100   # the prompt is not scored
    labels[mask == 0] = -100
    return ids, mask, labels


def make(name, targets, r, alpha, post_ln=False):
    torch.manual_seed(11)
    cfg = OPTConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                    max_position_embeddings=64, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                    layerdrop=0.0, word_embed_proj_dim=16 if post_ln else 32, do_layer_norm_before=not post_ln,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2, init_std=0.2)
    base = OPTForCausalLM(cfg).eval()
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    base.save_pretrained(os.path.join(out, "base"), safe_serialization=True)
    os.remove(os.path.join(out, "base", "generation_config.json"))  # not read by allmrec
    lcfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(base, lcfg)
    g = torch.Generator().manual_seed(17)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    model.save_pretrained(os.path.join(out, "adapter"), safe_serialization=True)
    os.remove(os.path.join(out, "adapter", "README.md"))  # peft's model card, not needed
    ids, mask, labels = batch()
    model.train()  # lora_dropout is 0: train and eval agree; train as a trainer would
    o = model(input_ids=ids, attention_mask=mask, labels=labels)
    o.loss.backward()
    fx = {"ids": ids.to(torch.int32), "mask": mask.to(torch.uint8),
          "loss": o.loss.detach().reshape(1).float(),
          "logits": (o.logits.detach() * mask[:, :, None]).float().contiguous()}
    tg = torch.full((B, T), -100, dtype=torch.int32)
    tg[:, :-1] = labels[:, 1:].to(torch.int32)
    fx["targets"] = tg
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for n, p in params:
        key = n.replace(".default", "")
        fx["grad." + key] = p.grad.detach().clone().contiguous()
    opt = torch.optim.Adam([p for _, p in params], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    for n, p in params:
        fx["step." + n.replace(".default", "")] = p.detach().clone().contiguous()
    save_file(fx, os.path.join(out, "fixtures.safetensors"))
    print(name, "loss", float(o.loss), "trainable", sum(p.numel() for _, p in params))


make("qv", ["q_proj", "v_proj"], 8, 16)
make("all", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], 4, 12)
make("all_post_ln", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], 4, 12, post_ln=True)
