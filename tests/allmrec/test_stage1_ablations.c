// test_stage1_ablations.c: the Stage-1 ablations of paper Table 6 (RELEASE.md
// 3.4: w/o L_matching = matching_weight 0, w/o reconstruction = alpha = beta =
// 0, w/o L_rec = rec_weight 0, Freeze SBERT) change exactly the loss terms
// they name. From the same state (the golden fixture's weights and chunk):
//   - every loss term is bit-identical to the full model's (the terms are
//     computed whatever their weight; only the weighted total changes);
//   - total = sum of weight x term, and full total - ablated total = the
//     removed weighted terms;
//   - the gradient of every parameter (both autoencoders, every DistilBERT
//     tensor) equals the full gradient minus the gradients of the removed
//     terms alone (each computed by a model that has only that term), i.e.
//     the ablation removes those terms' gradients and nothing else;
//   - Freeze SBERT: the same terms and autoencoder gradients as the full
//     model (the fixture's SBERT has no dropout, so train and eval mode agree),
//     no SBERT gradient, and SBERT's weights unchanged by an Adam step while the
//     autoencoders move.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "stage1_fixture.h"

// all gradients (autoencoders, then SBERT unless frozen) copied into one host array
static float *grads_flat(struct fixture *f, int64_t *n_out) {
    struct align_net *nets[2] = {&f->m.mlp, &f->m.mlp2};
    int64_t n = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) n += tensor_numel(nets[k]->grads[i]);
    if (!f->m.freeze_sbert)
        for (int i = 0; i < f->m.sbert.n_params; i++) n += tensor_numel(f->m.sbert.grads[i]);
    float *g = malloc(sizeof(float) * (size_t)n), *p = g;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) {
            memcpy(p, nets[k]->grads[i].data, tensor_nbytes(nets[k]->grads[i]));
            p += tensor_numel(nets[k]->grads[i]);
        }
    if (!f->m.freeze_sbert)
        for (int i = 0; i < f->m.sbert.n_params; i++) {
            memcpy(p, f->m.sbert.grads[i].data, tensor_nbytes(f->m.sbert.grads[i]));
            p += tensor_numel(f->m.sbert.grads[i]);
        }
    *n_out = n;
    return g;
}

// one forward/backward of the fixture's chunk with weights w from the fixture's initial state
static void step(const struct stage1_loss_weights *w, bool freeze, struct stage1_losses *L, float **g, int64_t *n) {
    struct fixture f;
    CHECK_OK(fixture_open_frozen(&f, CPU, freeze));
    f.m.w = *w;
    CHECK_OK(stage1_zero_grad(&f.m));
    CHECK_OK(stage1_forward_backward(&f.m, B, B, f.xu, f.E, f.ids, f.mask, f.T, !freeze, 1, L));
    *g = grads_flat(&f, n);
    fixture_close(&f);
}

enum { REC, MATCH, IREC, TREC };
static const char *TERM[4] = {"L_rec", "L_matching", "L_item-recon", "L_text-recon"};
static const struct stage1_loss_weights FULL = {1.0f, 1.0f, 0.5f, 0.2f, false};

static struct stage1_loss_weights only(int term) {
    struct stage1_loss_weights w = {0, 0, 0, 0, false};
    if (term == REC) w.rec = FULL.rec;
    if (term == MATCH) w.matching = FULL.matching;
    if (term == IREC) w.alpha = FULL.alpha;
    if (term == TREC) w.beta = FULL.beta;
    return w;
}

static double weighted(const struct stage1_losses *L, const struct stage1_loss_weights *w) {
    return w->rec * L->rec + w->matching * L->match + w->alpha * L->irec + w->beta * L->trec;
}

static void check_terms_identical(const char *name, const struct stage1_losses *a, const struct stage1_losses *full) {
    CHECK_MSG(a->rec == full->rec && a->match == full->match && a->irec == full->irec && a->trec == full->trec,
              "%s: terms (%.9g %.9g %.9g %.9g) differ from the full model's (%.9g %.9g %.9g %.9g)", name, a->rec,
              a->match, a->irec, a->trec, full->rec, full->match, full->irec, full->trec);
}

static void test_loss_ablations(void) {
    struct stage1_losses Lf;
    float *gf;
    int64_t n;
    step(&FULL, false, &Lf, &gf, &n);
    fprintf(stderr, "  full: L_rec %.7f L_match %.7f L_irec %.7f L_trec %.7f total %.7f\n", Lf.rec, Lf.match, Lf.irec,
            Lf.trec, Lf.total);
    CHECK(fabs(Lf.total - weighted(&Lf, &FULL)) < 1e-6 * fabs(Lf.total));
    // gradients of each term alone
    float *gt[4];
    for (int t = 0; t < 4; t++) {
        struct stage1_losses L;
        int64_t nt;
        struct stage1_loss_weights w = only(t);
        step(&w, false, &L, &gt[t], &nt);
        CHECK_EQ_INT(nt, n);
        check_terms_identical(TERM[t], &L, &Lf);
    }
    // Table 6's ablations: the weights and the terms each removes
    struct { const char *name; struct stage1_loss_weights w; int removed[2], n_removed; } ab[] = {
        {"w/o L_matching", {1.0f, 0.0f, 0.5f, 0.2f, false}, {MATCH}, 1},
        {"w/o L_item-recon & L_text-recon", {1.0f, 1.0f, 0.0f, 0.0f, false}, {IREC, TREC}, 2},
        {"w/o L_rec", {0.0f, 1.0f, 0.5f, 0.2f, false}, {REC}, 1},
    };
    for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++) {
        struct stage1_losses L;
        float *g;
        int64_t na;
        step(&ab[k].w, false, &L, &g, &na);
        CHECK_EQ_INT(na, n);
        check_terms_identical(ab[k].name, &L, &Lf);
        double removed = 0;
        for (int r = 0; r < ab[k].n_removed; r++) {
            struct stage1_loss_weights w1 = only(ab[k].removed[r]);
            removed += weighted(&Lf, &w1);
        }
        double dt = (Lf.total - L.total) - removed;
        fprintf(stderr, "  %-32s total %.7f = full %.7f - removed %.7f (residual %.1e)\n", ab[k].name, L.total,
                Lf.total, removed, dt);
        CHECK_MSG(fabs(dt) < 1e-6 * fabs(Lf.total), "%s: total %.9g, full %.9g, removed %.9g", ab[k].name, L.total,
                  Lf.total, removed);
        CHECK(removed > 0);
        // grad(full) - grad(ablated) = sum of the removed terms' gradients
        double dd = 0, nn = 0, moved = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = 0;
            for (int r = 0; r < ab[k].n_removed; r++) want += gt[ab[k].removed[r]][i];
            double got = (double)gf[i] - g[i];
            dd += (got - want) * (got - want);
            nn += want * want;
            moved += got * got;
        }
        double rel = sqrt(dd) / fmax(sqrt(nn), 1e-12);
        fprintf(stderr, "  %-32s grad(full) - grad(ablated) vs removed terms' gradients: rel %.2e (|diff| %.3e)\n",
                ab[k].name, rel, sqrt(moved));
        CHECK_MSG(rel < 1e-4, "%s: gradient difference is not the removed terms' (rel %.3g)", ab[k].name, rel);
        CHECK(sqrt(moved) > 0);
        free(g);
    }
    for (int t = 0; t < 4; t++) free(gt[t]);
    free(gf);
}

static void test_freeze_sbert(void) {
    struct fixture full, fr;
    CHECK_OK(fixture_open_frozen(&full, CPU, false));
    CHECK_OK(fixture_open_frozen(&fr, CPU, true));
    struct stage1_losses Lf, Lz;
    CHECK_OK(stage1_zero_grad(&full.m));
    CHECK_OK(stage1_zero_grad(&fr.m));
    CHECK_OK(stage1_forward_backward(&full.m, B, B, full.xu, full.E, full.ids, full.mask, full.T, true, 1, &Lf));
    CHECK_OK(stage1_forward_backward(&fr.m, B, B, fr.xu, fr.E, fr.ids, fr.mask, fr.T, false, 1, &Lz));
    check_terms_identical("Freeze SBERT", &Lz, &Lf);
    CHECK(Lz.total == Lf.total);
    // the autoencoders' gradients are the full model's; SBERT has none
    int64_t nf, nz;
    float *gf = grads_flat(&full, &nf), *gz = grads_flat(&fr, &nz);
    int64_t n_ae = 0;
    struct align_net *nets[2] = {&fr.m.mlp, &fr.m.mlp2};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) n_ae += tensor_numel(nets[k]->grads[i]);
    CHECK_EQ_INT(nz, n_ae);
    CHECK(nf > nz);
    double r = rel_err(gz, gf, n_ae, 1e-12);
    fprintf(stderr, "  Freeze SBERT: same terms, autoencoder gradients rel %.2e, %lld SBERT gradient values dropped\n", r,
            (long long)(nf - nz));
    CHECK(r < 1e-6);
    // an Adam step moves the autoencoders, not SBERT
    int64_t n_sb = 0;
    for (int i = 0; i < fr.m.sbert.n_params; i++) n_sb += tensor_numel(fr.m.sbert.params[i]);
    float *before = malloc(sizeof(float) * (size_t)n_sb), *p = before;
    for (int i = 0; i < fr.m.sbert.n_params; i++) {
        memcpy(p, fr.m.sbert.params[i].data, tensor_nbytes(fr.m.sbert.params[i]));
        p += tensor_numel(fr.m.sbert.params[i]);
    }
    float ae0 = ((const float *)fr.m.mlp.params[0].data)[0];
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(stage1_adam_step(&fr.m, &ap));
    p = before;
    bool same = true;
    for (int i = 0; i < fr.m.sbert.n_params; i++) {
        same = same && !memcmp(p, fr.m.sbert.params[i].data, tensor_nbytes(fr.m.sbert.params[i]));
        p += tensor_numel(fr.m.sbert.params[i]);
    }
    CHECK_MSG(same, "a frozen SBERT moved in an Adam step");
    CHECK(((const float *)fr.m.mlp.params[0].data)[0] != ae0);
    free(before), free(gf), free(gz);
    fixture_close(&full);
    fixture_close(&fr);
}

TEST_MAIN(TEST_CASE(test_loss_ablations), TEST_CASE(test_freeze_sbert))
