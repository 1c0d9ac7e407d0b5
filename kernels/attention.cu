// attention.cu: hand-written fused attention, flash style: online softmax over
// key tiles, no (T, T) matrix in device memory, causal (KV-cache aware:
// query i sees key j iff j <= i + Tk - Tq) and key-padding masks, dropout on
// the probabilities with the Philox mask of ops.h
// (index ((b*NH + h)*Tq + i)*Tk + j), any head dim, any q/k/v strides.
//
// Kernels (ctx->kernel_version 0 picks the fastest that applies, 1 forces the
// scalar reference kernels):
//   attn_fwd_mma     F16/BF16, head dim <= 128 (padded to 32/64/96/128):
//                    tensor cores through mma.sync.m16n8k16 (sm_80+), 4 warps
//                    x 16 query rows, 64-key tiles in shared memory, scores
//                    and the output accumulator in registers (FlashAttention-2
//                    register layout: the score accumulator is re-used as the
//                    A operand of P @ V).
//   attn_fwd_mma<FAST> (16-byte aligned rows, HD % 8 == 0):
//                    the same kernel with fragments through ldmatrix(.trans)
//                    and K/V tiles double-buffered with cp.async. The default
//                    for 16-byte aligned rows since its first GPU run (parity
//                    passing on an H200, 1.8x the plain-load variant).
//   attn_fwd_scalar  any dtype/head dim, fp32 CUDA cores, 16x16 tiles.
//   attn_bwd_mma_dkdv / attn_bwd_mma_dq (default for F16/BF16 with 16-byte rows):
//                    tensor-core backward, same two-pass structure as below.
//   attn_bwd_dkdv / attn_bwd_dq
//                    backward, fp32 CUDA cores (f32, unaligned rows, version 1): one pass per key tile for dK,
//                    dV and one per query tile for dQ (scores recomputed; no
//                    atomics, deterministic). D_i = dO_i . O_i in-kernel.
// Both accumulate into dq, dk, dv (+=) as ops.h requires.
//
// defines: cuda_attention_forward, cuda_attention_backward
#include <math.h>
#include <string.h>

#include <type_traits>

#include "allmrec/philox.h"
#include "cuda_common.cuh"
#include "cuda_ops.h"

struct attn_args {
    const void *q, *k, *v;
    int64_t q_sb, q_st, q_sh, k_sb, k_st, k_sh, v_sb, v_st, v_sh;
    void *out; // (B, Tq, NH, HD) contiguous
    float *lse; // (B, NH, Tq) or NULL
    // backward: D_i = dO_i . O_i and lse * log2(e) per row ((b * NH + h) * Tq + i),
    // precomputed once by attn_bwd_row_stats into the backend scratch (NULL: per tile)
    const float *Dg, *Lg;
    const uint8_t *mask; // (B, Tk) or NULL
    // backward only
    const void *dout; // contiguous like out
    void *dq, *dk, *dv;
    int64_t dq_sb, dq_st, dq_sh, dk_sb, dk_st, dk_sh, dv_sb, dv_st, dv_sh;
    int B, NH, Tq, Tk, HD;
    float scale;
    int causal;
    int dropout;
    uint32_t drop_thr;
    float drop_scale;
    uint64_t seed;
    uint32_t stream;
};

__device__ __forceinline__ bool attn_visible(const attn_args &a, int b, int i, int j) {
    if (j >= a.Tk) return false;
    if (a.causal && j > i + (a.Tk - a.Tq)) return false;
    if (a.mask && !a.mask[(int64_t)b * a.Tk + j]) return false;
    return true;
}

__device__ __forceinline__ bool attn_keep(const attn_args &a, int b, int h, int i, int j) {
    uint64_t idx = (((uint64_t)b * a.NH + h) * a.Tq + i) * a.Tk + j;
    return (philox_u32(a.seed, a.stream, idx) >> 8) >= a.drop_thr;
}

// ================================================================== tensor-core forward
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1, __half) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1, __nv_bfloat16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi, __half) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ __forceinline__ uint32_t pack2(float lo, float hi, __nv_bfloat16) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ __forceinline__ uint32_t pack_raw(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

#define MMA_BR 64
#define MMA_BC 64

// rows [r0, r0 + 64) of a (B, T, NH, HD) view at (b, h) into smem (64, D) with
// row stride LD; zeros beyond T and HD.
template <typename T, int D>
__device__ __forceinline__ void mma_load_tile(T *dst, const T *src, int64_t st, int r0, int T_len, int HD, bool vec) {
    constexpr int LD = D + 8;
    if (vec) {
        constexpr int CH = D / 8;
        for (int idx = threadIdx.x; idx < MMA_BC * CH; idx += blockDim.x) {
            int r = idx / CH, d = (idx - r * CH) * 8;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (r0 + r < T_len && d < HD) val = *reinterpret_cast<const uint4 *>(src + (int64_t)(r0 + r) * st + d);
            *reinterpret_cast<uint4 *>(dst + r * LD + d) = val;
        }
    } else {
        for (int idx = threadIdx.x; idx < MMA_BC * D; idx += blockDim.x) {
            int r = idx / D, d = idx - r * D;
            T val = from_f<T>(0.0f);
            if (r0 + r < T_len && d < HD) val = src[(int64_t)(r0 + r) * st + d];
            dst[r * LD + d] = val;
        }
    }
}


// ---- FAST helpers: ldmatrix fragment loads and cp.async tile copies (sm_80+)
__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
// 16 bytes global -> shared; src_bytes 0 writes zeros
__device__ __forceinline__ void cp_async16(uint32_t saddr, const void *g, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(g), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// rows [r0, r0 + 64) of a (T, HD) slice (16-byte rows) into smem (64, D), asynchronously
template <typename T, int D>
__device__ __forceinline__ void mma_async_tile(T *dst, const T *src, int64_t st, int r0, int T_len, int HD) {
    constexpr int LD = D + 8, CH = D / 8;
    for (int idx = threadIdx.x; idx < MMA_BC * CH; idx += blockDim.x) {
        int r = idx / CH, d = (idx - r * CH) * 8;
        bool ok = r0 + r < T_len && d < HD;
        const T *g = ok ? src + (int64_t)(r0 + r) * st + d : src;
        cp_async16(smem_u32(dst + r * LD + d), g, ok ? 16 : 0);
    }
}

// rows [r0, r0 + ROWS) of a (T, HD) slice (16-byte rows) into smem (ROWS, D),
// asynchronously, for head dims whose 16-byte chunks per row divide the 128
// threads: each thread copies one column chunk of every (128 / chunks)-th row,
// with the loop unrolled and no division (the generic loop's index arithmetic
// cost as much as the copies)
template <typename T, int D, int ROWS>
__device__ __forceinline__ void mma_async_rows(T *dst, const T *src, int64_t st, int r0, int T_len, int HD) {
    constexpr int LD = D + 8, CH = D / 8, STEP = 128 / CH;
    static_assert(128 % CH == 0, "mma_async_rows: D / 8 must divide 128");
    const int c = (threadIdx.x % CH) * 8, rr = threadIdx.x / CH;
    const bool cok = c < HD;
    const T *gp = src + (int64_t)(r0 + rr) * st + c;
    uint32_t sp = smem_u32(dst + rr * LD + c);
#pragma unroll 1
    for (int r = rr; r < ROWS; r += STEP, gp += STEP * st, sp += STEP * LD * sizeof(T)) {
        bool ok = cok && r0 + r < T_len;
        cp_async16(sp, ok ? gp : src, ok ? 16 : 0);
    }
}

// 64 rows asynchronously: the unrolled copy where the head dim allows it
template <typename T, int D>
__device__ __forceinline__ void mma_async_tile64(T *dst, const T *src, int64_t st, int r0, int T_len, int HD) {
    if constexpr (128 % (D / 8) == 0) mma_async_rows<T, D, 64>(dst, src, st, r0, T_len, HD);
    else mma_async_tile<T, D>(dst, src, st, r0, T_len, HD);
}

// the key side of a 64-key tile's visibility as additive biases in shared
// memory (0: visible, -inf: beyond Tk or padded out by the key mask): the score
// loops then mask with arithmetic and selects; a global load and a branch per
// element made the masking cost more than the tensor-core work (Nsight Compute
// on an H200: 18 instructions issued per mma, 271 divergent branch regions)
__device__ __forceinline__ void mma_key_bias(const attn_args &a, int b, int k0, float *kb) {
    for (int j = threadIdx.x; j < 64; j += blockDim.x) {
        int kj = k0 + j;
        bool ok = kj < a.Tk && (!a.mask || a.mask[(int64_t)b * a.Tk + kj]);
        kb[j] = ok ? 0.0f : -INFINITY;
    }
}

// FAST (16-byte rows only): fragments through ldmatrix and
// K/V tiles double-buffered with cp.async (dynamic shared memory, 4 tiles);
// otherwise plain loads into one K and one V tile.
template <typename T, int D, bool FAST>
__global__ void __launch_bounds__(128) attn_fwd_mma(attn_args a, int vec) {
    constexpr int LD = D + 8;
    constexpr float LOG2E = 1.4426950408889634f;
    __shared__ __align__(16) T Ks0[FAST ? 8 : MMA_BC * LD];
    __shared__ __align__(16) T Vs0[FAST ? 8 : MMA_BC * LD];
    __shared__ __align__(16) float kb[MMA_BC];
    extern __shared__ uint4 mma_dyn_smem[];
    T *Ks = FAST ? reinterpret_cast<T *>(mma_dyn_smem) : Ks0; // FAST: K[2], V[2] tiles
    T *Vs = FAST ? Ks + 2 * MMA_BC * LD : Vs0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * MMA_BR;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;

    // Q tile -> registers (A fragments), staged through Ks
    mma_load_tile<T, D>(Ks, qp, a.q_st, q0, a.Tq, a.HD, vec);
    __syncthreads();
    uint32_t qf[D / 16][4];
    if constexpr (FAST) {
        // matrices: rows 0-7 / 8-15 x cols 0-7 / 8-15 of the warp's 16 x 16 block
        const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = (lane >> 4) * 8;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], smem_u32(&Ks[r * LD + kk * 16 + c]));
    } else {
        const int r = warp * 16 + g;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            qf[kk][0] = *reinterpret_cast<const uint32_t *>(&Ks[r * LD + kk * 16 + tig * 2]);
            qf[kk][1] = *reinterpret_cast<const uint32_t *>(&Ks[(r + 8) * LD + kk * 16 + tig * 2]);
            qf[kk][2] = *reinterpret_cast<const uint32_t *>(&Ks[r * LD + kk * 16 + 8 + tig * 2]);
            qf[kk][3] = *reinterpret_cast<const uint32_t *>(&Ks[(r + 8) * LD + kk * 16 + 8 + tig * 2]);
        }
    }
    __syncthreads();

    float o[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f};
    const float sl2 = a.scale * LOG2E;
    const int qrow[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const int causal_off = a.Tk - a.Tq;
    int kend = a.Tk;
    if (a.causal) kend = min(a.Tk, q0 + MMA_BR + (a.Tk - a.Tq));

    if constexpr (FAST) {
        if (kend > 0) {
            mma_async_tile64<T, D>(Ks, kp, a.k_st, 0, a.Tk, a.HD);
            mma_async_tile64<T, D>(Vs, vp, a.v_st, 0, a.Tk, a.HD);
        }
        cp_async_commit();
    }
    for (int k0 = 0, it = 0; k0 < kend; k0 += MMA_BC, it++) {
        const T *Kt = Ks, *Vt = Vs;
        if constexpr (FAST) {
            Kt = Ks + (it & 1) * MMA_BC * LD;
            Vt = Vs + (it & 1) * MMA_BC * LD;
            if (k0 + MMA_BC < kend) { // prefetch the next tile into the other buffer
                mma_async_tile64<T, D>(Ks + ((it + 1) & 1) * MMA_BC * LD, kp, a.k_st, k0 + MMA_BC, a.Tk, a.HD);
                mma_async_tile64<T, D>(Vs + ((it + 1) & 1) * MMA_BC * LD, vp, a.v_st, k0 + MMA_BC, a.Tk, a.HD);
            }
            cp_async_commit();
            cp_async_wait<1>(); // all but the newest group: this tile has landed
        } else {
            mma_load_tile<T, D>(Ks, kp, a.k_st, k0, a.Tk, a.HD, vec);
            mma_load_tile<T, D>(Vs, vp, a.v_st, k0, a.Tk, a.HD, vec);
        }
        mma_key_bias(a, b, k0, kb); // kb's last readers finished before the previous iteration's barrier
        __syncthreads();

        float s[MMA_BC / 8][4];
#pragma unroll
        for (int nt = 0; nt < MMA_BC / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            if constexpr (FAST) {
                // matrices: (key block nt, d lo), (nt, d hi), (nt + 1, d lo), (nt + 1, d hi)
                const int kr = (lane >> 4) * 8 + (lane & 7), kc = kk * 16 + ((lane >> 3) & 1) * 8;
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, smem_u32(&Kt[(nt * 8 + kr) * LD + kc]));
                    mma16816(s[nt], qf[kk], b0, b1, T());
                    mma16816(s[nt + 1], qf[kk], b2, b3, T());
                }
            } else {
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt++) {
                    const T *kr = &Kt[(nt * 8 + g) * LD + kk * 16 + tig * 2];
                    uint32_t b0 = *reinterpret_cast<const uint32_t *>(kr);
                    uint32_t b1 = *reinterpret_cast<const uint32_t *>(kr + 8);
                    mma16816(s[nt], qf[kk], b0, b1, T());
                }
            }
        }
        // scale (log2 domain) and mask; the causal test only on tiles that cross this warp's diagonal
        float mx[2] = {-INFINITY, -INFINITY};
        const bool diag = a.causal && k0 + MMA_BC - 1 > q0 + warp * 16 + causal_off;
#pragma unroll
        for (int nt = 0; nt < MMA_BC / 8; nt++) {
            const float2 kb2 = *reinterpret_cast<const float2 *>(&kb[nt * 8 + tig * 2]);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, kj = k0 + nt * 8 + tig * 2 + (e & 1);
                float v = s[nt][e] * sl2 + ((e & 1) ? kb2.y : kb2.x);
                if (diag && kj > qrow[r] + causal_off) v = -INFINITY;
                s[nt][e] = v;
                mx[r] = fmaxf(mx[r], v);
            }
        }
        float alpha[2], muse[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float mn = fmaxf(m_r[r], mx[r]);
            alpha[r] = (mn == -INFINITY) ? 1.0f : exp2f(m_r[r] - mn);
            muse[r] = (mn == -INFINITY) ? 0.0f : mn;
            m_r[r] = mn;
        }
        float ls[2] = {0.0f, 0.0f};
#pragma unroll
        for (int nt = 0; nt < MMA_BC / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[nt][e] - muse[e >> 1]);
                ls[e >> 1] += p;
                s[nt][e] = p;
            }
        }
        if (a.dropout) { // after the row sums: the normaliser counts dropped probabilities
#pragma unroll
            for (int nt = 0; nt < MMA_BC / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = e >> 1, kj = k0 + nt * 8 + tig * 2 + (e & 1);
                    bool keep = qrow[r] < a.Tq && kj < a.Tk && attn_keep(a, b, h, qrow[r], kj);
                    s[nt][e] = keep ? s[nt][e] * a.drop_scale : 0.0f;
                }
            }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) l_r[r] = l_r[r] * alpha[r] + ls[r];
#pragma unroll
        for (int nd = 0; nd < D / 8; nd++) {
            o[nd][0] *= alpha[0]; o[nd][1] *= alpha[0];
            o[nd][2] *= alpha[1]; o[nd][3] *= alpha[1];
        }
        // O += P @ V
#pragma unroll
        for (int kc = 0; kc < MMA_BC / 16; kc++) {
            uint32_t pa[4];
            pa[0] = pack2(s[2 * kc][0], s[2 * kc][1], T());
            pa[1] = pack2(s[2 * kc][2], s[2 * kc][3], T());
            pa[2] = pack2(s[2 * kc + 1][0], s[2 * kc + 1][1], T());
            pa[3] = pack2(s[2 * kc + 1][2], s[2 * kc + 1][3], T());
            if constexpr (FAST) {
                // transposed matrices: (keys lo, d block nd), (keys hi, nd), (keys lo, nd + 1), (keys hi, nd + 1)
                const int vr = kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), vc = (lane >> 4) * 8;
#pragma unroll
                for (int nd = 0; nd < D / 8; nd += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, smem_u32(&Vt[vr * LD + nd * 8 + vc]));
                    mma16816(o[nd], pa, b0, b1, T());
                    mma16816(o[nd + 1], pa, b2, b3, T());
                }
            } else {
                const uint16_t *vs = reinterpret_cast<const uint16_t *>(Vt);
                const int kr0 = kc * 16 + tig * 2;
#pragma unroll
                for (int nd = 0; nd < D / 8; nd++) {
                    const int col = nd * 8 + g;
                    uint32_t b0 = pack_raw(vs[kr0 * LD + col], vs[(kr0 + 1) * LD + col]);
                    uint32_t b1 = pack_raw(vs[(kr0 + 8) * LD + col], vs[(kr0 + 9) * LD + col]);
                    mma16816(o[nd], pa, b0, b1, T());
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        l_r[r] += __shfl_xor_sync(0xffffffffu, l_r[r], 1);
        l_r[r] += __shfl_xor_sync(0xffffffffu, l_r[r], 2);
    }
    T *op = (T *)a.out;
    const float inv_l[2] = {l_r[0] > 0.0f ? 1.0f / l_r[0] : 0.0f, l_r[1] > 0.0f ? 1.0f / l_r[1] : 0.0f};
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = e >> 1, d = nd * 8 + tig * 2 + (e & 1);
            int qi = qrow[r];
            if (qi < a.Tq && d < a.HD) {
                float val = o[nd][e] * inv_l[r];
                op[(((int64_t)b * a.Tq + qi) * a.NH + h) * a.HD + d] = from_f<T>(val);
            }
        }
    }
    if (a.lse && tig == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int qi = qrow[r];
            if (qi < a.Tq)
                a.lse[((int64_t)b * a.NH + h) * a.Tq + qi] =
                    l_r[r] > 0.0f ? (m_r[r] + log2f(l_r[r])) * 0.6931471805599453f : -INFINITY;
        }
    }
}

// attn_fwd_mma128: attn_fwd_mma<FAST> with 128 query rows per block, 32 per warp
// (two 16-row m-tiles; FlashAttention-2's tiling for head dim 128): each K and V
// fragment read from shared memory feeds twice the mma, and the per-tile costs
// (barriers, tile copies, key bias) are spread over twice the rows. Q stays in
// shared memory (registers hold the two m-tiles' accumulators). A warp skips
// a key tile that lies wholly beyond its rows' causal limit. For Tq >= 256,
// 16-byte rows and head dims 64 and 128 (fwd_launch picks it). DROP: dropout is
// a separate instantiation, so that the Philox registers do not crowd the
// common path's (it spilled with both in one kernel).
template <typename T, int D, bool DROP>
__global__ void __launch_bounds__(128) attn_fwd_mma128(attn_args a) {
    constexpr int LD = D + 8, BR = 128;
    constexpr float LOG2E = 1.4426950408889634f;
    __shared__ __align__(16) float kb[MMA_BC];
    extern __shared__ uint4 mma_dyn_smem[];
    T *Qs = reinterpret_cast<T *>(mma_dyn_smem), *Ks = Qs + BR * LD, *Vs = Ks + 2 * MMA_BC * LD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BR, wrow = q0 + warp * 32;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    const int causal_off = a.Tk - a.Tq;
    int kend = a.Tk;
    if (a.causal) kend = min(a.Tk, q0 + BR + causal_off);
    mma_async_rows<T, D, BR>(Qs, qp, a.q_st, q0, a.Tq, a.HD);
    if (kend > 0) {
        mma_async_rows<T, D, MMA_BC>(Ks, kp, a.k_st, 0, a.Tk, a.HD);
        mma_async_rows<T, D, MMA_BC>(Vs, vp, a.v_st, 0, a.Tk, a.HD);
    }
    cp_async_commit();

    float o[2][D / 8][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int nd = 0; nd < D / 8; nd++) o[mi][nd][0] = o[mi][nd][1] = o[mi][nd][2] = o[mi][nd][3] = 0.0f;
    float m_r[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}}, l_r[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    const float sl2 = a.scale * LOG2E;
    // ldmatrix lane offsets: A (Q rows), B from K rows, B from V rows (transposed)
    const int ar = (lane & 7) + ((lane >> 3) & 1) * 8, ac = (lane >> 4) * 8;
    const int kr = (lane >> 4) * 8 + (lane & 7), kc = ((lane >> 3) & 1) * 8;
    const int vr = ((lane >> 3) & 1) * 8 + (lane & 7), vc = (lane >> 4) * 8;

    for (int k0 = 0, it = 0; k0 < kend; k0 += MMA_BC, it++) {
        const T *Kt = Ks + (it & 1) * MMA_BC * LD, *Vt = Vs + (it & 1) * MMA_BC * LD;
        if (k0 + MMA_BC < kend) { // prefetch the next tile into the other buffer
            mma_async_rows<T, D, MMA_BC>(Ks + ((it + 1) & 1) * MMA_BC * LD, kp, a.k_st, k0 + MMA_BC, a.Tk, a.HD);
            mma_async_rows<T, D, MMA_BC>(Vs + ((it + 1) & 1) * MMA_BC * LD, vp, a.v_st, k0 + MMA_BC, a.Tk, a.HD);
        }
        cp_async_commit();
        cp_async_wait<1>(); // all but the newest group: Q and this tile have landed
        mma_key_bias(a, b, k0, kb);
        __syncthreads();
        if (!(a.causal && k0 > wrow + 31 + causal_off)) {
            float s[2][MMA_BC / 8][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt++) s[mi][nt][0] = s[mi][nt][1] = s[mi][nt][2] = s[mi][nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                uint32_t qa[2][4];
#pragma unroll
                for (int mi = 0; mi < 2; mi++)
                    ldsm_x4(qa[mi][0], qa[mi][1], qa[mi][2], qa[mi][3],
                            smem_u32(&Qs[(warp * 32 + mi * 16 + ar) * LD + kk * 16 + ac]));
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, smem_u32(&Kt[(nt * 8 + kr) * LD + kk * 16 + kc]));
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) {
                        mma16816(s[mi][nt], qa[mi], b0, b1, T());
                        mma16816(s[mi][nt + 1], qa[mi], b2, b3, T());
                    }
                }
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const int row0 = wrow + mi * 16 + g; // this thread's rows: row0, row0 + 8
                const bool diag = a.causal && k0 + MMA_BC - 1 > wrow + mi * 16 + causal_off;
                float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt++) {
                    const float2 kb2 = *reinterpret_cast<const float2 *>(&kb[nt * 8 + tig * 2]);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int r = e >> 1, kj = k0 + nt * 8 + tig * 2 + (e & 1);
                        float v = s[mi][nt][e] * sl2 + ((e & 1) ? kb2.y : kb2.x);
                        if (diag && kj > row0 + r * 8 + causal_off) v = -INFINITY;
                        s[mi][nt][e] = v;
                        mx[r] = fmaxf(mx[r], v);
                    }
                }
                float alpha[2], muse[2], ls[2] = {0.0f, 0.0f};
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                    float mn = fmaxf(m_r[mi][r], mx[r]);
                    alpha[r] = (mn == -INFINITY) ? 1.0f : exp2f(m_r[mi][r] - mn);
                    muse[r] = (mn == -INFINITY) ? 0.0f : mn;
                    m_r[mi][r] = mn;
                }
#pragma unroll
                for (int nt = 0; nt < MMA_BC / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float p = exp2f(s[mi][nt][e] - muse[e >> 1]);
                        ls[e >> 1] += p;
                        s[mi][nt][e] = p;
                    }
                if (DROP) { // after the row sums: the normaliser counts dropped probabilities
#pragma unroll
                    for (int nt = 0; nt < MMA_BC / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int qi = row0 + (e >> 1) * 8, kj = k0 + nt * 8 + tig * 2 + (e & 1);
                            bool keep = qi < a.Tq && kj < a.Tk && attn_keep(a, b, h, qi, kj);
                            s[mi][nt][e] = keep ? s[mi][nt][e] * a.drop_scale : 0.0f;
                        }
                }
#pragma unroll
                for (int r = 0; r < 2; r++) l_r[mi][r] = l_r[mi][r] * alpha[r] + ls[r];
#pragma unroll
                for (int nd = 0; nd < D / 8; nd++) {
                    o[mi][nd][0] *= alpha[0]; o[mi][nd][1] *= alpha[0];
                    o[mi][nd][2] *= alpha[1]; o[mi][nd][3] *= alpha[1];
                }
            }
            // O += P @ V
#pragma unroll
            for (int kc2 = 0; kc2 < MMA_BC / 16; kc2++) {
                uint32_t pa[2][4];
#pragma unroll
                for (int mi = 0; mi < 2; mi++) {
                    pa[mi][0] = pack2(s[mi][2 * kc2][0], s[mi][2 * kc2][1], T());
                    pa[mi][1] = pack2(s[mi][2 * kc2][2], s[mi][2 * kc2][3], T());
                    pa[mi][2] = pack2(s[mi][2 * kc2 + 1][0], s[mi][2 * kc2 + 1][1], T());
                    pa[mi][3] = pack2(s[mi][2 * kc2 + 1][2], s[mi][2 * kc2 + 1][3], T());
                }
#pragma unroll
                for (int nd = 0; nd < D / 8; nd += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, smem_u32(&Vt[(kc2 * 16 + vr) * LD + nd * 8 + vc]));
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) {
                        mma16816(o[mi][nd], pa[mi], b0, b1, T());
                        mma16816(o[mi][nd + 1], pa[mi], b2, b3, T());
                    }
                }
            }
        }
        __syncthreads();
    }

    T *op = (T *)a.out;
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
        float inv_l[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            l_r[mi][r] += __shfl_xor_sync(0xffffffffu, l_r[mi][r], 1);
            l_r[mi][r] += __shfl_xor_sync(0xffffffffu, l_r[mi][r], 2);
            inv_l[r] = l_r[mi][r] > 0.0f ? 1.0f / l_r[mi][r] : 0.0f;
        }
#pragma unroll
        for (int nd = 0; nd < D / 8; nd++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int qi = wrow + mi * 16 + g + (e >> 1) * 8, d = nd * 8 + tig * 2 + (e & 1);
                if (qi < a.Tq && d < a.HD)
                    op[(((int64_t)b * a.Tq + qi) * a.NH + h) * a.HD + d] = from_f<T>(o[mi][nd][e] * inv_l[e >> 1]);
            }
        if (a.lse && tig == 0) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int qi = wrow + mi * 16 + g + r * 8;
                if (qi < a.Tq)
                    a.lse[((int64_t)b * a.NH + h) * a.Tq + qi] =
                        l_r[mi][r] > 0.0f ? (m_r[mi][r] + log2f(l_r[mi][r])) * 0.6931471805599453f : -INFINITY;
            }
        }
    }
}

// ================================================================== scalar kernels
#define SC_BR 16
#define SC_BC 16
#define SC_THREADS 128

// rows [r0, r0 + 16) of a strided (T, HD) slice into smem (16, HD) fp32 with row stride HD + 1
template <typename T>
__device__ __forceinline__ void sc_load(float *dst, const T *src, int64_t st, int r0, int T_len, int HD) {
    const int LDS = HD + 1;
    for (int idx = threadIdx.x; idx < SC_BR * HD; idx += blockDim.x) {
        int r = idx / HD, d = idx - r * HD;
        dst[r * LDS + d] = (r0 + r < T_len) ? to_f<T>(src[(int64_t)(r0 + r) * st + d]) : 0.0f;
    }
}

template <typename T>
__global__ void __launch_bounds__(SC_THREADS) attn_fwd_scalar(attn_args a) {
    extern __shared__ float sm[];
    const int HD = a.HD, LDS = HD + 1;
    float *Qs = sm, *Ks = Qs + SC_BR * LDS, *Vs = Ks + SC_BC * LDS, *Os = Vs + SC_BC * LDS;
    float *S = Os + SC_BR * LDS, *m_s = S + SC_BR * SC_BC, *l_s = m_s + SC_BR, *al_s = l_s + SC_BR;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * SC_BR;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    sc_load<T>(Qs, qp, a.q_st, q0, a.Tq, HD);
    for (int idx = threadIdx.x; idx < SC_BR * LDS; idx += blockDim.x) Os[idx] = 0.0f;
    if (threadIdx.x < SC_BR) { m_s[threadIdx.x] = -INFINITY; l_s[threadIdx.x] = 0.0f; }
    int kend = a.Tk;
    if (a.causal) kend = min(a.Tk, q0 + SC_BR + (a.Tk - a.Tq));
    for (int k0 = 0; k0 < kend; k0 += SC_BC) {
        __syncthreads();
        sc_load<T>(Ks, kp, a.k_st, k0, a.Tk, HD);
        sc_load<T>(Vs, vp, a.v_st, k0, a.Tk, HD);
        __syncthreads();
        for (int idx = threadIdx.x; idx < SC_BR * SC_BC; idx += blockDim.x) {
            int i = idx / SC_BC, j = idx - i * SC_BC, qi = q0 + i, kj = k0 + j;
            float s = -INFINITY;
            if (qi < a.Tq && attn_visible(a, b, qi, kj)) {
                float acc = 0.0f;
                for (int d = 0; d < HD; d++) acc += Qs[i * LDS + d] * Ks[j * LDS + d];
                s = acc * a.scale;
            }
            S[idx] = s;
        }
        __syncthreads();
        if (threadIdx.x < SC_BR) {
            int i = threadIdx.x, qi = q0 + i;
            float mx = -INFINITY;
            for (int j = 0; j < SC_BC; j++) mx = fmaxf(mx, S[i * SC_BC + j]);
            float mo = m_s[i], mn = fmaxf(mo, mx);
            float alpha = (mn == -INFINITY) ? 1.0f : expf(mo - mn);
            float muse = (mn == -INFINITY) ? 0.0f : mn;
            float rs = 0.0f;
            for (int j = 0; j < SC_BC; j++) {
                float p = expf(S[i * SC_BC + j] - muse);
                rs += p;
                if (a.dropout) {
                    int kj = k0 + j;
                    bool keep = qi < a.Tq && kj < a.Tk && attn_keep(a, b, h, qi, kj);
                    p = keep ? p * a.drop_scale : 0.0f;
                }
                S[i * SC_BC + j] = p;
            }
            m_s[i] = mn;
            l_s[i] = l_s[i] * alpha + rs;
            al_s[i] = alpha;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < SC_BR * HD; idx += blockDim.x) {
            int i = idx / HD, d = idx - i * HD;
            float acc = Os[i * LDS + d] * al_s[i];
            for (int j = 0; j < SC_BC; j++) acc += S[i * SC_BC + j] * Vs[j * LDS + d];
            Os[i * LDS + d] = acc;
        }
    }
    __syncthreads();
    T *op = (T *)a.out;
    for (int idx = threadIdx.x; idx < SC_BR * HD; idx += blockDim.x) {
        int i = idx / HD, d = idx - i * HD, qi = q0 + i;
        if (qi < a.Tq) {
            float l = l_s[i];
            op[(((int64_t)b * a.Tq + qi) * a.NH + h) * HD + d] = from_f<T>(l > 0.0f ? Os[i * LDS + d] / l : 0.0f);
        }
    }
    if (a.lse && threadIdx.x < SC_BR) {
        int i = threadIdx.x, qi = q0 + i;
        if (qi < a.Tq) a.lse[((int64_t)b * a.NH + h) * a.Tq + qi] = l_s[i] > 0.0f ? m_s[i] + logf(l_s[i]) : -INFINITY;
    }
}

// ------------------------------------------------------------------ backward
// query rows [q0, q0 + 16): Q, dO into smem, lse and D_i = dO_i . O_i
template <typename T>
__device__ void bwd_load_queries(const attn_args &a, int b, int h, int q0, float *Qs, float *dOs, float *lse_s,
                                 float *Di_s) {
    const int HD = a.HD;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *dop = (const T *)a.dout + ((int64_t)b * a.Tq * a.NH + h) * HD;
    const T *op = (const T *)a.out + ((int64_t)b * a.Tq * a.NH + h) * HD;
    sc_load<T>(Qs, qp, a.q_st, q0, a.Tq, HD);
    sc_load<T>(dOs, dop, (int64_t)a.NH * HD, q0, a.Tq, HD);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int i = warp; i < SC_BR; i += nw) {
        int qi = q0 + i;
        float acc = 0.0f;
        if (qi < a.Tq) {
            const T *orow = op + (int64_t)qi * a.NH * HD, *dorow = dop + (int64_t)qi * a.NH * HD;
            for (int d = lane; d < HD; d += 32) acc += to_f<T>(orow[d]) * to_f<T>(dorow[d]);
        }
        acc = warp_sum(acc);
        if (lane == 0) {
            Di_s[i] = acc;
            lse_s[i] = qi < a.Tq ? a.lse[((int64_t)b * a.NH + h) * a.Tq + qi] : -INFINITY;
        }
    }
}

// P (dropped, for dV) and dS for the 16x16 tile; needs Qs, dOs, Ks, Vs, lse_s, Di_s
__device__ __forceinline__ void bwd_tile_scores(const attn_args &a, int b, int h, int q0, int k0, const float *Qs,
                                                const float *dOs, const float *Ks, const float *Vs,
                                                const float *lse_s, const float *Di_s, float *P, float *dS) {
    const int HD = a.HD, LDS = HD + 1;
    for (int idx = threadIdx.x; idx < SC_BR * SC_BC; idx += blockDim.x) {
        int i = idx / SC_BC, j = idx - i * SC_BC, qi = q0 + i, kj = k0 + j;
        float pd = 0.0f, ds = 0.0f;
        float L = lse_s[i];
        if (qi < a.Tq && L != -INFINITY && attn_visible(a, b, qi, kj)) {
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                s += Qs[i * LDS + d] * Ks[j * LDS + d];
                dp += dOs[i * LDS + d] * Vs[j * LDS + d];
            }
            float p = expf(s * a.scale - L);
            pd = p;
            if (a.dropout) {
                bool keep = attn_keep(a, b, h, qi, kj);
                pd = keep ? p * a.drop_scale : 0.0f;
                dp = keep ? dp * a.drop_scale : 0.0f;
            }
            ds = p * (dp - Di_s[i]);
        }
        P[idx] = pd;
        dS[idx] = ds;
    }
}

template <typename T>
__device__ __forceinline__ void acc_store(T *dst, int64_t st, const float *src, int r0, int T_len, int HD) {
    const int LDS = HD + 1;
    for (int idx = threadIdx.x; idx < SC_BR * HD; idx += blockDim.x) {
        int r = idx / HD, d = idx - r * HD;
        if (r0 + r < T_len) {
            T *p = dst + (int64_t)(r0 + r) * st + d;
            *p = from_f<T>(to_f<T>(*p) + src[r * LDS + d]);
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(SC_THREADS) attn_bwd_dkdv(attn_args a) {
    extern __shared__ float sm[];
    const int HD = a.HD, LDS = HD + 1;
    float *Ks = sm, *Vs = Ks + SC_BC * LDS, *dKs = Vs + SC_BC * LDS, *dVs = dKs + SC_BC * LDS;
    float *Qs = dVs + SC_BC * LDS, *dOs = Qs + SC_BR * LDS, *P = dOs + SC_BR * LDS, *dS = P + SC_BR * SC_BC;
    float *lse_s = dS + SC_BR * SC_BC, *Di_s = lse_s + SC_BR;
    const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * SC_BC;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    sc_load<T>(Ks, kp, a.k_st, k0, a.Tk, HD);
    sc_load<T>(Vs, vp, a.v_st, k0, a.Tk, HD);
    for (int idx = threadIdx.x; idx < SC_BC * LDS; idx += blockDim.x) { dKs[idx] = 0.0f; dVs[idx] = 0.0f; }
    int qstart = 0;
    if (a.causal) qstart = max(0, k0 - (a.Tk - a.Tq));
    for (int q0 = qstart; q0 < a.Tq; q0 += SC_BR) {
        __syncthreads();
        bwd_load_queries<T>(a, b, h, q0, Qs, dOs, lse_s, Di_s);
        __syncthreads();
        bwd_tile_scores(a, b, h, q0, k0, Qs, dOs, Ks, Vs, lse_s, Di_s, P, dS);
        __syncthreads();
        for (int idx = threadIdx.x; idx < SC_BC * HD; idx += blockDim.x) {
            int j = idx / HD, d = idx - j * HD;
            float dv = 0.0f, dk = 0.0f;
            for (int i = 0; i < SC_BR; i++) {
                dv += P[i * SC_BC + j] * dOs[i * LDS + d];
                dk += dS[i * SC_BC + j] * Qs[i * LDS + d];
            }
            dVs[j * LDS + d] += dv;
            dKs[j * LDS + d] += dk * a.scale;
        }
    }
    __syncthreads();
    if (a.dk) acc_store<T>((T *)a.dk + (int64_t)b * a.dk_sb + (int64_t)h * a.dk_sh, a.dk_st, dKs, k0, a.Tk, HD);
    if (a.dv) acc_store<T>((T *)a.dv + (int64_t)b * a.dv_sb + (int64_t)h * a.dv_sh, a.dv_st, dVs, k0, a.Tk, HD);
}

template <typename T>
__global__ void __launch_bounds__(SC_THREADS) attn_bwd_dq(attn_args a) {
    extern __shared__ float sm[];
    const int HD = a.HD, LDS = HD + 1;
    float *Qs = sm, *dOs = Qs + SC_BR * LDS, *dQs = dOs + SC_BR * LDS, *Ks = dQs + SC_BR * LDS;
    float *Vs = Ks + SC_BC * LDS, *P = Vs + SC_BC * LDS, *dS = P + SC_BR * SC_BC;
    float *lse_s = dS + SC_BR * SC_BC, *Di_s = lse_s + SC_BR;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * SC_BR;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    bwd_load_queries<T>(a, b, h, q0, Qs, dOs, lse_s, Di_s);
    for (int idx = threadIdx.x; idx < SC_BR * LDS; idx += blockDim.x) dQs[idx] = 0.0f;
    int kend = a.Tk;
    if (a.causal) kend = min(a.Tk, q0 + SC_BR + (a.Tk - a.Tq));
    for (int k0 = 0; k0 < kend; k0 += SC_BC) {
        __syncthreads();
        sc_load<T>(Ks, kp, a.k_st, k0, a.Tk, HD);
        sc_load<T>(Vs, vp, a.v_st, k0, a.Tk, HD);
        __syncthreads();
        bwd_tile_scores(a, b, h, q0, k0, Qs, dOs, Ks, Vs, lse_s, Di_s, P, dS);
        __syncthreads();
        for (int idx = threadIdx.x; idx < SC_BR * HD; idx += blockDim.x) {
            int i = idx / HD, d = idx - i * HD;
            float acc = 0.0f;
            for (int j = 0; j < SC_BC; j++) acc += dS[i * SC_BC + j] * Ks[j * LDS + d];
            dQs[i * LDS + d] += acc * a.scale;
        }
    }
    __syncthreads();
    acc_store<T>((T *)a.dq + (int64_t)b * a.dq_sb + (int64_t)h * a.dq_sh, a.dq_st, dQs, q0, a.Tq, HD);
}

// ------------------------------------------------------------------ tensor-core backward
// FlashAttention-2's backward split into two passes without atomics:
//   attn_bwd_mma_dq:   per 64-query tile: S = Q K^T, dP = dO V^T, dS = P (dP - D),
//                      dQ += scale dS K                       (over the key tiles)
//   attn_bwd_mma_dkdv: per 64-key tile: S^T = K Q^T, dP^T = V dO^T,
//                      dV += P~^T dO, dK += scale dS^T Q       (over the query tiles)
// fragments through ldmatrix (as attn_fwd_mma<FAST>), tiles loaded synchronously,
// D_i = dO_i . O_i and lse kept per tile in shared memory. 16-byte rows only.

// D_i = dO_i . O_i and lse_i * log2(e) for every row, one warp per row: read
// once here instead of once per key tile by every block of the dK/dV pass
template <typename T>
__global__ void attn_bwd_row_stats(attn_args a, float *Dg, float *Lg) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (int64_t)a.B * a.NH * a.Tq) return;
    const int qi = (int)(row % a.Tq), h = (int)((row / a.Tq) % a.NH), b = (int)(row / ((int64_t)a.Tq * a.NH));
    const int64_t off = (((int64_t)b * a.Tq + qi) * a.NH + h) * a.HD;
    const T *orow = (const T *)a.out + off, *dorow = (const T *)a.dout + off;
    float acc = 0.0f;
    for (int d = lane; d < a.HD; d += 32) acc += to_f<T>(orow[d]) * to_f<T>(dorow[d]);
    acc = warp_sum(acc);
    if (lane == 0) {
        Dg[row] = acc;
        Lg[row] = a.lse[row] * 1.4426950408889634f; // -inf stays -inf
    }
}

// D and lse (log2 domain) of rows [r0, r0 + 64) into Dsm, Lsm
template <typename T>
__device__ __forceinline__ void mma_bwd_row_stats(const attn_args &a, int b, int h, int r0, float *Dsm, float *Lsm) {
    if (a.Dg) { // precomputed by attn_bwd_row_stats
        for (int i = threadIdx.x; i < 64; i += blockDim.x) {
            int qi = r0 + i;
            int64_t row = ((int64_t)b * a.NH + h) * a.Tq + qi;
            Dsm[i] = qi < a.Tq ? a.Dg[row] : 0.0f;
            Lsm[i] = qi < a.Tq ? a.Lg[row] : -INFINITY;
        }
        return;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T *dop = (const T *)a.dout + ((int64_t)b * a.Tq * a.NH + h) * a.HD;
    const T *op = (const T *)a.out + ((int64_t)b * a.Tq * a.NH + h) * a.HD;
    for (int i = warp; i < 64; i += 4) {
        int qi = r0 + i;
        float acc = 0.0f;
        if (qi < a.Tq)
            for (int d = lane; d < a.HD; d += 32)
                acc += to_f<T>(op[(int64_t)qi * a.NH * a.HD + d]) * to_f<T>(dop[(int64_t)qi * a.NH * a.HD + d]);
        acc = warp_sum(acc);
        if (lane == 0) {
            Dsm[i] = acc;
            float L = qi < a.Tq ? a.lse[((int64_t)b * a.NH + h) * a.Tq + qi] : -INFINITY;
            Lsm[i] = L * 1.4426950408889634f; // -inf stays -inf
        }
    }
}

// c[8][4] (16 x 64 per warp) = A (16 x D, rows of `As` from row0) @ B^T where B is 64 rows of Bs
template <typename T, int D>
__device__ __forceinline__ void mma_rows_x_rowsT(float c[8][4], const T *As, int row0, const T *Bs) {
    constexpr int LD = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.0f;
    const int ar = row0 + (lane & 7) + ((lane >> 3) & 1) * 8, ac = (lane >> 4) * 8;
    const int br = (lane >> 4) * 8 + (lane & 7), bc = ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t af[4];
        ldsm_x4(af[0], af[1], af[2], af[3], smem_u32(&As[ar * LD + kk * 16 + ac]));
#pragma unroll
        for (int nt = 0; nt < 8; nt += 2) {
            uint32_t b0, b1, b2, b3;
            ldsm_x4(b0, b1, b2, b3, smem_u32(&Bs[(nt * 8 + br) * LD + kk * 16 + bc]));
            mma16816(c[nt], af, b0, b1, T());
            mma16816(c[nt + 1], af, b2, b3, T());
        }
    }
}

// acc[D/8][4] (16 x D per warp) += P (16 x 64, accumulator layout in p[8][4]) @ Bs (64 rows x D)
template <typename T, int D>
__device__ __forceinline__ void mma_p_x_rows(float acc[D / 8][4], const float p[8][4], const T *Bs) {
    constexpr int LD = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
        uint32_t pa[4];
        pa[0] = pack2(p[2 * kc][0], p[2 * kc][1], T());
        pa[1] = pack2(p[2 * kc][2], p[2 * kc][3], T());
        pa[2] = pack2(p[2 * kc + 1][0], p[2 * kc + 1][1], T());
        pa[3] = pack2(p[2 * kc + 1][2], p[2 * kc + 1][3], T());
        const int vr = kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), vc = (lane >> 4) * 8;
#pragma unroll
        for (int nd = 0; nd < D / 8; nd += 2) {
            uint32_t b0, b1, b2, b3;
            ldsm_x4_t(b0, b1, b2, b3, smem_u32(&Bs[vr * LD + nd * 8 + vc]));
            mma16816(acc[nd], pa, b0, b1, T());
            mma16816(acc[nd + 1], pa, b2, b3, T());
        }
    }
}

// dst (rows [r0, r0+64) of a strided (T, HD) slice) += scale * acc (warp's 16 rows)
template <typename T, int D>
__device__ __forceinline__ void mma_acc_store(T *dst, int64_t st, int r0, int T_len, int HD, const float acc[D / 8][4],
                                              float scale) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int row = r0 + warp * 16 + g + (e >> 1) * 8, d = nd * 8 + tig * 2 + (e & 1);
            if (row < T_len && d < HD) {
                T *p = dst + (int64_t)row * st + d;
                *p = from_f<T>(to_f<T>(*p) + scale * acc[nd][e]);
            }
        }
    }
}

// dq pass, one warp's 16 queries (rows qi0, qi0 + 8 per thread) x 64 keys: the
// scores s become dS = P (dP - D) in place, masked by selects (see mma_key_bias;
// rows beyond Tq have L = -inf); DROP instantiates the dropout path separately
// so the common path carries no Philox code
template <bool DROP>
__device__ __forceinline__ void mma_bwd_dq_scores(const attn_args &a, int b, int h, int qi0, int k0, bool diag,
                                                  float sl2, const float Lr[2], const float Dr[2], const float *kb,
                                                  float s[8][4], const float dp[8][4]) {
    const int tig = threadIdx.x & 3, causal_off = a.Tk - a.Tq;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        const float2 kb2 = *reinterpret_cast<const float2 *>(&kb[nt * 8 + tig * 2]);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = e >> 1, qi = qi0 + r * 8, kj = k0 + nt * 8 + tig * 2 + (e & 1);
            bool vis = Lr[r] != -INFINITY && ((e & 1) ? kb2.y : kb2.x) == 0.0f && !(diag && kj > qi + causal_off);
            float p = exp2f(s[nt][e] * sl2 - Lr[r]), dpv = dp[nt][e];
            if (DROP) dpv = attn_keep(a, b, h, qi, kj) ? dpv * a.drop_scale : 0.0f;
            s[nt][e] = vis ? p * (dpv - Dr[r]) : 0.0f;
        }
    }
}

// dK/dV pass, one warp's 16 keys (kj0, kj0 + 8 per thread) x 64 queries from q0:
// st (S^T) becomes P~^T (dropped probabilities), dpt (dP^T) becomes dS^T
template <bool DROP>
__device__ __forceinline__ void mma_bwd_dkdv_scores(const attn_args &a, int b, int h, int q0, int kj0,
                                                    const bool kok[2], bool diag, float sl2, const float *Lsm,
                                                    const float *Dsm, float st[8][4], float dpt[8][4]) {
    const int tig = threadIdx.x & 3, causal_off = a.Tk - a.Tq;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        const int il0 = nt * 8 + tig * 2;
        const float2 L2 = *reinterpret_cast<const float2 *>(&Lsm[il0]);
        const float2 D2 = *reinterpret_cast<const float2 *>(&Dsm[il0]);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = e >> 1, kj = kj0 + r * 8, qi = q0 + il0 + (e & 1);
            float L = (e & 1) ? L2.y : L2.x, Di = (e & 1) ? D2.y : D2.x;
            bool vis = kok[r] && L != -INFINITY && !(diag && kj > qi + causal_off);
            float p = exp2f(st[nt][e] * sl2 - L), dpv = dpt[nt][e], pd = p;
            if (DROP) {
                bool keep = attn_keep(a, b, h, qi, kj);
                pd = keep ? p * a.drop_scale : 0.0f;
                dpv = keep ? dpv * a.drop_scale : 0.0f;
            }
            st[nt][e] = vis ? pd : 0.0f;
            dpt[nt][e] = vis ? p * (dpv - Di) : 0.0f;
        }
    }
}

template <typename T, int D, bool DROP>
__global__ void __launch_bounds__(128) attn_bwd_mma_dq(attn_args a) {
    constexpr int LD = D + 8;
    constexpr float LOG2E = 1.4426950408889634f;
    extern __shared__ uint4 mma_dyn_smem[];
    // Q, dO, then K[2] and V[2]: the next key tile is copied (cp.async) while this one is used
    T *Qs = reinterpret_cast<T *>(mma_dyn_smem), *dOs = Qs + 64 * LD, *Ks = dOs + 64 * LD, *Vs = Ks + 2 * 64 * LD;
    float *Dsm = reinterpret_cast<float *>(Vs + 2 * 64 * LD), *Lsm = Dsm + 64, *kb = Lsm + 64;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * 64;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    const T *dop = (const T *)a.dout + ((int64_t)b * a.Tq * a.NH + h) * a.HD;
    mma_load_tile<T, D>(Qs, qp, a.q_st, q0, a.Tq, a.HD, true);
    mma_load_tile<T, D>(dOs, dop, (int64_t)a.NH * a.HD, q0, a.Tq, a.HD, true);
    mma_bwd_row_stats<T>(a, b, h, q0, Dsm, Lsm);
    float dq[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;
    const float sl2 = a.scale * LOG2E;
    const int rl[2] = {warp * 16 + g, warp * 16 + g + 8}; // local rows
    const int causal_off = a.Tk - a.Tq;
    int kend = a.Tk;
    if (a.causal) kend = min(a.Tk, q0 + 64 + (a.Tk - a.Tq));
    if (kend > 0) {
        mma_async_tile64<T, D>(Ks, kp, a.k_st, 0, a.Tk, a.HD);
        mma_async_tile64<T, D>(Vs, vp, a.v_st, 0, a.Tk, a.HD);
    }
    cp_async_commit();
    for (int k0 = 0, it = 0; k0 < kend; k0 += 64, it++) {
        const T *Kt = Ks + (it & 1) * 64 * LD, *Vt = Vs + (it & 1) * 64 * LD;
        if (k0 + 64 < kend) { // the other buffer's readers finished before the last barrier
            mma_async_tile64<T, D>(Ks + ((it + 1) & 1) * 64 * LD, kp, a.k_st, k0 + 64, a.Tk, a.HD);
            mma_async_tile64<T, D>(Vs + ((it + 1) & 1) * 64 * LD, vp, a.v_st, k0 + 64, a.Tk, a.HD);
        }
        cp_async_commit();
        cp_async_wait<1>();
        mma_key_bias(a, b, k0, kb);
        __syncthreads();
        float s[8][4], dp[8][4];
        mma_rows_x_rowsT<T, D>(s, Qs, warp * 16, Kt);
        mma_rows_x_rowsT<T, D>(dp, dOs, warp * 16, Vt);
        // masking by selects (see mma_key_bias); rows beyond Tq have L = -inf
        const float Lr[2] = {Lsm[rl[0]], Lsm[rl[1]]}, Dr[2] = {Dsm[rl[0]], Dsm[rl[1]]};
        const bool diag = a.causal && k0 + 63 > q0 + warp * 16 + causal_off;
        mma_bwd_dq_scores<DROP>(a, b, h, q0 + rl[0], k0, diag, sl2, Lr, Dr, kb, s, dp);
        mma_p_x_rows<T, D>(dq, s, Kt);
        __syncthreads();
    }
    mma_acc_store<T, D>((T *)a.dq + (int64_t)b * a.dq_sb + (int64_t)h * a.dq_sh, a.dq_st, q0, a.Tq, a.HD, dq, a.scale);
}

template <typename T, int D, bool DROP>
__global__ void __launch_bounds__(128) attn_bwd_mma_dkdv(attn_args a) {
    constexpr int LD = D + 8;
    constexpr float LOG2E = 1.4426950408889634f;
    extern __shared__ uint4 mma_dyn_smem[];
    // K, V, then Q[2] and dO[2]: the next query tile is copied (cp.async) while this one is used
    T *Ks = reinterpret_cast<T *>(mma_dyn_smem), *Vs = Ks + 64 * LD, *Qs = Vs + 64 * LD, *dOs = Qs + 2 * 64 * LD;
    float *Dsm = reinterpret_cast<float *>(dOs + 2 * 64 * LD), *Lsm = Dsm + 64;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
    const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * 64;
    const T *qp = (const T *)a.q + (int64_t)b * a.q_sb + (int64_t)h * a.q_sh;
    const T *kp = (const T *)a.k + (int64_t)b * a.k_sb + (int64_t)h * a.k_sh;
    const T *vp = (const T *)a.v + (int64_t)b * a.v_sb + (int64_t)h * a.v_sh;
    const T *dop = (const T *)a.dout + ((int64_t)b * a.Tq * a.NH + h) * a.HD;
    mma_load_tile<T, D>(Ks, kp, a.k_st, k0, a.Tk, a.HD, true);
    mma_load_tile<T, D>(Vs, vp, a.v_st, k0, a.Tk, a.HD, true);
    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++) {
        dk[nd][0] = dk[nd][1] = dk[nd][2] = dk[nd][3] = 0.0f;
        dv[nd][0] = dv[nd][1] = dv[nd][2] = dv[nd][3] = 0.0f;
    }
    const float sl2 = a.scale * LOG2E;
    const int kl[2] = {warp * 16 + g, warp * 16 + g + 8}; // local key rows
    const int causal_off = a.Tk - a.Tq;
    bool kok[2]; // this thread's two keys: within Tk and not padded out
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int kj = k0 + kl[r];
        kok[r] = kj < a.Tk && (!a.mask || a.mask[(int64_t)b * a.Tk + kj]);
    }
    int qstart = 0;
    if (a.causal) qstart = max(0, k0 - (a.Tk - a.Tq));
    qstart = (qstart / 64) * 64;
    if (qstart < a.Tq) {
        mma_async_tile64<T, D>(Qs, qp, a.q_st, qstart, a.Tq, a.HD);
        mma_async_tile64<T, D>(dOs, dop, (int64_t)a.NH * a.HD, qstart, a.Tq, a.HD);
    }
    cp_async_commit();
    for (int q0 = qstart, it = 0; q0 < a.Tq; q0 += 64, it++) {
        const T *Qt = Qs + (it & 1) * 64 * LD, *dOt = dOs + (it & 1) * 64 * LD;
        if (q0 + 64 < a.Tq) { // the other buffer's readers finished before the last barrier
            mma_async_tile64<T, D>(Qs + ((it + 1) & 1) * 64 * LD, qp, a.q_st, q0 + 64, a.Tq, a.HD);
            mma_async_tile64<T, D>(dOs + ((it + 1) & 1) * 64 * LD, dop, (int64_t)a.NH * a.HD, q0 + 64, a.Tq, a.HD);
        }
        cp_async_commit();
        cp_async_wait<1>();
        mma_bwd_row_stats<T>(a, b, h, q0, Dsm, Lsm);
        __syncthreads();
        float st[8][4], dpt[8][4];
        mma_rows_x_rowsT<T, D>(st, Ks, warp * 16, Qt);   // S^T: rows keys, cols queries
        mma_rows_x_rowsT<T, D>(dpt, Vs, warp * 16, dOt); // dP^T
        // masking by selects (see mma_key_bias); queries beyond Tq have L = -inf
        const bool diag = a.causal && k0 + warp * 16 + 15 > q0 + causal_off;
        mma_bwd_dkdv_scores<DROP>(a, b, h, q0, k0 + kl[0], kok, diag, sl2, Lsm, Dsm, st, dpt);
        mma_p_x_rows<T, D>(dv, st, dOt);
        mma_p_x_rows<T, D>(dk, dpt, Qt);
        __syncthreads();
    }
    if (a.dk) mma_acc_store<T, D>((T *)a.dk + (int64_t)b * a.dk_sb + (int64_t)h * a.dk_sh, a.dk_st, k0, a.Tk, a.HD, dk, a.scale);
    if (a.dv) mma_acc_store<T, D>((T *)a.dv + (int64_t)b * a.dv_sb + (int64_t)h * a.dv_sh, a.dv_st, k0, a.Tk, a.HD, dv, 1.0f);
}

// ================================================================== host side
static void qkv_strides(struct tensor t, int64_t *sb, int64_t *st, int64_t *sh) {
    *sb = t.stride[0];
    *st = t.stride[1];
    *sh = t.stride[2];
}

static void fill_args(attn_args *a, struct tensor q, struct tensor k, struct tensor v, struct tensor key_mask,
                      const struct attention_params *p) {
    memset(a, 0, sizeof *a);
    a->q = q.data; a->k = k.data; a->v = v.data;
    qkv_strides(q, &a->q_sb, &a->q_st, &a->q_sh);
    qkv_strides(k, &a->k_sb, &a->k_st, &a->k_sh);
    qkv_strides(v, &a->v_sb, &a->v_st, &a->v_sh);
    a->mask = (const uint8_t *)key_mask.data;
    a->B = (int)q.shape[0]; a->Tq = (int)q.shape[1]; a->NH = (int)q.shape[2]; a->HD = (int)q.shape[3];
    a->Tk = (int)k.shape[1];
    a->scale = p->scale;
    a->causal = p->causal ? 1 : 0;
    a->dropout = p->dropout_p > 0.0f ? 1 : 0;
    a->drop_thr = a->dropout ? philox_dropout_threshold(p->dropout_p) : 0u;
    a->drop_scale = a->dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    a->seed = p->seed;
    a->stream = p->stream;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <typename K>
static allmrec_status set_smem(struct op_ctx *ctx, K kernel, size_t bytes, const char *what) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    if (bytes > im->max_smem_optin)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "%s: head dim needs %zu bytes of shared memory, the device "
                           "allows %zu per block", what, bytes, im->max_smem_optin);
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return ALLMREC_OK;
}

template <typename T>
static allmrec_status fwd_launch(struct op_ctx *ctx, const attn_args &a) {
    cudaStream_t st = cuda_stream_of(ctx);
    bool lowp = sizeof(T) == 2;
    if (ctx->kernel_version == 0 && lowp && a.HD <= 128) {
        int vec = (a.HD % 8 == 0) && a.q_st % 8 == 0 && a.q_sb % 8 == 0 && a.q_sh % 8 == 0 && a.k_st % 8 == 0 &&
                  a.k_sb % 8 == 0 && a.k_sh % 8 == 0 && a.v_st % 8 == 0 && a.v_sb % 8 == 0 && a.v_sh % 8 == 0 &&
                  aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
        dim3 grid((unsigned)((a.Tq + MMA_BR - 1) / MMA_BR), (unsigned)a.NH, (unsigned)a.B);
        // (TL keeps float instantiations of this template from instantiating mma kernels)
        typedef typename std::conditional<sizeof(T) == 2, T, __half>::type TL;
        // 16-byte rows take the ldmatrix + cp.async kernel by default (measured on an H200,
        // 2026-12-04: 1.8x the plain-load kernel at B4 H32 T512 D128, parity passing)
        if (vec) {
            int D = a.HD <= 32 ? 32 : a.HD <= 64 ? 64 : a.HD <= 96 ? 96 : 128;
            if (a.Tq >= 256 && (D == 64 || D == 128)) { // long sequences: 128 query rows per block
                size_t smem128 = (size_t)(128 + 4 * MMA_BC) * (D + 8) * sizeof(TL);
                dim3 grid128((unsigned)((a.Tq + 127) / 128), (unsigned)a.NH, (unsigned)a.B);
                const char *what = "attention_forward (mma, 128 rows)";
                if (D == 64 && !a.dropout) {
                    ALLMREC_TRY(set_smem(ctx, attn_fwd_mma128<TL, 64, false>, smem128, what));
                    attn_fwd_mma128<TL, 64, false><<<grid128, 128, smem128, st>>>(a);
                } else if (D == 64) {
                    ALLMREC_TRY(set_smem(ctx, attn_fwd_mma128<TL, 64, true>, smem128, what));
                    attn_fwd_mma128<TL, 64, true><<<grid128, 128, smem128, st>>>(a);
                } else if (!a.dropout) {
                    ALLMREC_TRY(set_smem(ctx, attn_fwd_mma128<TL, 128, false>, smem128, what));
                    attn_fwd_mma128<TL, 128, false><<<grid128, 128, smem128, st>>>(a);
                } else {
                    ALLMREC_TRY(set_smem(ctx, attn_fwd_mma128<TL, 128, true>, smem128, what));
                    attn_fwd_mma128<TL, 128, true><<<grid128, 128, smem128, st>>>(a);
                }
                CUDA_LAUNCH_CHECK(ctx, "attention_forward (mma, 128 rows)");
                return ALLMREC_OK;
            }
            size_t smem = (size_t)4 * MMA_BC * (D + 8) * sizeof(TL);
            if (D == 32) {
                ALLMREC_TRY(set_smem(ctx, attn_fwd_mma<TL, 32, true>, smem, "attention_forward (mma, ldmatrix + cp.async)"));
                attn_fwd_mma<TL, 32, true><<<grid, 128, smem, st>>>(a, vec);
            } else if (D == 64) {
                ALLMREC_TRY(set_smem(ctx, attn_fwd_mma<TL, 64, true>, smem, "attention_forward (mma, ldmatrix + cp.async)"));
                attn_fwd_mma<TL, 64, true><<<grid, 128, smem, st>>>(a, vec);
            } else if (D == 96) {
                ALLMREC_TRY(set_smem(ctx, attn_fwd_mma<TL, 96, true>, smem, "attention_forward (mma, ldmatrix + cp.async)"));
                attn_fwd_mma<TL, 96, true><<<grid, 128, smem, st>>>(a, vec);
            } else {
                ALLMREC_TRY(set_smem(ctx, attn_fwd_mma<TL, 128, true>, smem, "attention_forward (mma, ldmatrix + cp.async)"));
                attn_fwd_mma<TL, 128, true><<<grid, 128, smem, st>>>(a, vec);
            }
            CUDA_LAUNCH_CHECK(ctx, "attention_forward (mma, ldmatrix + cp.async)");
            return ALLMREC_OK;
        }
        if (a.HD <= 32) attn_fwd_mma<TL, 32, false><<<grid, 128, 0, st>>>(a, vec);
        else if (a.HD <= 64) attn_fwd_mma<TL, 64, false><<<grid, 128, 0, st>>>(a, vec);
        else if (a.HD <= 96) attn_fwd_mma<TL, 96, false><<<grid, 128, 0, st>>>(a, vec);
        else attn_fwd_mma<TL, 128, false><<<grid, 128, 0, st>>>(a, vec);
        CUDA_LAUNCH_CHECK(ctx, "attention_forward (mma)");
        return ALLMREC_OK;
    }
    const int LDS = a.HD + 1;
    size_t smem = (size_t)(4 * SC_BR * LDS + SC_BR * SC_BC + 3 * SC_BR) * sizeof(float);
    ALLMREC_TRY(set_smem(ctx, attn_fwd_scalar<T>, smem, "attention_forward"));
    dim3 grid((unsigned)((a.Tq + SC_BR - 1) / SC_BR), (unsigned)a.NH, (unsigned)a.B);
    attn_fwd_scalar<T><<<grid, SC_THREADS, smem, st>>>(a);
    CUDA_LAUNCH_CHECK(ctx, "attention_forward (scalar)");
    return ALLMREC_OK;
}

// DROP: dropout instantiated apart (the Philox code made the common path spill)
template <typename T, int D, bool DROP>
static allmrec_status bwd_mma_launch_d(struct op_ctx *ctx, const attn_args &a) {
    cudaStream_t st = cuda_stream_of(ctx);
    size_t smem = (size_t)6 * 64 * (D + 8) * sizeof(T) + 3 * 64 * sizeof(float); // 6 tiles, D, lse, key bias
    if (a.dk || a.dv) {
        ALLMREC_TRY(set_smem(ctx, attn_bwd_mma_dkdv<T, D, DROP>, smem, "attention_backward (mma dk, dv)"));
        dim3 grid((unsigned)((a.Tk + 63) / 64), (unsigned)a.NH, (unsigned)a.B);
        attn_bwd_mma_dkdv<T, D, DROP><<<grid, 128, smem, st>>>(a);
        CUDA_LAUNCH_CHECK(ctx, "attention_backward (mma dk, dv)");
    }
    if (a.dq) {
        ALLMREC_TRY(set_smem(ctx, attn_bwd_mma_dq<T, D, DROP>, smem, "attention_backward (mma dq)"));
        dim3 grid((unsigned)((a.Tq + 63) / 64), (unsigned)a.NH, (unsigned)a.B);
        attn_bwd_mma_dq<T, D, DROP><<<grid, 128, smem, st>>>(a);
        CUDA_LAUNCH_CHECK(ctx, "attention_backward (mma dq)");
    }
    return ALLMREC_OK;
}

template <typename T, int D>
static allmrec_status bwd_mma_launch_d(struct op_ctx *ctx, const attn_args &a) {
    return a.dropout ? bwd_mma_launch_d<T, D, true>(ctx, a) : bwd_mma_launch_d<T, D, false>(ctx, a);
}

template <typename T>
static allmrec_status bwd_mma_launch(struct op_ctx *ctx, attn_args a) {
    // D and lse * log2(e) per row once, into the scratch when it holds them (the
    // kernels compute them per tile otherwise)
    int64_t rows = (int64_t)a.B * a.NH * a.Tq;
    struct cuda_impl *im = cuda_impl_of(ctx);
    if (rows > 0 && 2 * rows <= CUDA_SCRATCH_FLOATS && im->scratch) {
        float *Dg = im->scratch, *Lg = im->scratch + rows;
        attn_bwd_row_stats<T><<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream_of(ctx)>>>(a, Dg, Lg);
        CUDA_LAUNCH_CHECK(ctx, "attention_backward (row statistics)");
        a.Dg = Dg;
        a.Lg = Lg;
    }
    if (a.HD <= 32) return bwd_mma_launch_d<T, 32>(ctx, a);
    if (a.HD <= 64) return bwd_mma_launch_d<T, 64>(ctx, a);
    if (a.HD <= 96) return bwd_mma_launch_d<T, 96>(ctx, a);
    return bwd_mma_launch_d<T, 128>(ctx, a);
}

extern "C" allmrec_status cuda_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                                 struct tensor q, struct tensor k, struct tensor v,
                                                 struct tensor key_mask, const struct attention_params *p) {
    CUDA_SAME_DTYPE("op_attention_forward", out, q);
    if (ctx->attention == ATTENTION_CUDNN) {
        char why[256];
        if (!cuda_attention_cudnn_available(ctx, q, k, key_mask, p, why, sizeof why))
            return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "attention: cudnn cannot run this call (%s); "
                               "use attention: hand", why);
        return cuda_attention_cudnn_forward(ctx, out, lse, q, k, v, key_mask, p);
    }
    if (q.shape[0] == 0 || q.shape[1] == 0 || q.shape[2] == 0) return ALLMREC_OK;
    attn_args a;
    fill_args(&a, q, k, v, key_mask, p);
    a.out = out.data;
    a.lse = (float *)lse.data;
    DISPATCH_FLOAT(q.dtype, T, return fwd_launch<T>(ctx, a));
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                                  struct tensor dv, struct tensor dout, struct tensor q,
                                                  struct tensor k, struct tensor v, struct tensor out,
                                                  struct tensor lse, struct tensor key_mask,
                                                  const struct attention_params *p) {
    CUDA_SAME_DTYPE("op_attention_backward", dout, q);
    CUDA_SAME_DTYPE("op_attention_backward", out, q);
    CUDA_SAME_DTYPE("op_attention_backward", dq, q);
    CUDA_SAME_DTYPE("op_attention_backward", dk, q);
    CUDA_SAME_DTYPE("op_attention_backward", dv, q);
    if (ctx->attention == ATTENTION_CUDNN) {
        char why[256];
        if (!cuda_attention_cudnn_available(ctx, q, k, key_mask, p, why, sizeof why))
            return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "attention: cudnn cannot run this call (%s); "
                               "use attention: hand", why);
        return cuda_attention_cudnn_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, key_mask, p);
    }
    if (q.shape[0] == 0 || q.shape[1] == 0 || q.shape[2] == 0 || k.shape[1] == 0) return ALLMREC_OK;
    attn_args a;
    fill_args(&a, q, k, v, key_mask, p);
    a.out = out.data;
    a.lse = (float *)lse.data;
    a.dout = dout.data;
    a.dq = dq.data; a.dk = dk.data; a.dv = dv.data;
    if (a.dq) qkv_strides(dq, &a.dq_sb, &a.dq_st, &a.dq_sh);
    if (a.dk) qkv_strides(dk, &a.dk_sb, &a.dk_st, &a.dk_sh);
    if (a.dv) qkv_strides(dv, &a.dv_sb, &a.dv_st, &a.dv_sh);
    cudaStream_t st = cuda_stream_of(ctx);
    // the tensor-core backward is the default where it applies (H200, 2026-12-04: 6x the
    // fp32 CUDA-core kernels at B4 H32 T512 D128, parity passing); version 1 forces those
    if (ctx->kernel_version == 0 && q.dtype != ALLMREC_DTYPE_F32 && a.HD <= 128 && a.HD % 8 == 0 &&
        a.q_st % 8 == 0 && a.q_sb % 8 == 0 && a.q_sh % 8 == 0 && a.k_st % 8 == 0 && a.k_sb % 8 == 0 &&
        a.k_sh % 8 == 0 && a.v_st % 8 == 0 && a.v_sb % 8 == 0 && a.v_sh % 8 == 0 && aligned16(a.q) &&
        aligned16(a.k) && aligned16(a.v) && aligned16(a.dout)) {
        if (q.dtype == ALLMREC_DTYPE_F16) return bwd_mma_launch<__half>(ctx, a);
        return bwd_mma_launch<__nv_bfloat16>(ctx, a);
    }
    const int LDS = a.HD + 1;
    DISPATCH_FLOAT(q.dtype, T, {
        if (a.dk || a.dv) {
            size_t smem = (size_t)(6 * SC_BR * LDS + 2 * SC_BR * SC_BC + 2 * SC_BR) * sizeof(float);
            ALLMREC_TRY(set_smem(ctx, attn_bwd_dkdv<T>, smem, "attention_backward (dk, dv)"));
            dim3 grid((unsigned)((a.Tk + SC_BC - 1) / SC_BC), (unsigned)a.NH, (unsigned)a.B);
            attn_bwd_dkdv<T><<<grid, SC_THREADS, smem, st>>>(a);
            CUDA_LAUNCH_CHECK(ctx, "attention_backward (dk, dv)");
        }
        if (a.dq) {
            size_t smem = (size_t)(5 * SC_BR * LDS + 2 * SC_BR * SC_BC + 2 * SC_BR) * sizeof(float);
            ALLMREC_TRY(set_smem(ctx, attn_bwd_dq<T>, smem, "attention_backward (dq)"));
            dim3 grid((unsigned)((a.Tq + SC_BR - 1) / SC_BR), (unsigned)a.NH, (unsigned)a.B);
            attn_bwd_dq<T><<<grid, SC_THREADS, smem, st>>>(a);
            CUDA_LAUNCH_CHECK(ctx, "attention_backward (dq)");
        }
    });
    return ALLMREC_OK;
}
