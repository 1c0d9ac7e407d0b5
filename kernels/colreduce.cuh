// colreduce.cuh: deterministic column reductions over a (rows, cols) grid of
// values, the shape of every bias / norm-weight gradient: for each column c,
// two sums s0 = sum_r f(r, c).x and s1 = sum_r f(r, c).y, then
// f.finish(c, s0, s1) (which accumulates into the gradient). Rows are split
// into chunks reduced by separate blocks into the context's scratch buffer,
// then summed in a fixed order, so results do not depend on scheduling.
//
// defines: colreduce_launch
#ifndef ALLMREC_COLREDUCE_CUH
#define ALLMREC_COLREDUCE_CUH

#include "cuda_common.cuh"

#define COLRED_TX 32
#define COLRED_TY 16

template <typename F>
__global__ void colreduce_kernel(F f, int64_t rows, int64_t cols, int64_t rows_per_chunk,
                                 float *partial, int direct) {
    __shared__ float s0[COLRED_TY][COLRED_TX + 1], s1[COLRED_TY][COLRED_TX + 1];
    int64_t c = (int64_t)blockIdx.x * COLRED_TX + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = min(rows, r0 + rows_per_chunk);
    float a = 0.0f, b = 0.0f;
    if (c < cols) {
        for (int64_t r = r0 + threadIdx.y; r < r1; r += COLRED_TY) {
            float2 v = f(r, c);
            a += v.x;
            b += v.y;
        }
    }
    s0[threadIdx.y][threadIdx.x] = a;
    s1[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        for (int y = 1; y < COLRED_TY; y++) { a += s0[y][threadIdx.x]; b += s1[y][threadIdx.x]; }
        if (direct) {
            f.finish(c, a, b);
        } else {
            partial[((int64_t)blockIdx.y * cols + c) * 2 + 0] = a;
            partial[((int64_t)blockIdx.y * cols + c) * 2 + 1] = b;
        }
    }
}

template <typename F>
__global__ void colreduce_finish_kernel(F f, int64_t cols, int chunks, const float *partial) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float a = 0.0f, b = 0.0f;
    for (int k = 0; k < chunks; k++) {
        a += partial[((int64_t)k * cols + c) * 2 + 0];
        b += partial[((int64_t)k * cols + c) * 2 + 1];
    }
    f.finish(c, a, b);
}

template <typename F>
static allmrec_status colreduce_launch(struct op_ctx *ctx, F f, int64_t rows, int64_t cols,
                                       const char *what) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    cudaStream_t st = im->stream;
    if (rows <= 0 || cols <= 0) return ALLMREC_OK;
    // chunks of ~64 rows (each thread sums 4 of them): enough blocks to fill the GPU
    // even for a few thousand rows; the partition depends on (rows, cols) only
    int64_t chunks = (rows + 63) / 64;
    int64_t cap = CUDA_SCRATCH_FLOATS / (2 * cols);
    if (chunks > cap) chunks = cap;
    if (chunks > 256) chunks = 256;
    if (chunks < 1) chunks = 1;
    int64_t per = (rows + chunks - 1) / chunks;
    chunks = (rows + per - 1) / per;
    dim3 block(COLRED_TX, COLRED_TY), grid((unsigned)((cols + COLRED_TX - 1) / COLRED_TX), (unsigned)chunks);
    colreduce_kernel<F><<<grid, block, 0, st>>>(f, rows, cols, per, im->scratch, chunks == 1);
    CUDA_LAUNCH_CHECK(ctx, what);
    if (chunks > 1) {
        colreduce_finish_kernel<F><<<cuda_grid_1d(cols, 256), 256, 0, st>>>(f, cols, (int)chunks, im->scratch);
        CUDA_LAUNCH_CHECK(ctx, what);
    }
    return ALLMREC_OK;
}

#endif
