// opt_save.c: write an OPT model as a Hugging Face directory (config.json +
// model.safetensors, names "model.decoder.*", q/k/v split back out of the fused
// matrix), so that a model made here (e.g. a tiny random OPT for the
// quickstart) is read back by opt_model_load like any released checkpoint.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/opt.h"

#define OPT_SAVE_MAX_NAMES 16 // tensors per layer: 2 LN x 2 + q/k/v/out/fc1/fc2 x 2

static allmrec_status write_config(const struct opt_model *m, const char *dir) {
    const struct opt_config *c = &m->cfg;
    char text[2048], p[1200];
    int n = snprintf(text, sizeof text,
                     "{\n  \"model_type\": \"opt\",\n  \"architectures\": [\"OPTForCausalLM\"],\n"
                     "  \"vocab_size\": %lld,\n  \"hidden_size\": %lld,\n  \"num_hidden_layers\": %lld,\n"
                     "  \"num_attention_heads\": %lld,\n  \"ffn_dim\": %lld,\n  \"max_position_embeddings\": %lld,\n"
                     "  \"word_embed_proj_dim\": %lld,\n  \"do_layer_norm_before\": %s,\n"
                     "  \"_remove_final_layer_norm\": %s,\n  \"enable_bias\": %s,\n"
                     "  \"layer_norm_elementwise_affine\": %s,\n  \"activation_function\": \"%s\",\n"
                     "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"pad_token_id\": %d,\n"
                     "  \"torch_dtype\": \"float32\"\n}\n",
                     (long long)c->vocab_size, (long long)c->hidden_size, (long long)c->n_layers,
                     (long long)c->n_heads, (long long)c->ffn_dim, (long long)c->max_positions,
                     (long long)c->word_embed_proj_dim, c->do_layer_norm_before ? "true" : "false",
                     c->do_layer_norm_before && !c->final_layer_norm ? "true" : "false",
                     c->enable_bias ? "true" : "false", c->ln_affine ? "true" : "false", c->activation, c->bos_id,
                     c->eos_id, c->pad_id);
    return fs_write_atomic(fs_join(p, sizeof p, dir, "config.json"), text, (size_t)n);
}

allmrec_status opt_model_save(const struct opt_model *m, const char *dir) {
    if (m->tp_size > 1 || m->ctx->device != ALLMREC_DEVICE_CPU || m->dtype != ALLMREC_DTYPE_F32)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_model_save: one process, CPU, f32 only (%s)", dir);
    const struct opt_config *c = &m->cfg;
    int64_t C = c->hidden_size;
    int cap = 6 + (int)c->n_layers * OPT_SAVE_MAX_NAMES;
    const char **names = calloc((size_t)cap, sizeof *names);
    char(*buf)[96] = calloc((size_t)cap, sizeof *buf);
    struct tensor *ts = calloc((size_t)cap, sizeof *ts);
    allmrec_status s = ALLMREC_OK;
    if (!names || !buf || !ts) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt_model_save: out of memory");
    int k = 0;
#define PUT(t, ...)                                                     \
    do {                                                                \
        if (!tensor_is_none(t)) {                                       \
            snprintf(buf[k], sizeof buf[k], "model.decoder." __VA_ARGS__); \
            names[k] = buf[k];                                          \
            ts[k++] = (t);                                              \
        }                                                               \
    } while (0)
    if (s == ALLMREC_OK) {
        PUT(m->wte, "embed_tokens.weight");
        PUT(m->wpe, "embed_positions.weight");
        PUT(m->proj_in, "project_in.weight");
        PUT(m->proj_out, "project_out.weight");
        PUT(m->lnf_w, "final_layer_norm.weight");
        PUT(m->lnf_b, "final_layer_norm.bias");
        static const char *QKV[3] = {"q_proj", "k_proj", "v_proj"};
        for (int64_t l = 0; l < c->n_layers; l++) {
            const struct opt_layer *y = &m->layers[l];
            long long L = (long long)l;
            PUT(y->ln1_w, "layers.%lld.self_attn_layer_norm.weight", L);
            PUT(y->ln1_b, "layers.%lld.self_attn_layer_norm.bias", L);
            for (int j = 0; j < 3; j++) {
                PUT(tensor_slice(y->qkv_w, 0, j * C, C), "layers.%lld.self_attn.%s.weight", L, QKV[j]);
                if (!tensor_is_none(y->qkv_b))
                    PUT(tensor_slice(y->qkv_b, 0, j * C, C), "layers.%lld.self_attn.%s.bias", L, QKV[j]);
            }
            PUT(y->out_w, "layers.%lld.self_attn.out_proj.weight", L);
            PUT(y->out_b, "layers.%lld.self_attn.out_proj.bias", L);
            PUT(y->ln2_w, "layers.%lld.final_layer_norm.weight", L);
            PUT(y->ln2_b, "layers.%lld.final_layer_norm.bias", L);
            PUT(y->fc1_w, "layers.%lld.fc1.weight", L);
            PUT(y->fc1_b, "layers.%lld.fc1.bias", L);
            PUT(y->fc2_w, "layers.%lld.fc2.weight", L);
            PUT(y->fc2_b, "layers.%lld.fc2.bias", L);
        }
    }
#undef PUT
    char p[1200];
    if (s == ALLMREC_OK) s = fs_mkdir_p(dir);
    if (s == ALLMREC_OK)
        s = safetensors_write(fs_join(p, sizeof p, dir, "model.safetensors"), k, names, ts, "{\"format\":\"pt\"}");
    if (s == ALLMREC_OK) s = write_config(m, dir);
    free(names);
    free(buf);
    free(ts);
    return s;
}
