// half.h: IEEE fp16 and bfloat16 <-> fp32 conversion on the host, with
// round-to-nearest-even, NaN and Inf preserved, fp16 subnormals handled.
//
// defines: f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32,
//          convert_f32_to_f16, convert_f16_to_f32, convert_f32_to_bf16,
//          convert_bf16_to_f32
#ifndef ALLMREC_HALF_H
#define ALLMREC_HALF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);

void convert_f32_to_f16(uint16_t *dst, const float *src, size_t n);
void convert_f16_to_f32(float *dst, const uint16_t *src, size_t n);
void convert_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void convert_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

#ifdef __cplusplus
}
#endif
#endif
