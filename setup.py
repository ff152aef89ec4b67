"""Build step for kanswap's compiled CPU kernels (everything else is in pyproject.toml).

Every ``kernels/*_cpu.c`` becomes one shared library ``kanswap.kernels._<stem>`` built by
``pip install`` (never at first use: a user does not wait for a compiler). The libraries take raw
pointers (no Python or torch headers) and are loaded with ctypes by ``kernels/cpu_library.py``.
Each extension is optional: without a C compiler the install still succeeds, and kanswap says so
once and runs its PyTorch path.
"""

from pathlib import Path

from setuptools import Extension, setup

# -O3 -fopenmp-simd: the kernels' "omp simd" loops vectorise (no OpenMP runtime is linked; the
# interval count of kernels/bspline_cpu.c, 4.3 -> 1.2 ms with the window vectors, see there).
# -std=c11 (ISO mode) keeps FMA contraction off, so the AVX-512 / AVX2 / baseline clones round
# alike. No -ffast-math: NaN rows must stay NaN and sums keep their order (fixed seeds give
# bitwise-identical fits). -fno-math-errno lets libm calls vectorise; -fno-semantic-interposition
# keeps calls inside the library direct.
COMPILE_ARGS = ["-O3", "-fopenmp-simd", "-std=c11", "-fno-math-errno", "-fno-semantic-interposition",
                "-fvisibility=hidden"]

HERE = Path(__file__).parent
extensions = [
    Extension(f"kanswap.kernels._{path.stem}", sources=[f"kernels/{path.name}"],
              extra_compile_args=COMPILE_ARGS, libraries=["m"], optional=True)
    for path in sorted((HERE / "kernels").glob("*_cpu.c"))
]

setup(ext_modules=extensions)
