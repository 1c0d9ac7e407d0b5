// hf_config.c: Hugging Face config.json access by (dotted) key with defaults.
#include "allmrec/io.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"

allmrec_status hf_config_parse(struct hf_config *c, const char *json_text, const char *name) {
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", name ? name : "config.json");
    cJSON *root = cJSON_Parse(json_text);
    if (!root || !cJSON_IsObject(root)) {
        // locate the error as a 1-based line
        int64_t line = 0;
        const char *ep = cJSON_GetErrorPtr();
        if (root == NULL && ep && ep >= json_text && ep <= json_text + strlen(json_text)) {
            line = 1;
            for (const char *p = json_text; p < ep; p++) line += *p == '\n';
        }
        cJSON_Delete(root);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, c->path, line, NULL,
                              "not a JSON object (is this a Hugging Face config.json?)");
    }
    c->root = root;
    return ALLMREC_OK;
}

allmrec_status hf_config_load(struct hf_config *c, const char *path) {
    char buf[4096];
    const char *file = path;
    if (fs_is_dir(path)) file = fs_join(buf, sizeof buf, path, "config.json");
    char *text = NULL;
    allmrec_status s = fs_read_all(file, &text, NULL);
    if (s != ALLMREC_OK) {
        memset(c, 0, sizeof *c);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, file, 0, NULL,
                              "cannot read the model's config.json (is this a Hugging Face model "
                              "directory?)");
    }
    s = hf_config_parse(c, text, file);
    free(text);
    return s;
}

void hf_config_free(struct hf_config *c) {
    if (!c) return;
    cJSON_Delete((cJSON *)c->root);
    c->root = NULL;
}

static const cJSON *cfg_get(const struct hf_config *c, const char *key) {
    if (!c || !c->root || !key) return NULL;
    const cJSON *node = (const cJSON *)c->root;
    char part[256];
    const char *p = key;
    while (node) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        node = cJSON_GetObjectItemCaseSensitive(node, part);
        if (!dot) break;
        p = dot + 1;
    }
    if (node && cJSON_IsNull(node)) return NULL;
    return node;
}

bool hf_config_has(const struct hf_config *c, const char *key) { return cfg_get(c, key) != NULL; }

// JSON numbers arrive as doubles: an integer is one with no fraction within
// +-2^53 (every such double is exact; converting a larger one to int64 is undefined)
static bool json_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) <= 9007199254740992.0;
}

int64_t hf_config_int(const struct hf_config *c, const char *key, int64_t def) {
    const cJSON *v = cfg_get(c, key);
    if (!json_integer(v)) return def;
    return (int64_t)v->valuedouble;
}

double hf_config_float(const struct hf_config *c, const char *key, double def) {
    const cJSON *v = cfg_get(c, key);
    if (!cJSON_IsNumber(v)) return def;
    return v->valuedouble;
}

bool hf_config_bool(const struct hf_config *c, const char *key, bool def) {
    const cJSON *v = cfg_get(c, key);
    if (!cJSON_IsBool(v)) return def;
    return cJSON_IsTrue(v);
}

const char *hf_config_string(const struct hf_config *c, const char *key, const char *def) {
    const cJSON *v = cfg_get(c, key);
    if (!cJSON_IsString(v)) return def;
    return v->valuestring;
}

allmrec_status hf_config_require_int(const struct hf_config *c, const char *key, int64_t *out) {
    const cJSON *v = cfg_get(c, key);
    if (!v)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, c ? c->path : "config.json", 0, key,
                              "required key is missing");
    if (!json_integer(v))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, c->path, 0, key, "must be an integer within +-2^53");
    *out = (int64_t)v->valuedouble;
    return ALLMREC_OK;
}

allmrec_status hf_config_require_float(const struct hf_config *c, const char *key, double *out) {
    const cJSON *v = cfg_get(c, key);
    if (!v)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, c ? c->path : "config.json", 0, key,
                              "required key is missing");
    if (!cJSON_IsNumber(v))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, c->path, 0, key, "must be a number");
    *out = v->valuedouble;
    return ALLMREC_OK;
}
