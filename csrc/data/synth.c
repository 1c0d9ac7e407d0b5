// synth.c: a deterministic synthetic dataset for the quickstart and tests.
//
// Items: n_categories categories, each with its own vocabulary; an item has a
// category, a latent vector (category centre + noise), a power-law popularity
// (Zipf exponent `zipf` over a random rank order), and belongs to a "series"
// of 1-4 consecutive items (Vol. 1, Vol. 2, ...). Titles and descriptions are
// generated from the category vocabulary. Users: a latent taste (a mix of one
// or two category centres + noise); each next item is, with probability
// seq_dep, the next volume of the series just consumed, otherwise the best of
// 24 popularity-sampled candidates under taste + Gumbel noise (a softmax
// choice). A fraction cold_user_frac of users has exactly 3 interactions;
// every item occurs at least once (tail items are the cold items). All draws
// come from Philox streams keyed by the seed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/philox.h"
#include "data/data_internal.h"

void synth_options_default(struct synth_options *o) {
    o->n_users = 1000;
    o->n_items = 500;
    o->n_categories = 8;
    o->dim = 8;
    o->mean_len = 12.0;
    o->zipf = 1.0;
    o->seq_dep = 0.3;
    o->cold_user_frac = 0.1;
    o->seed = 1;
    o->vocab_offset = 0;
    snprintf(o->item_id_prefix, sizeof o->item_id_prefix, "S");
}

struct vocab {
    const char *name;
    const char *nouns[6];
    const char *adjs[6];
    const char *uses[4];
};

static const struct vocab VOCABS[12] = {
    {"Beauty", {"Face Serum", "Lipstick", "Nail Polish", "Moisturizer", "Eye Shadow Palette", "Hair Mask"},
     {"Silky", "Radiant", "Matte", "Hydrating", "Velvet", "Glow"}, {"daily skin care", "evening looks", "dry skin", "a natural finish"}},
    {"Toys", {"Building Set", "Puzzle", "Plush Bear", "Race Car", "Doll House", "Board Game"},
     {"Colorful", "Classic", "Deluxe", "Mini", "Wooden", "Magnetic"}, {"kids aged 3 and up", "family game night", "creative play", "travel"}},
    {"Video Games", {"Adventure", "Racing Game", "Puzzle Quest", "Shooter", "RPG", "Sports Game"},
     {"Legendary", "Galactic", "Ultimate", "Retro", "Dark", "Epic"}, {"PC", "console players", "online co-op", "single player campaigns"}},
    {"Movies", {"Drama", "Comedy", "Thriller", "Documentary", "Animated Feature", "Western"},
     {"Award-Winning", "Classic", "Restored", "Director's Cut", "Collector's", "Special Edition"}, {"movie night", "film buffs", "the whole family", "late viewing"}},
    {"Kitchen", {"Chef Knife", "Frying Pan", "Blender", "Coffee Grinder", "Cutting Board", "Stock Pot"},
     {"Stainless", "Non-Stick", "Professional", "Compact", "Heavy-Duty", "Ceramic"}, {"home cooks", "meal prep", "busy mornings", "small kitchens"}},
    {"Books", {"Novel", "Cookbook", "Biography", "Poetry Collection", "Field Guide", "Mystery"},
     {"Illustrated", "Bestselling", "Annotated", "Pocket", "Hardcover", "Complete"}, {"book clubs", "curious readers", "gift giving", "long flights"}},
    {"Sports", {"Yoga Mat", "Running Shoes", "Water Bottle", "Resistance Bands", "Tennis Racket", "Backpack"},
     {"Lightweight", "Ergonomic", "All-Weather", "Breathable", "Durable", "Pro"}, {"training sessions", "outdoor runs", "the gym", "weekend hikes"}},
    {"Music", {"Vinyl Album", "Guitar Strings", "Headphones", "Keyboard", "Drum Pads", "Microphone"},
     {"Studio", "Acoustic", "Wireless", "Vintage", "Live", "Remastered"}, {"home studios", "practice", "live shows", "audiophiles"}},
    {"Garden", {"Seed Kit", "Pruning Shears", "Planter", "Hose Nozzle", "Compost Bin", "Grow Light"},
     {"Organic", "Rustproof", "Self-Watering", "Solar", "Foldable", "Heirloom"}, {"balcony gardens", "raised beds", "indoor herbs", "spring planting"}},
    {"Office", {"Notebook", "Desk Lamp", "Fountain Pen", "Monitor Stand", "Planner", "Label Maker"},
     {"Minimalist", "Adjustable", "Premium", "Recycled", "Slim", "Executive"}, {"remote work", "students", "tidy desks", "long meetings"}},
    {"Pets", {"Dog Bed", "Cat Tree", "Chew Toy", "Aquarium Filter", "Bird Feeder", "Leash"},
     {"Cozy", "Washable", "Interactive", "Quiet", "Reflective", "Orthopedic"}, {"large dogs", "indoor cats", "small pets", "daily walks"}},
    {"Tools", {"Drill Driver", "Socket Set", "Tape Measure", "Level", "Work Light", "Tool Box"},
     {"Cordless", "Precision", "Magnetic", "Impact", "Rugged", "Compact"}, {"DIY projects", "contractors", "home repairs", "the workshop"}},
};

static const char *BRANDS[16] = {"Lumina", "Northwind", "Acme", "Solace", "Verde", "Kestrel", "Orbit", "Maple & Co",
                                 "Zenith", "Bluebird", "Ironclad", "Halcyon", "Pixelworks", "Tidewater", "Sundial", "Quill"};

// streams
enum { ST_ITEM = 1, ST_POP, ST_USER, ST_LEN, ST_STEP, ST_FORCE, ST_TIME };

static double unif(uint64_t seed, uint32_t st, uint64_t i) {
    return ((double)philox_u32(seed, st, i) + 0.5) * (1.0 / 4294967296.0);
}

allmrec_status dataset_synth(const struct synth_options *o, struct dataset *ds) {
    dataset_init(ds);
    if (o->n_users < 1 || o->n_items < 25 || o->n_categories < 1 || o->dim < 1 || o->mean_len < 3)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "synth: need users >= 1, items >= 25, categories >= 1, dim >= 1, "
                                                "mean length >= 3");
    if (o->vocab_offset < 0 || o->vocab_offset > 11)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "synth: vocabulary offset %d is outside 0..11", o->vocab_offset);
    if (o->n_items >= INT32_MAX || o->n_users >= INT32_MAX)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "synth: sizes too large");
    const uint64_t seed = o->seed;
    const int64_t ni = o->n_items, nu = o->n_users;
    const int d = o->dim, nc = o->n_categories > 12 ? 12 : o->n_categories;
    allmrec_status st = ALLMREC_OK;
    float *center = malloc((size_t)nc * d * sizeof *center);
    float *lat = malloc(((size_t)ni + 1) * d * sizeof *lat);
    int *cat = malloc(((size_t)ni + 1) * sizeof *cat);
    int32_t *series_next = calloc((size_t)ni + 2, sizeof *series_next);
    double *cum = malloc(((size_t)ni + 1) * sizeof *cum);
    int64_t *perm = malloc(((size_t)ni + 1) * sizeof *perm);
    float *taste = malloc((size_t)d * sizeof *taste);
    if (!center || !lat || !cat || !series_next || !cum || !perm || !taste) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    for (int c = 0; c < nc; c++)
        for (int k = 0; k < d; k++) center[c * d + k] = 1.5f * philox_normal(seed, ST_ITEM, (uint64_t)(c * d + k));
    // items in series runs of 1..4 within a category
    ds->n_items = ni;
    st = dataset_alloc_items(ds);
    if (st != ALLMREC_OK) goto done;
    ds->item_ids = calloc((size_t)ni + 1, sizeof *ds->item_ids);
    ds->categories = calloc((size_t)ni + 1, sizeof *ds->categories);
    ds->brands = calloc((size_t)ni + 1, sizeof *ds->brands);
    if (!ds->item_ids || !ds->categories || !ds->brands) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    ds->titles[0] = strdup(""); ds->descriptions[0] = strdup(""); ds->item_ids[0] = strdup("");
    ds->categories[0] = strdup(""); ds->brands[0] = strdup("");
    {
        int64_t i = 1;
        uint64_t ctr = 0;
        while (i <= ni) {
            int run = 1 + (int)philox_below(seed, ST_ITEM + 100, ctr++, 4);
            if (philox_uniform(seed, ST_ITEM + 100, ctr++) < 0.5f) run = 1;
            int c = (int)philox_below(seed, ST_ITEM + 100, ctr++, (uint32_t)nc);
            const struct vocab *v = &VOCABS[(o->vocab_offset + c) % 12];
            const char *noun = v->nouns[philox_below(seed, ST_ITEM + 100, ctr++, 6)];
            const char *adj = v->adjs[philox_below(seed, ST_ITEM + 100, ctr++, 6)];
            const char *brand = BRANDS[philox_below(seed, ST_ITEM + 100, ctr++, 16)];
            const char *use = v->uses[philox_below(seed, ST_ITEM + 100, ctr++, 4)];
            int model = 100 + (int)philox_below(seed, ST_ITEM + 100, ctr++, 900);
            for (int r = 0; r < run && i <= ni; r++, i++) {
                cat[i] = c;
                for (int k = 0; k < d; k++)
                    lat[i * d + k] = center[c * d + k] + 0.7f * philox_normal(seed, ST_ITEM, (uint64_t)(1000000 + i * d + k));
                char t[256], desc[512], id[32];
                if (run > 1) snprintf(t, sizeof t, "%s %s %s %d, Vol. %d", brand, adj, noun, model, r + 1);
                else snprintf(t, sizeof t, "%s %s %s %d", brand, adj, noun, model);
                snprintf(desc, sizeof desc,
                         "A %s %s from %s, made for %s. Part of our %s range%s.", adj, noun, brand, use, v->name,
                         run > 1 ? "; collect the whole series" : "");
                snprintf(id, sizeof id, "%s%08lld", o->item_id_prefix, (long long)i);
                ds->titles[i] = strdup(t);
                ds->descriptions[i] = strdup(desc);
                ds->item_ids[i] = strdup(id);
                ds->categories[i] = strdup(v->name);
                ds->brands[i] = strdup(brand);
                ds->has_text[i] = ITEM_HAS_TITLE | ITEM_HAS_DESCRIPTION;
                if (r + 1 < run && i + 1 <= ni) series_next[i] = (int32_t)(i + 1);
            }
        }
    }
    // popularity: Zipf over a random rank order; cumulative table for sampling
    for (int64_t i = 1; i <= ni; i++) perm[i] = i;
    for (int64_t i = ni; i > 1; i--) {
        int64_t r = 1 + (int64_t)philox_below(seed, ST_POP, (uint64_t)i, (uint32_t)i);
        int64_t t = perm[i]; perm[i] = perm[r]; perm[r] = t;
    }
    cum[0] = 0;
    {
        double *w = malloc(((size_t)ni + 1) * sizeof *w);
        if (!w) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
        for (int64_t r = 1; r <= ni; r++) w[perm[r]] = pow((double)r, -o->zipf);
        for (int64_t i = 1; i <= ni; i++) cum[i] = cum[i - 1] + w[i];
        free(w);
    }
    // users
    {
        int64_t cap = nu * (int64_t)(o->mean_len + 2) + ni + 16;
        ds->n_users = nu;
        ds->offsets = malloc(((size_t)nu + 1) * sizeof *ds->offsets);
        ds->items = malloc((size_t)cap * sizeof *ds->items);
        ds->timestamps = malloc((size_t)cap * sizeof *ds->timestamps);
        ds->user_ids = calloc((size_t)nu + 1, sizeof *ds->user_ids);
        int32_t *seq = malloc(((size_t)ni * 2 + 8) * sizeof *seq);
        uint8_t *in_hist = calloc((size_t)ni + 1, 1);
        if (!ds->offsets || !ds->items || !ds->timestamps || !ds->user_ids || !seq || !in_hist) {
            free(seq); free(in_hist);
            st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
            goto done;
        }
        int64_t n = 0;
        ds->offsets[0] = 0;
        // cold users (exactly 3 interactions) and the coverage assignment:
        // item i is forced into the history of user (i - 1) % nu, or the next non-cold user
        uint8_t *cold = calloc((size_t)nu + 1, 1);
        int64_t *f_off = calloc((size_t)nu + 2, sizeof *f_off);
        int32_t *f_items = malloc(((size_t)ni + 1) * sizeof *f_items);
        int64_t *f_user = malloc(((size_t)ni + 1) * sizeof *f_user);
        if (!cold || !f_off || !f_items || !f_user) {
            free(seq); free(in_hist); free(cold); free(f_off); free(f_items); free(f_user);
            st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
            goto done;
        }
        int64_t n_warm_users = 0;
        for (int64_t u = 0; u < nu; u++) {
            cold[u] = unif(seed, ST_USER, (uint64_t)u * 8 + 3) < o->cold_user_frac;
            n_warm_users += !cold[u];
        }
        if (n_warm_users == 0) cold[0] = 0;
        for (int64_t i = 1; i <= ni; i++) {
            int64_t u = (i - 1) % nu;
            while (cold[u]) u = (u + 1) % nu;
            f_user[i] = u;
            f_off[u + 1]++;
        }
        for (int64_t u = 0; u < nu; u++) f_off[u + 1] += f_off[u];
        {
            int64_t *fill = malloc(((size_t)nu + 1) * sizeof *fill);
            if (!fill) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(fill, f_off, (size_t)nu * sizeof *fill);
            for (int64_t i = 1; i <= ni; i++) f_items[fill[f_user[i]]++] = (int32_t)i;
            free(fill);
        }
        free(f_user);
        for (int64_t u = 0; u < nu; u++) {
            // taste: one or two category centres + noise
            int c1 = (int)philox_below(seed, ST_USER, (uint64_t)u * 8, (uint32_t)nc);
            int c2 = (int)philox_below(seed, ST_USER, (uint64_t)u * 8 + 1, (uint32_t)nc);
            bool two = philox_uniform(seed, ST_USER, (uint64_t)u * 8 + 2) < 0.4f;
            for (int k = 0; k < d; k++)
                taste[k] = (two ? 0.5f * (center[c1 * d + k] + center[c2 * d + k]) : center[c1 * d + k]) +
                           0.5f * philox_normal(seed, ST_USER, (uint64_t)(nu * 8 + u * d + k));
            bool cold_user = cold[u];
            int64_t len;
            if (cold_user) len = 3;
            else {
                double m = o->mean_len > 5 ? o->mean_len - 5 : 0.5;
                double p = 1.0 / (m + 1.0);
                len = 5 + (int64_t)floor(log(unif(seed, ST_LEN, (uint64_t)u)) / log(1.0 - p));
                if (len > ni / 2) len = ni / 2;
                if (len < 5) len = 5;
            }
            int64_t L = 0;
            uint64_t ctr = (uint64_t)u << 24;
            while (L < len) {
                int32_t next = 0;
                if (L > 0 && series_next[seq[L - 1]] && !in_hist[series_next[seq[L - 1]]] &&
                    unif(seed, ST_STEP, ctr++) < o->seq_dep) {
                    next = series_next[seq[L - 1]];
                } else {
                    double best = -1e300;
                    for (int cand = 0; cand < 24; cand++) {
                        // one Philox block per candidate: word 0 picks by popularity, word 1 is the Gumbel noise
                        uint64_t blk = ctr++;
                        uint32_t cw[4], key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
                        uint32_t cc[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), ST_STEP + 1000u, 0u};
                        philox4x32_10(cc, key, cw);
                        double x = ((double)cw[0] + 0.5) * (1.0 / 4294967296.0) * cum[ni];
                        int64_t lo = 1, hi = ni; // first i with cum[i] >= x
                        while (lo < hi) { int64_t mid = (lo + hi) / 2; if (cum[mid] >= x) hi = mid; else lo = mid + 1; }
                        if (in_hist[lo]) continue;
                        double s = 0;
                        for (int k = 0; k < d; k++) s += taste[k] * lat[lo * d + k];
                        s = s / sqrt((double)d) - log(-log(((double)cw[1] + 0.5) * (1.0 / 4294967296.0))); // Gumbel
                        if (s > best) { best = s; next = (int32_t)lo; }
                    }
                    if (!next) continue; // all 32 candidates already seen: draw again
                }
                seq[L++] = next;
                in_hist[next] = 1;
            }
            // coverage: item i is forced into user (i - 1) % nu's history unless already there
            if (!cold_user) {
                for (int64_t fk = f_off[u]; fk < f_off[u + 1]; fk++) {
                    int64_t i = f_items[fk];
                    if (in_hist[i]) continue;
                    int64_t pos = (int64_t)philox_below(seed, ST_FORCE, (uint64_t)i, (uint32_t)(L + 1));
                    memmove(seq + pos + 1, seq + pos, (size_t)(L - pos) * sizeof *seq);
                    seq[pos] = (int32_t)i;
                    in_hist[i] = 1;
                    L++;
                }
            }
            if (n + L > cap) {
                cap = 2 * (n + L);
                int32_t *a = realloc(ds->items, (size_t)cap * sizeof *a);
                if (a) ds->items = a;
                int64_t *b = realloc(ds->timestamps, (size_t)cap * sizeof *b);
                if (b) ds->timestamps = b;
                if (!a || !b) { free(seq); free(in_hist); free(cold); free(f_off); free(f_items); st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
            }
            int64_t t = 1500000000 + (int64_t)philox_below(seed, ST_TIME, (uint64_t)u, 100000000u);
            for (int64_t k = 0; k < L; k++) {
                ds->items[n + k] = seq[k];
                t += 3600 + (int64_t)philox_below(seed, ST_TIME, ((uint64_t)u << 24) + (uint64_t)k + 1, 30u * 86400u);
                ds->timestamps[n + k] = t;
                in_hist[seq[k]] = 0;
            }
            n += L;
            ds->offsets[u + 1] = n;
            char id[32];
            snprintf(id, sizeof id, "U%08lld", (long long)u + 1);
            ds->user_ids[u] = strdup(id);
        }
        free(seq);
        free(in_hist);
        free(cold);
        free(f_off);
        free(f_items);
        ds->n_interactions = n;
    }
    ds->has_timestamps = true;
    snprintf(ds->name, sizeof ds->name, "synth");
    snprintf(ds->source_format, sizeof ds->source_format, "synth");
    snprintf(ds->order_note, sizeof ds->order_note, "generated in time order (synthetic timestamps)");
    dataset_recount(ds);
done:
    free(center); free(lat); free(cat); free(series_next); free(cum); free(perm); free(taste);
    if (st != ALLMREC_OK) dataset_free(ds);
    return st;
}
