"""CryptoRun performance benchmarks (a runnable script package, not part of the test suite).

Run ``python -m benchmarks.run [--quick]`` from the repository root; see ``benchmarks/README.md``.
"""
