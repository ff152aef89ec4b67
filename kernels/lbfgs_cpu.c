/* The two-loop recursion of L-BFGS (kanswap/lbfgs.py): the search direction r = -H g from the stored
 * curvature pairs, in one call instead of ~40 torch ops and 20 host syncs on vectors of a few hundred
 * to a few thousand entries (10 pairs of 641 entries: 8.2 against 61 us, bench/fit_parts.py).
 *
 * Launcher: kernels/lbfgs_cpu.py. Oracle: LBFGS._direction's torch path.
 * s[i], y[i] (N,): the pairs, oldest first (s = x step, y = gradient change); rho[i] = 1 / (y_i . s_i).
 * The dot products accumulate in double in LANES partial sums (vectorised without reassociating flags:
 * the same bits every run); the updates run in T, the scalar cast to T first, as torch's add_(alpha=).
 */

#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))
#define LANES 8

#define DEFINE_DIRECTION(T, SUF)                                                                      \
static double dot_##SUF(int64_t N, const T *restrict a, const T *restrict b)                        \
{                                                                                                     \
    double acc[LANES] = {0};                                                                          \
    int64_t j = 0;                                                                                    \
    for (; j + LANES <= N; j += LANES)                                                                \
        for (int64_t l = 0; l < LANES; ++l) acc[l] += (double)a[j + l] * (double)b[j + l];            \
    double s = 0;                                                                                     \
    for (int64_t l = 0; l < LANES; ++l) s += acc[l];                                                  \
    for (; j < N; ++j) s += (double)a[j] * (double)b[j];                                              \
    return s;                                                                                         \
}                                                                                                     \
                                                                                                      \
/* r (N,) = -H g with H0 = h_diag I; alpha (h,) scratch; r must not alias g or the pairs */          \
EXPORT void lbfgs_direction_##SUF(int64_t N, int64_t h, const T *const *s, const T *const *y,        \
                                  const double *rho, double h_diag, const T *restrict g,             \
                                  T *restrict r, double *restrict alpha)                              \
{                                                                                                     \
    for (int64_t j = 0; j < N; ++j) r[j] = -g[j];                                                     \
    for (int64_t i = h - 1; i >= 0; --i) {                                                            \
        alpha[i] = dot_##SUF(N, s[i], r) * rho[i];                                                    \
        const T a = (T)(-alpha[i]);                                                                   \
        const T *restrict yi = y[i];                                                                  \
        for (int64_t j = 0; j < N; ++j) r[j] += a * yi[j];                                            \
    }                                                                                                 \
    const T d = (T)h_diag;                                                                            \
    for (int64_t j = 0; j < N; ++j) r[j] *= d;                                                        \
    for (int64_t i = 0; i < h; ++i) {                                                                 \
        const double beta = dot_##SUF(N, y[i], r) * rho[i];                                           \
        const T b = (T)(alpha[i] - beta);                                                             \
        const T *restrict si = s[i];                                                                  \
        for (int64_t j = 0; j < N; ++j) r[j] += b * si[j];                                            \
    }                                                                                                 \
}

DEFINE_DIRECTION(float, f32)
DEFINE_DIRECTION(double, f64)
