// act_math.h: the scalar activation functions and their derivatives shared by
// the CPU backend's activation.c and gemm.c (linear with fused activation).
// fp32, as the reference: ReLU, GELU (erf and tanh forms), sigmoid, LeakyReLU.
//
// defines: cpu_act_apply, cpu_act_grad, cpu_bias_act_rows
#ifndef ALLMREC_CPU_ACT_MATH_H
#define ALLMREC_CPU_ACT_MATH_H

#include <math.h>

#include "allmrec/ops.h"

#define CPU_ACT_SQRT_2_OVER_PI 0.7978845608028654f
#define CPU_ACT_INV_SQRT_2 0.7071067811865476f
#define CPU_ACT_INV_SQRT_2PI 0.3989422804014327f
#define CPU_ACT_GELU_C 0.044715f

static inline float cpu_sigmoidf(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// act(z)
static inline float cpu_act_apply(enum act_kind kind, float alpha, float z) {
    switch (kind) {
    case ACT_RELU: return z > 0 ? z : 0.0f;
    // 1 + erf(x) written as erfc(-x) and 1 + tanh(u) as 2 sigmoid(2u): no
    // cancellation in the negative tail
    case ACT_GELU_ERF: return 0.5f * z * erfcf(-z * CPU_ACT_INV_SQRT_2);
    case ACT_GELU_TANH: {
        float u = CPU_ACT_SQRT_2_OVER_PI * (z + CPU_ACT_GELU_C * z * z * z);
        return z * cpu_sigmoidf(2.0f * u);
    }
    case ACT_SIGMOID: return cpu_sigmoidf(z);
    case ACT_LEAKY_RELU: return z > 0 ? z : alpha * z;
    case ACT_NONE:
    default: return z;
    }
}

// d act(z) / dz
static inline float cpu_act_grad(enum act_kind kind, float alpha, float z) {
    switch (kind) {
    case ACT_RELU: return z > 0 ? 1.0f : 0.0f;
    case ACT_GELU_ERF:
        return 0.5f * erfcf(-z * CPU_ACT_INV_SQRT_2) + z * CPU_ACT_INV_SQRT_2PI * expf(-0.5f * z * z);
    case ACT_GELU_TANH: {
        // with s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s)
        float z2 = z * z;
        float u = CPU_ACT_SQRT_2_OVER_PI * (z + CPU_ACT_GELU_C * z2 * z);
        float s = cpu_sigmoidf(2.0f * u), sm = cpu_sigmoidf(-2.0f * u);
        return s + 2.0f * z * s * sm * CPU_ACT_SQRT_2_OVER_PI * (1.0f + 3.0f * CPU_ACT_GELU_C * z2);
    }
    case ACT_SIGMOID: return cpu_sigmoidf(z) * cpu_sigmoidf(-z); // s (1 - s) without cancellation
    case ACT_LEAKY_RELU: return z > 0 ? 1.0f : alpha;
    case ACT_NONE:
    default: return 1.0f;
    }
}

// out (N, C) = act(inp (N, C) + bias (C)) for contiguous rows; bias may be
// NULL; out may alias inp. Defined in activation.c.
void cpu_bias_act_rows(float *out, const float *inp, const float *bias, int64_t N, int64_t C,
                       struct act act);

#endif
