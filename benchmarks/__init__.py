"""specread's benchmarks: scripts that measure the figures in docs/benchmarks.md.

A package so that the scripts share public helpers (:mod:`benchmarks.common`) and tests import
them as ``benchmarks.<name>`` without touching ``sys.path``. Run one from the repository root:
``python -m benchmarks.real_dev --cv 5``.
"""
