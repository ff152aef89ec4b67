/* The per-layer hot loops of KAN's training objective on the CPU: B-spline basis windows, the
 * layer's forward with the per-edge statistics the regularisation needs, and its backward.
 *
 * Launcher and shapes: kernels/kan_objective_cpu.py; the objective around it:
 * kanswap/kan_objective_fused.py. Oracle: kanswap/kan_objective.py (PyTorch).
 *
 * Layout (row-major, contiguous): x (B, n); grid (n, P) sorted knots; inv (k, n, P - 1) reciprocal
 * knot spans of orders 1..k (row j - 1 holds 1 / (g[c + j] - g[c]) in its first P - j entries, 0 for
 * a zero span); W (n, K + 1, m) folded weight, row 0 the base weight, rows 1..K the masked
 * scale_sp * coef, K = P - 1 - k. Each input's k + 1 non-zero basis values are stored as a window
 * start (B, n) into rows 1 + start .. 1 + start + k of W, clamped into [0, K - 1 - k] so that every
 * window is in bounds (values outside the true support are 0): no branch in the edge loops.
 *
 * Every loop over the output width m is elementwise (gcc vectorises it at -O3); the reductions
 * over m (the input gradient) keep LANES partial sums, which vectorise without -ffast-math and give
 * the same bits on every run. Sums over the batch run in batch order: fixed inputs, fixed bits.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define INLINE static inline __attribute__((always_inline))

/* x86-64 with gcc: an AVX2 (8 floats) and an AVX-512 clone of the edge loops next to the baseline
 * one, picked at load time by the CPU (the build needs no -march flag). Not for the basis: its short
 * knot loops ran slower in the wide clones (19-27 ns against 13 ns per point at (2048, 64)). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

#define LANES 8 /* partial sums of a reduction over m: one AVX2 vector of floats */
#define MAX_K 15 /* spline order bound of the local de Boor triangle (pykan uses k <= 5) */

/* Calls FN(B, n, M, ...) with a literal width M = m for m <= 15 and returns: gcc then unrolls the loops
 * over the width and picks exact vector widths (the loops with a run-time m of 10 run a 16-lane body
 * that never fires and a remainder). Measured at (1024, 16, m), float32, one thread, against a build
 * with the run-time loops only: forward and backward 2-5x faster for every m in 1..15, but 3x slower at
 * m = 16 (not understood), so m >= 16 keeps the run-time loops (bench/fit_parts.py prints this build's
 * times per width). Same arithmetic, element for element: the same bits. */
#define WIDTH_CASE(M, FN, ...) case M: FN(B, n, M, __VA_ARGS__); return;
#define SWITCH_WIDTH(FN, ...)                                                                         \
    switch (m) {                                                                                      \
        WIDTH_CASE(1, FN, __VA_ARGS__) WIDTH_CASE(2, FN, __VA_ARGS__) WIDTH_CASE(3, FN, __VA_ARGS__)  \
        WIDTH_CASE(4, FN, __VA_ARGS__) WIDTH_CASE(5, FN, __VA_ARGS__) WIDTH_CASE(6, FN, __VA_ARGS__)  \
        WIDTH_CASE(7, FN, __VA_ARGS__) WIDTH_CASE(8, FN, __VA_ARGS__) WIDTH_CASE(9, FN, __VA_ARGS__)  \
        WIDTH_CASE(10, FN, __VA_ARGS__) WIDTH_CASE(11, FN, __VA_ARGS__) WIDTH_CASE(12, FN, __VA_ARGS__) \
        WIDTH_CASE(13, FN, __VA_ARGS__) WIDTH_CASE(14, FN, __VA_ARGS__) WIDTH_CASE(15, FN, __VA_ARGS__) \
        default: break;                                                                               \
    }

/* ---------------------------------------------------------------------------------------------- */
/* basis windows                                                                                  */

/* Interior interval (idx - k >= 0, idx + k + 1 <= P - 1): every knot of the triangle exists and every
 * c is a basis function, so the recursion runs without checks; always_inline with a literal k = 3
 * unrolls it. Same arithmetic, term for term, as the PyTorch oracle's dense recursion. */
#define DEFINE_TRIANGLE(T, SUF)                                                                       \
INLINE void interior_##SUF(int64_t k, int64_t idx, T xv, const T *restrict g, const T *restrict inv,  \
                           int64_t stride, T *restrict L, T *restrict w)                              \
{                                                                                                     \
    L[0] = 1;                                                                                         \
    w[0] = 0;                                                                                         \
    for (int64_t j = 1; j <= k; ++j) {                                                                \
        const T *ij = inv + (j - 1) * stride;                                                         \
        for (int64_t t = 0; t < j; ++t) w[t] = L[t] * ij[idx - j + 1 + t];                            \
        L[0] = -((xv - g[idx + 1]) * w[0]);                                                           \
        for (int64_t t = 1; t < j; ++t) {                                                             \
            const int64_t c = idx - j + t;                                                            \
            L[t] = (xv - g[c]) * w[t - 1] - (xv - g[c + j + 1]) * w[t];                               \
        }                                                                                             \
        L[j] = (xv - g[idx]) * w[j - 1];                                                              \
    }                                                                                                 \
}                                                                                                     \
                                                                                                      \
/* The interior triangle of k = 3 (pykan's default) in registers: stack arrays cost a store-forwarding \
 * stall and a memcpy per point (22 ns against 13 ns per point at (2048, 64), measured). */            \
INLINE void cubic_##SUF(int64_t idx, T xv, const T *restrict g, const T *restrict inv, int64_t stride, \
                        T *restrict v, T *restrict dv)                                                \
{                                                                                                     \
    const T *i1 = inv, *i2 = inv + stride, *i3 = inv + 2 * stride;                                    \
    const T xm2 = xv - g[idx - 2], xm1 = xv - g[idx - 1], x0 = xv - g[idx];                           \
    const T x1 = xv - g[idx + 1], x2 = xv - g[idx + 2], x3 = xv - g[idx + 3];                         \
    const T w0 = i1[idx];                                                                             \
    const T l0 = -(x1 * w0), l1 = x0 * w0;                                                            \
    const T wa = l0 * i2[idx - 1], wb = l1 * i2[idx];                                                 \
    const T m0 = -(x1 * wa), m1 = xm1 * wa - x2 * wb, m2 = x0 * wb;                                   \
    const T u0 = m0 * i3[idx - 2], u1 = m1 * i3[idx - 1], u2 = m2 * i3[idx];                          \
    v[0] = -(x1 * u0);                                                                                \
    v[1] = xm2 * u0 - x2 * u1;                                                                        \
    v[2] = xm1 * u1 - x3 * u2;                                                                        \
    v[3] = x0 * u2;                                                                                   \
    if (dv) {                                                                                         \
        dv[0] = -(u0 * (T)3);                                                                         \
        dv[1] = (u0 - u1) * (T)3;                                                                     \
        dv[2] = (u1 - u2) * (T)3;                                                                     \
        dv[3] = u2 * (T)3;                                                                            \
    }                                                                                                 \
}                                                                                                     \
                                                                                                      \
/* Near the grid's ends: c < 0 or c > P - 2 - j has no basis function of order j and holds 0. */      \
static void boundary_##SUF(int64_t k, int64_t idx, int64_t P, T xv, const T *restrict g,              \
                           const T *restrict inv, int64_t stride, T *restrict L, T *restrict w)       \
{                                                                                                     \
    L[0] = 1;                                                                                         \
    w[0] = 0;                                                                                         \
    for (int64_t j = 1; j <= k; ++j) {                                                                \
        const T *ij = inv + (j - 1) * stride;                                                         \
        for (int64_t t = 0; t < j; ++t) {                                                             \
            const int64_t c = idx - j + 1 + t;                                                        \
            w[t] = (c >= 0 && c <= P - 1 - j) ? L[t] * ij[c] : (T)0;                                  \
        }                                                                                             \
        for (int64_t t = 0; t <= j; ++t) {                                                            \
            const int64_t c = idx - j + t;                                                            \
            if (c < 0 || c > P - 2 - j) { L[t] = 0; continue; }                                       \
            const T left = t > 0 ? w[t - 1] : (T)0, right = t < j ? w[t] : (T)0;                      \
            L[t] = (xv - g[c]) * left - (xv - g[c + j + 1]) * right;                                  \
        }                                                                                             \
    }                                                                                                 \
}

DEFINE_TRIANGLE(float, f32)
DEFINE_TRIANGLE(double, f64)

#define DEFINE_BASIS(T, SUF)                                                                          \
EXPORT void kan_basis_##SUF(int64_t B, int64_t n, int64_t P, int64_t k, const T *restrict x,      \
                                const T *restrict grid, const T *restrict inv, const T *restrict sig, \
                                int64_t base_kind, int32_t *restrict start, T *restrict val,          \
                                T *restrict dval, T *restrict base, T *restrict dbase,                \
                                double *restrict xstat)                                               \
{                                                                                                     \
    /* xstat (2, n) or NULL: every input column's mean and sample variance, shifted direct sums */    \
    if (xstat) {                                                                                      \
        for (int64_t i = 0; i < n; ++i) {                                                             \
            const double shift = (double)x[i];                                                        \
            double s1 = 0, s2 = 0;                                                                    \
            for (int64_t b = 1; b < B; ++b) {                                                         \
                const double d = (double)x[b * n + i] - shift;                                        \
                s1 += d;                                                                              \
                s2 += d * d;                                                                          \
            }                                                                                         \
            const double ss = s2 - s1 * s1 / (double)B;                                               \
            xstat[i] = shift + s1 / (double)B;                                                        \
            xstat[n + i] = (ss < 0 ? 0.0 : ss) / (double)(B > 1 ? B - 1 : 1); /* NaN stays NaN */     \
        }                                                                                             \
    }                                                                                                 \
    const int64_t K = P - 1 - k, stride = n * (P - 1);                                                \
    for (int64_t b = 0; b < B; ++b) {                                                                 \
        for (int64_t i = 0; i < n; ++i) {                                                             \
            const int64_t bi = b * n + i;                                                             \
            const T xv = x[bi];                                                                       \
            const T *g = grid + i * P;                                                                \
            T *v = val + bi * (k + 1);                                                                \
            T *dv = dval ? dval + bi * (k + 1) : NULL;                                                \
            /* base branch: silu from the sigmoid computed outside (torch's exp is vectorised) */     \
            if (base_kind == 0) {                                                                     \
                const T s = sig[bi], a = xv * s;                                                      \
                base[bi] = a;                                                                         \
                if (dbase) dbase[bi] = s + a * ((T)1 - s);                                            \
            } else {                                                                                  \
                base[bi] = base_kind == 1 ? xv : (T)0;                                                \
                if (dbase) dbase[bi] = base_kind == 1 ? (T)1 : (T)0;                                  \
            }                                                                                         \
            /* interval: g[idx] <= x < g[idx + 1], none outside [g[0], g[P-1]) or for NaN */         \
            if (!(xv >= g[0]) || !(xv < g[P - 1])) {                                                  \
                start[bi] = 0;                                                                        \
                for (int64_t t = 0; t <= k; ++t) {                                                    \
                    v[t] = 0;                                                                         \
                    if (dv) dv[t] = 0;                                                                \
                }                                                                                     \
                continue;                                                                             \
            }                                                                                         \
            /* idx = #{q : g[q] <= x} - 1 (the last such knot on a sorted grid): a branch-free count, \
               against ~4 mispredicted branches of a binary search on a 10-knot grid */               \
            int64_t cnt = 0;                                                                          \
            for (int64_t q = 1; q < P - 1; ++q) cnt += xv >= g[q];                                    \
            const int64_t idx = cnt;                                                                  \
            const int interior = idx >= k && idx <= P - 2 - k;                                        \
            if (interior && k == 3) {                                                                 \
                cubic_##SUF(idx, xv, g, inv + i * (P - 1), stride, v, dv);                            \
                start[bi] = (int32_t)(idx - 3);                                                       \
                continue;                                                                             \
            }                                                                                         \
            T L[MAX_K + 2] = {0}, w[MAX_K + 2] = {0};                                                 \
            if (interior)                                                                             \
                interior_##SUF(k, idx, xv, g, inv + i * (P - 1), stride, L, w);                       \
            else                                                                                      \
                boundary_##SUF(k, idx, P, xv, g, inv + i * (P - 1), stride, L, w);                    \
            /* L[t] is B_{c,k}, c = idx - k + t; w[t] is B_{c+1,k-1} / span: d/dx B_{c,k} =           \
               k (w[t-1] - w[t]) */                                                                   \
            if (interior) {                                                                           \
                start[bi] = (int32_t)(idx - k);                                                       \
                for (int64_t t = 0; t <= k; ++t) v[t] = L[t];                                         \
                if (dv) {                                                                             \
                    dv[0] = -(w[0] * (T)k);                                                           \
                    for (int64_t t = 1; t < k; ++t) dv[t] = (w[t - 1] - w[t]) * (T)k;                 \
                    if (k > 0) dv[k] = w[k - 1] * (T)k;                                               \
                }                                                                                     \
                continue;                                                                             \
            }                                                                                         \
            const int64_t s0 = idx - k < 0 ? 0 : (idx - k > K - 1 - k ? K - 1 - k : idx - k);         \
            start[bi] = (int32_t)s0;                                                                  \
            for (int64_t t = 0; t <= k; ++t) {                                                        \
                v[t] = 0;                                                                             \
                if (dv) dv[t] = 0;                                                                    \
            }                                                                                         \
            for (int64_t t = 0; t <= k; ++t) {                                                        \
                const int64_t c = idx - k + t, s = c - s0;                                            \
                if (c < 0 || c > K - 1 || s < 0 || s > k) continue;                                   \
                v[s] = L[t];                                                                          \
                if (dv && k > 0) {                                                                    \
                    const T left = t > 0 ? w[t - 1] : (T)0, right = t < k ? w[t] : (T)0;              \
                    dv[s] = (left - right) * (T)k;                                                    \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
}

DEFINE_BASIS(float, f32)
DEFINE_BASIS(double, f64)

/* ---------------------------------------------------------------------------------------------- */
/* forward: y (B, m) and, if asked, every edge's mean and sample variance over the batch            */

/* phi[j] = a W0[j] + sum_t v[t] Ws[t m + j] for one (sample, input): the edge outputs. always_inline
 * with a literal k = 3 (pykan's default) unrolls the t loop. */
#define DEFINE_EDGES(T, SUF)                                                                          \
INLINE void edges_##SUF(int64_t m, int64_t k, T a, const T *restrict v, const T *restrict w0,         \
                        const T *restrict ws, T *restrict phi)                                        \
{                                                                                                     \
    for (int64_t j = 0; j < m; ++j) phi[j] = a * w0[j];                                               \
    for (int64_t t = 0; t <= k; ++t) {                                                                \
        const T vt = v[t];                                                                            \
        const T *restrict wt = ws + t * m;                                                            \
        for (int64_t j = 0; j < m; ++j) phi[j] += vt * wt[j];                                         \
    }                                                                                                 \
}

DEFINE_EDGES(float, f32)
DEFINE_EDGES(double, f64)

/* The statistics are direct sums of phi - phi(sample 0) in double: the shift keeps the summands as
 * small as the edge's spread, so a near-constant edge (std 1e-5 of a value ~1) loses nothing to
 * cancellation, where a covariance form w^T C w loses ~1e-9 relative. */
#define DEFINE_FORWARD(T, SUF)                                                                        \
INLINE void forward_rows_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,                \
                               const int32_t *restrict start, const T *restrict val,                  \
                               const T *restrict base, const T *restrict W, T *restrict y,            \
                               double *restrict shift, double *restrict s1, double *restrict s2,      \
                               T *restrict phi)                                                       \
{                                                                                                     \
    for (int64_t b = 0; b < B; ++b) {                                                                 \
        T *restrict yb = y + b * m;                                                                   \
        for (int64_t j = 0; j < m; ++j) yb[j] = 0;                                                    \
        for (int64_t i = 0; i < n; ++i) {                                                             \
            const int64_t bi = b * n + i;                                                             \
            const T *w0 = W + i * K1 * m;                                                             \
            edges_##SUF(m, k, base[bi], val + bi * (k + 1), w0, w0 + (1 + start[bi]) * m, phi);       \
            for (int64_t j = 0; j < m; ++j) yb[j] += phi[j];                                          \
            if (!s1) continue;                                                                        \
            double *restrict sh = shift + i * m, *restrict a1 = s1 + i * m, *restrict a2 = s2 + i * m; \
            if (b == 0) {                                                                             \
                for (int64_t j = 0; j < m; ++j) { sh[j] = (double)phi[j]; a1[j] = 0; a2[j] = 0; }     \
            } else {                                                                                  \
                for (int64_t j = 0; j < m; ++j) {                                                     \
                    const double d = (double)phi[j] - sh[j];                                          \
                    a1[j] += d;                                                                       \
                    a2[j] += d * d;                                                                   \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
}                                                                                                     \
                                                                                                      \
/* k = 3 and m <= 15 with both literal (SWITCH_WIDTH) */                                            \
INLINE void forward_width_##SUF(int64_t B, int64_t n, int64_t m, int64_t K1,                          \
                                const int32_t *restrict start, const T *restrict val,                 \
                                const T *restrict base, const T *restrict W, T *restrict y,           \
                                double *restrict shift, double *restrict s1, double *restrict s2,     \
                                T *restrict phi)                                                      \
{                                                                                                     \
    SWITCH_WIDTH(forward_rows_##SUF, 3, K1, start, val, base, W, y, shift, s1, s2, phi)               \
}                                                                                                     \
                                                                                                      \
EXPORT HOT void kan_forward_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,             \
                                  const int32_t *restrict start, const T *restrict val,               \
                                  const T *restrict base, const T *restrict W, T *restrict y,         \
                                  double *restrict mean, double *restrict var,                        \
                                  double *restrict work, T *restrict phi)                             \
{                                                                                                     \
    /* mean, var (n, m) or NULL (no statistics); work (2, n, m): the shift and the first sum */       \
    double *s2 = var;                                                                                 \
    double *shift = work, *s1 = mean ? work + n * m : NULL;                                           \
    if (k == 3 && m <= 15)                                                                            \
        forward_width_##SUF(B, n, m, K1, start, val, base, W, y, shift, s1, s2, phi);                 \
    else if (k == 3)                                                                                  \
        forward_rows_##SUF(B, n, m, 3, K1, start, val, base, W, y, shift, s1, s2, phi);               \
    else                                                                                              \
        forward_rows_##SUF(B, n, m, k, K1, start, val, base, W, y, shift, s1, s2, phi);               \
    if (!mean) return;                                                                                \
    const double inv_b = 1.0 / (double)B, inv_b1 = 1.0 / (double)(B > 1 ? B - 1 : 1);                 \
    for (int64_t e = 0; e < n * m; ++e) {                                                             \
        const double a = s1[e];                                                                       \
        const double ss = s2[e] - a * a * inv_b;                                                      \
        mean[e] = shift[e] + a * inv_b;                                                               \
        var[e] = (ss < 0 ? 0.0 : ss) * inv_b1; /* NaN stays NaN */                                    \
    }                                                                                                 \
}

DEFINE_FORWARD(float, f32)
DEFINE_FORWARD(double, f64)

/* ---------------------------------------------------------------------------------------------- */
/* backward: dW (n, K+1, m) and, if asked, gx (B, n), from gz (B, m) = d objective / d y and the
 * regularisation's per-edge coefficient c (n rows of stride ldc, float64) with the edge means (n, m,
 * float64): d objective / d phi_bij = gz_bj + c_ij (phi_bij - mean_ij), the centring in float64 (c NULL:
 * no regularisation through this layer's edge stds, mean unused) */
#define DEFINE_BACKWARD(T, SUF)                                                                       \
/* sum_j q[j] in LANES partial sums: vectorised without reassociating flags, same bits every run */   \
INLINE T sum_##SUF(int64_t m, const T *restrict q)                                                    \
{                                                                                                     \
    T acc[LANES] = {0};                                                                               \
    int64_t j = 0;                                                                                    \
    for (; j + LANES <= m; j += LANES)                                                                \
        for (int64_t l = 0; l < LANES; ++l) acc[l] += q[j + l];                                       \
    T s = 0;                                                                                          \
    for (int64_t l = 0; l < LANES; ++l) s += acc[l];                                                  \
    for (; j < m; ++j) s += q[j];                                                                     \
    return s;                                                                                         \
}                                                                                                     \
                                                                                                      \
INLINE void backward_rows_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,               \
                                const int32_t *restrict start, const T *restrict val,                 \
                                const T *restrict dval, const T *restrict base,                       \
                                const T *restrict dbase, const T *restrict W, const T *restrict gz,   \
                                const double *restrict c, int64_t ldc, const double *restrict mean,   \
                                T *restrict dW,                                                       \
                                T *restrict gx, T *restrict phi, T *restrict dphi,                    \
                                const T *restrict x, const double *restrict xmean,                    \
                                const double *restrict dxv)                                           \
{                                                                                                     \
    for (int64_t b = 0; b < B; ++b) {                                                                 \
        const T *restrict gb = gz + b * m;                                                            \
        for (int64_t i = 0; i < n; ++i) {                                                             \
            const int64_t bi = b * n + i;                                                             \
            const T *w0 = W + i * K1 * m;                                                             \
            const T *ws = w0 + (1 + start[bi]) * m;                                                   \
            const T *v = val + bi * (k + 1);                                                          \
            const T a = base[bi];                                                                     \
            const T *restrict d = gb;                                                                 \
            if (c) {                                                                                  \
                edges_##SUF(m, k, a, v, w0, ws, phi);                                                 \
                const double *restrict ci = c + i * ldc, *restrict mi = mean + i * m;                 \
                for (int64_t j = 0; j < m; ++j)                                                       \
                    dphi[j] = gb[j] + (T)(ci[j] * ((double)phi[j] - mi[j]));                          \
                d = dphi;                                                                             \
            }                                                                                         \
            T *restrict dw0 = dW + i * K1 * m;                                                        \
            T *restrict dws = dw0 + (1 + start[bi]) * m;                                              \
            for (int64_t j = 0; j < m; ++j) dw0[j] += d[j] * a;                                       \
            for (int64_t t = 0; t <= k; ++t) {                                                        \
                const T vt = v[t];                                                                    \
                T *restrict dwt = dws + t * m;                                                        \
                for (int64_t j = 0; j < m; ++j) dwt[j] += d[j] * vt;                                  \
            }                                                                                         \
            if (!gx) continue;                                                                        \
            /* gx = sum_j d_j dphi_j/dx with dphi_j/dx = dbase W0_j + sum_t dval_t Ws_tj */           \
            edges_##SUF(m, k, dbase[bi], dval + bi * (k + 1), w0, ws, phi);                           \
            for (int64_t j = 0; j < m; ++j) phi[j] *= d[j];                                           \
            gx[bi] = sum_##SUF(m, phi);                                                               \
            if (dxv) gx[bi] += (T)(((double)x[bi] - xmean[i]) * dxv[i]);                              \
        }                                                                                             \
    }                                                                                                 \
}                                                                                                     \
                                                                                                      \
/* k = 3 and m <= 15 with both literal (SWITCH_WIDTH) */                                            \
INLINE void backward_width_##SUF(int64_t B, int64_t n, int64_t m, int64_t K1,                         \
                                 const int32_t *restrict start, const T *restrict val,                \
                                 const T *restrict dval, const T *restrict base,                      \
                                 const T *restrict dbase, const T *restrict W, const T *restrict gz,  \
                                 const double *restrict c, int64_t ldc, const double *restrict mean,  \
                                 T *restrict dW, T *restrict gx, T *restrict phi, T *restrict dphi,   \
                                 const T *restrict x, const double *restrict xmean,                   \
                                 const double *restrict dxv)                                          \
{                                                                                                     \
    SWITCH_WIDTH(backward_rows_##SUF, 3, K1, start, val, dval, base, dbase, W, gz, c, ldc, mean, dW, gx, \
                 phi, dphi, x, xmean, dxv)                                                            \
}                                                                                                     \
                                                                                                      \
EXPORT HOT void kan_backward_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,            \
                                   const int32_t *restrict start, const T *restrict val,              \
                                   const T *restrict dval, const T *restrict base,                    \
                                   const T *restrict dbase, const T *restrict W,                      \
                                   const T *restrict gz, const double *restrict c, int64_t ldc,       \
                                   const double *restrict mean, T *restrict dW, T *restrict gx,       \
                                   T *restrict phi, T *restrict dphi, const T *restrict x,            \
                                   const double *restrict xmean, const double *restrict dxv)          \
{                                                                                                     \
    /* dW is overwritten; phi, dphi: (m,) scratch; dxv (n,) or NULL: gx_bi += (x_bi - xmean_i) dxv_i   \
       (the regularisation's pull through the input stds; x (B, n), xmean (n,)) */                     \
    memset(dW, 0, (size_t)(n * K1 * m) * sizeof(T));                                                  \
    if (k == 3 && m <= 15)                                                                            \
        backward_width_##SUF(B, n, m, K1, start, val, dval, base, dbase, W, gz, c, ldc, mean, dW, gx,  \
                             phi, dphi, x, xmean, dxv);                                               \
    else if (k == 3)                                                                                  \
        backward_rows_##SUF(B, n, m, 3, K1, start, val, dval, base, dbase, W, gz, c, ldc, mean, dW, gx, \
                            phi, dphi, x, xmean, dxv);                                                \
    else                                                                                              \
        backward_rows_##SUF(B, n, m, k, K1, start, val, dval, base, dbase, W, gz, c, ldc, mean, dW, gx, \
                            phi, dphi, x, xmean, dxv);                                                \
}

DEFINE_BACKWARD(float, f32)
DEFINE_BACKWARD(double, f64)

/* ---------------------------------------------------------------------------------------------- */
/* the folded weight and its gradient, one pass each (6 and 5 torch ops per layer before)          */
/* coef (n, m, K), scale_base / scale_sp / mask (n, m), mask NULL for all ones                      */

#define DEFINE_WEIGHT(T, SUF)                                                                         \
EXPORT void kan_fold_##SUF(int64_t n, int64_t m, int64_t K, const T *restrict coef,                   \
                           const T *restrict scale_base, const T *restrict scale_sp,                  \
                           const T *restrict mask, T *restrict W)                                     \
{                                                                                                     \
    /* W (n, K + 1, m): row 0 mask * scale_base, rows 1.. (mask * scale_sp) * coef */                 \
    for (int64_t i = 0; i < n; ++i)                                                                   \
        for (int64_t j = 0; j < m; ++j) {                                                             \
            const int64_t e = i * m + j;                                                              \
            const T mk = mask ? mask[e] : (T)1;                                                       \
            const T wsp = mask ? mk * scale_sp[e] : scale_sp[e];                                      \
            T *w = W + i * (K + 1) * m + j;                                                           \
            w[0] = mask ? mk * scale_base[e] : scale_base[e];                                         \
            for (int64_t c = 0; c < K; ++c) w[(c + 1) * m] = wsp * coef[e * K + c];                  \
        }                                                                                             \
}                                                                                                     \
                                                                                                      \
EXPORT void kan_fold_grad_##SUF(int64_t n, int64_t m, int64_t K, const T *restrict dW,                \
                                const T *restrict coef, const T *restrict scale_sp,                   \
                                const T *restrict mask, const T *restrict dcoef_reg,                  \
                                T *restrict g_coef, T *restrict g_base, T *restrict g_sp)             \
{                                                                                                     \
    /* gradients of coef (n, m, K), scale_base and scale_sp (n, m) from dW (n, K + 1, m); a NULL     \
       output is not trainable; dcoef_reg (n, m, K) or NULL is added to g_coef */                     \
    for (int64_t i = 0; i < n; ++i)                                                                   \
        for (int64_t j = 0; j < m; ++j) {                                                             \
            const int64_t e = i * m + j;                                                              \
            const T mk = mask ? mask[e] : (T)1;                                                       \
            const T wsp = mask ? mk * scale_sp[e] : scale_sp[e];                                      \
            const T *d = dW + i * (K + 1) * m + j;                                                    \
            if (g_base) g_base[e] = mask ? d[0] * mk : d[0];                                          \
            T acc = 0;                                                                                \
            for (int64_t c = 0; c < K; ++c) {                                                         \
                const T dc = d[(c + 1) * m];                                                          \
                if (g_coef) g_coef[e * K + c] = dcoef_reg ? dcoef_reg[e * K + c] + dc * wsp : dc * wsp; \
                acc += dc * coef[e * K + c];                                                          \
            }                                                                                         \
            if (g_sp) g_sp[e] = mask ? acc * mk : acc;                                                \
        }                                                                                             \
}

DEFINE_WEIGHT(float, f32)
DEFINE_WEIGHT(double, f64)

/* ---------------------------------------------------------------------------------------------- */
/* pykan's l1 + row/column entropy penalty (regularization.matrix_reg) and its gradient, float64      */

/* The penalty of one non-negative matrix v (n, m) and d penalty / d v into dv (n, m):
 * lamb_l1 sum v - lamb_entropy (sum pr log2(pr + 1e-4) / m + sum pc log2(pc + 1e-4) / n), pr = v over its
 * column sum + 1 (the sum over i), pc = v over its row sum + 1 (over j). Either orientation of pykan's
 * (out, in) matrix gives the same value. work: 2 (n + m + n m) doubles (the logarithms are kept for the
 * gradient's pass: 2 log2 per entry instead of 4, 30 -> 18 us on the reference MLP's weights). */
static double matrix_reg(int64_t n, int64_t m, const double *restrict v, double lamb_l1, double lamb_entropy,
                         double *restrict dv, double *restrict work)
{
    const double inv_ln2 = 1.0 / log(2.0);
    double *s = work, *fc = s + n, *r = fc + n, *fr = r + m, *log_r = fr + m, *log_c = log_r + n * m;
    double l1 = 0.0, ent_row = 0.0, ent_col = 0.0;
    for (int64_t i = 0; i < n; ++i) s[i] = fc[i] = 0.0;
    for (int64_t j = 0; j < m; ++j) r[j] = fr[j] = 0.0;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
            const double x = v[i * m + j];
            s[i] += x;
            r[j] += x;
            l1 += x;
        }
    /* f(p) = p log2(p + 1e-4); over one line the gradient of -sum f is -(f'(p) - sum f'(p) p) / (sum + 1) */
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
            const int64_t q = i * m + j;
            const double pr = v[q] / (r[j] + 1.0), pc = v[q] / (s[i] + 1.0);
            const double lr = log_r[q] = log2(pr + 1e-4), lc = log_c[q] = log2(pc + 1e-4);
            ent_row += pr * lr;
            ent_col += pc * lc;
            fr[j] += (lr + inv_ln2 * pr / (pr + 1e-4)) * pr;
            fc[i] += (lc + inv_ln2 * pc / (pc + 1e-4)) * pc;
        }
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
            const int64_t q = i * m + j;
            const double pr = v[q] / (r[j] + 1.0), pc = v[q] / (s[i] + 1.0);
            const double gr = log_r[q] + inv_ln2 * pr / (pr + 1e-4) - fr[j];
            const double gc = log_c[q] + inv_ln2 * pc / (pc + 1e-4) - fc[i];
            dv[q] = lamb_l1 - lamb_entropy * (gr / ((double)m * (r[j] + 1.0)) + gc / ((double)n * (s[i] + 1.0)));
        }
    return l1 * lamb_l1 - (ent_row / (double)m + ent_col / (double)n) * lamb_entropy;
}

/* A KAN's forward metrics: the penalty of every layer's edge-std matrix (~60 torch ops on the
 * block-diagonal matrix before, kan_objective._Objective._forward_metric_reg).
 * Per layer l (n, m): var (n, m) edge variances, xstat (2, n) input means and variances; out c (n, m)
 * the coefficient of the edge outputs' centred values in d(lamb reg) / d phi, dvar2 (n,) that of the
 * inputs' centred values (0 where a floor holds, as the oracle's clamps). normed: divide each edge std
 * by its input's std + 0.1 (edge_forward_spline_n / _sum). Returns reg. */

static inline double clamp_min(double x, double floor) { return x < floor ? floor : x; } /* NaN stays NaN */

EXPORT double kan_reg_forward(int64_t L, const int64_t *ns, const int64_t *ms, const double *const *var,
                              const double *const *xstat, int64_t B, int64_t normed, double lamb,
                              double lamb_l1, double lamb_entropy, double *const *c, double *const *dvar2)
{
    const double scale = lamb / (double)(B - 1 > 1 ? B - 1 : 1);
    double total = 0.0;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t n = ns[l], m = ms[l];
        const double *vr = var[l], *xv = xstat[l] + n;
        double *cl = c[l], *dl = dvar2[l];
        double *buf = malloc((size_t)(5 * n * m + 4 * n + 2 * m) * sizeof(double));
        if (!buf) return NAN;
        double *e = buf, *v = e + n * m, *dv = v + n * m, *norm = dv + n * m, *std = norm + n, *work = std + n;
        for (int64_t i = 0; i < n; ++i) {
            std[i] = sqrt(clamp_min(xv[i], 1e-24));
            norm[i] = normed ? std[i] + 0.1 : 1.0;
        }
        for (int64_t q = 0; q < n * m; ++q) {
            e[q] = sqrt(clamp_min(vr[q], 1e-36));
            v[q] = normed ? e[q] / norm[q / m] : e[q];
        }
        total += matrix_reg(n, m, v, lamb_l1, lamb_entropy, dv, work);
        for (int64_t i = 0; i < n; ++i) {
            double d_std = 0.0;
            for (int64_t j = 0; j < m; ++j) {
                const int64_t q = i * m + j;
                d_std -= dv[q] * v[q];
                const double d_edge = normed ? dv[q] / norm[i] : dv[q];
                cl[q] = vr[q] >= 1e-36 ? d_edge * (scale / e[q]) : 0.0;
            }
            dl[i] = normed && xv[i] >= 1e-24 ? d_std / norm[i] * (scale / std[i]) : 0.0;
        }
        free(buf);
    }
    return total;
}

/* An MLP's reg_metric 'w': the penalty of every layer's |W| (out_l, in_l), and dW_l += lamb d/dW of it
 * (sign(0) = 0, as autograd's |w|). Returns the penalty (without lamb). In float64 whatever T: 1 call
 * instead of ~50 torch ops (mlp_objective.BlockReg): 16.5 against 173 us on the reference MLP's
 * weights (bench/fit_parts.py). */
#define DEFINE_MLP_REG(T, SUF)                                                                        \
EXPORT double mlp_reg_##SUF(int64_t L, const int64_t *rows, const int64_t *cols, const T *const *W,   \
                            double lamb, double lamb_l1, double lamb_entropy, T *const *dW)           \
{                                                                                                     \
    double total = 0.0;                                                                               \
    for (int64_t l = 0; l < L; ++l) {                                                                 \
        const int64_t n = rows[l], m = cols[l];                                                       \
        const T *w = W[l];                                                                            \
        T *g = dW[l];                                                                                 \
        double *buf = malloc((size_t)(4 * n * m + 2 * (n + m)) * sizeof(double));                     \
        if (!buf) return NAN;                                                                         \
        double *v = buf, *dv = v + n * m, *work = dv + n * m;                                         \
        for (int64_t q = 0; q < n * m; ++q) v[q] = fabs((double)w[q]);                                \
        total += matrix_reg(n, m, v, lamb_l1, lamb_entropy, dv, work);                                \
        for (int64_t q = 0; q < n * m; ++q) {                                                         \
            const double sign = w[q] > 0 ? 1.0 : (w[q] < 0 ? -1.0 : 0.0);                             \
            g[q] += (T)(lamb * dv[q] * sign);                                                         \
        }                                                                                             \
        free(buf);                                                                                    \
    }                                                                                                 \
    return total;                                                                                     \
}

DEFINE_MLP_REG(float, f32)
DEFINE_MLP_REG(double, f64)
