#!/usr/bin/env python3
"""peft loads the adapters allmrec saved (the reverse of tests/lora's golden check).

  ALLMREC_LORA_EXPORT=/tmp/ours build/tests/lora/test_lora_golden test_save_roundtrip_peft_layout
  python3 tests/golden/lora/check_ours_in_peft.py /tmp/ours tests/fixtures/lora/all

The test saves the "all" adapters after one Adam step of ours (adapter_config.json
+ adapter_model.safetensors) and the logits allmrec computes with them on the
fixture batch (ours_logits.safetensors). Here peft's PeftModel.from_pretrained
reads that folder onto the fixture's base model and the logits are compared
(padded positions excluded). Prints the relative error; exit 1 above 1e-5.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import OPTForCausalLM

ours, fixture = sys.argv[1], sys.argv[2]
base = OPTForCausalLM.from_pretrained(fixture + "/base").eval()
model = PeftModel.from_pretrained(base, ours).eval()
fx = load_file(fixture + "/fixtures.safetensors")
ids, mask = fx["ids"].long(), fx["mask"].long()
with torch.no_grad():
    logits = model(input_ids=ids, attention_mask=mask).logits * mask[:, :, None]
want = load_file(ours + "/ours_logits.safetensors")["logits"] * mask[:, :, None]
rel = float((logits - want).norm() / want.norm())
changed = float((logits - fx["logits"]).norm() / fx["logits"].norm())
print(f"peft with allmrec's adapters: logits rel error {rel:.2e} (they differ from the fixture's by {changed:.2e})")
sys.exit(0 if rel <= 1e-5 and changed > 1e-4 else 1)
