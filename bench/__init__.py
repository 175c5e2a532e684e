"""Side-by-side benchmark of evalkit, lm-eval and a bare transformers loop (see docs/benchmarks.md)."""
