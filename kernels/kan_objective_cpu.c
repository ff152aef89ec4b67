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
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define INLINE static inline __attribute__((always_inline))

/* x86-64 with gcc: an AVX2 (8 floats) and an AVX-512 clone of each hot function next to the
 * baseline one, picked at load time by the CPU (the build needs no -march flag). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

#define LANES 16 /* partial sums of a reduction over m: one AVX-512 vector of floats */
#define MAX_K 15 /* spline order bound of the local de Boor triangle (pykan uses k <= 5) */

/* ---------------------------------------------------------------------------------------------- */
/* basis windows                                                                                  */

#define DEFINE_BASIS(T, SUF)                                                                          \
EXPORT HOT void kan_basis_##SUF(int64_t B, int64_t n, int64_t P, int64_t k, const T *restrict x,      \
                                const T *restrict grid, const T *restrict inv, const T *restrict sig, \
                                int64_t base_kind, int32_t *restrict start, T *restrict val,          \
                                T *restrict dval, T *restrict base, T *restrict dbase)                \
{                                                                                                     \
    const int64_t K = P - 1 - k;                                                                      \
    for (int64_t b = 0; b < B; ++b) {                                                                 \
        for (int64_t i = 0; i < n; ++i) {                                                             \
            const int64_t bi = b * n + i;                                                             \
            const T xv = x[bi];                                                                       \
            const T *g = grid + i * P;                                                                \
            T *v = val + bi * (k + 1);                                                                \
            T *dv = dval ? dval + bi * (k + 1) : NULL;                                                \
            /* base branch: silu from the sigmoid computed outside (vectorised exp) */                \
            if (base_kind == 0) {                                                                     \
                const T s = sig[bi], a = xv * s;                                                      \
                base[bi] = a;                                                                         \
                if (dbase) dbase[bi] = s + a * ((T)1 - s);                                            \
            } else {                                                                                  \
                base[bi] = base_kind == 1 ? xv : (T)0;                                                \
                if (dbase) dbase[bi] = base_kind == 1 ? (T)1 : (T)0;                                  \
            }                                                                                         \
            for (int64_t t = 0; t <= k; ++t) {                                                        \
                v[t] = 0;                                                                             \
                if (dv) dv[t] = 0;                                                                    \
            }                                                                                         \
            /* interval: g[idx] <= x < g[idx + 1], none outside [g[0], g[P-1]) or for NaN */         \
            if (!(xv >= g[0]) || !(xv < g[P - 1])) {                                                  \
                start[bi] = 0;                                                                        \
                continue;                                                                             \
            }                                                                                         \
            int64_t lo = 0, hi = P - 1;                                                               \
            while (hi - lo > 1) {                                                                     \
                const int64_t mid = (lo + hi) >> 1;                                                   \
                if (xv >= g[mid]) lo = mid; else hi = mid;                                            \
            }                                                                                         \
            const int64_t idx = lo;                                                                   \
            /* local Cox-de Boor triangle: at order j, L[t] is B_{c,j} for c = idx - j + t; a c      \
               without a basis function of order j (c < 0 or c > P - 2 - j) holds 0 */                \
            T L[MAX_K + 2], w[MAX_K + 2];                                                             \
            L[0] = 1;                                                                                 \
            w[0] = 0;                                                                                 \
            for (int64_t j = 1; j <= k; ++j) {                                                        \
                const T *ij = inv + ((j - 1) * n + i) * (P - 1);                                      \
                /* w of order j - 1 entries: B_{c,j-1} / (g[c + j] - g[c]), c = idx - j + 1 + t */    \
                for (int64_t t = 0; t < j; ++t) {                                                     \
                    const int64_t c = idx - j + 1 + t;                                                \
                    w[t] = (c >= 0 && c <= P - 1 - j) ? L[t] * ij[c] : (T)0;                          \
                }                                                                                     \
                for (int64_t t = 0; t <= j; ++t) {                                                    \
                    const int64_t c = idx - j + t;                                                    \
                    if (c < 0 || c > P - 2 - j) { L[t] = 0; continue; }                               \
                    const T left = t > 0 ? w[t - 1] : (T)0, right = t < j ? w[t] : (T)0;              \
                    L[t] = (xv - g[c]) * left - (xv - g[c + j + 1]) * right;                          \
                }                                                                                     \
            }                                                                                         \
            const int64_t s0 = idx - k < 0 ? 0 : (idx - k > K - 1 - k ? K - 1 - k : idx - k);         \
            start[bi] = (int32_t)s0;                                                                  \
            for (int64_t t = 0; t <= k; ++t) {                                                        \
                const int64_t c = idx - k + t, s = c - s0;                                            \
                if (c < 0 || c > K - 1 || s < 0 || s > k) continue;                                   \
                v[s] = L[t];                                                                          \
                if (dv && k > 0) {                                                                    \
                    /* d/dx B_{c,k} = k (w_c - w_{c+1}), w of order k - 1 (w[t-1] is c) */            \
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
EXPORT HOT void kan_forward_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,             \
                                  const int32_t *restrict start, const T *restrict val,               \
                                  const T *restrict base, const T *restrict W, T *restrict y,         \
                                  double *restrict mean, double *restrict var,                        \
                                  double *restrict work, T *restrict phi)                             \
{                                                                                                     \
    /* mean, var (n, m) or NULL (no statistics); work (2, n, m): the shift and the first sum */       \
    double *s2 = var;                                                                                 \
    double *shift = work, *s1 = mean ? work + n * m : NULL;                                           \
    if (k == 3)                                                                                       \
        forward_rows_##SUF(B, n, m, 3, K1, start, val, base, W, y, shift, s1, s2, phi);               \
    else                                                                                              \
        forward_rows_##SUF(B, n, m, k, K1, start, val, base, W, y, shift, s1, s2, phi);               \
    if (!mean) return;                                                                                \
    const double inv_b = 1.0 / (double)B, inv_b1 = 1.0 / (double)(B > 1 ? B - 1 : 1);                 \
    for (int64_t e = 0; e < n * m; ++e) {                                                             \
        const double a = s1[e];                                                                       \
        const double ss = s2[e] - a * a * inv_b;                                                      \
        mean[e] = shift[e] + a * inv_b;                                                               \
        var[e] = (ss > 0 ? ss : 0.0) * inv_b1;                                                        \
    }                                                                                                 \
}

DEFINE_FORWARD(float, f32)
DEFINE_FORWARD(double, f64)

/* ---------------------------------------------------------------------------------------------- */
/* backward: dW (n, K+1, m) and, if asked, gx (B, n), from gz (B, m) = d objective / d y and the     */
/* regularisation's per-edge coefficient c (n, m): d objective / d phi_bij = gz_bj + c_ij (phi_bij - */
/* mean_ij) (c = 0: no regularisation through this layer's edge stds, then mean is unused)         */

#define DEFINE_BACKWARD(T, SUF)                                                                       \
INLINE T dot_##SUF(int64_t m, const T *restrict a, const T *restrict b)                               \
{                                                                                                     \
    T acc[LANES] = {0};                                                                               \
    int64_t j = 0;                                                                                    \
    for (; j + LANES <= m; j += LANES)                                                                \
        for (int64_t l = 0; l < LANES; ++l) acc[l] += a[j + l] * b[j + l];                            \
    T s = 0;                                                                                          \
    for (int64_t l = 0; l < LANES; ++l) s += acc[l];                                                  \
    for (; j < m; ++j) s += a[j] * b[j];                                                              \
    return s;                                                                                         \
}                                                                                                     \
                                                                                                      \
INLINE void backward_rows_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,               \
                                const int32_t *restrict start, const T *restrict val,                 \
                                const T *restrict dval, const T *restrict base,                       \
                                const T *restrict dbase, const T *restrict W, const T *restrict gz,   \
                                const T *restrict c, const T *restrict mean, T *restrict dW,          \
                                T *restrict gx, T *restrict phi, T *restrict dphi)                    \
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
                const T *restrict ci = c + i * m, *restrict mi = mean + i * m;                        \
                for (int64_t j = 0; j < m; ++j) dphi[j] = gb[j] + ci[j] * (phi[j] - mi[j]);           \
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
            const T *dv = dval + bi * (k + 1);                                                        \
            T s = dbase[bi] * dot_##SUF(m, d, w0);                                                    \
            for (int64_t t = 0; t <= k; ++t) s += dv[t] * dot_##SUF(m, d, ws + t * m);                \
            gx[bi] = s;                                                                               \
        }                                                                                             \
    }                                                                                                 \
}                                                                                                     \
                                                                                                      \
EXPORT HOT void kan_backward_##SUF(int64_t B, int64_t n, int64_t m, int64_t k, int64_t K1,            \
                                   const int32_t *restrict start, const T *restrict val,              \
                                   const T *restrict dval, const T *restrict base,                    \
                                   const T *restrict dbase, const T *restrict W,                      \
                                   const T *restrict gz, const T *restrict c,                         \
                                   const T *restrict mean, T *restrict dW, T *restrict gx,            \
                                   T *restrict phi, T *restrict dphi)                                 \
{                                                                                                     \
    /* dW is overwritten; phi, dphi: (m,) scratch */                                                  \
    memset(dW, 0, (size_t)(n * K1 * m) * sizeof(T));                                                 \
    if (k == 3)                                                                                       \
        backward_rows_##SUF(B, n, m, 3, K1, start, val, dval, base, dbase, W, gz, c, mean, dW, gx,    \
                            phi, dphi);                                                               \
    else                                                                                              \
        backward_rows_##SUF(B, n, m, k, K1, start, val, dval, base, dbase, W, gz, c, mean, dW, gx,    \
                            phi, dphi);                                                               \
}

DEFINE_BACKWARD(float, f32)
DEFINE_BACKWARD(double, f64)
