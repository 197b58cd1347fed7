"""Tooling around the engine, not the engine: simulated staff (``tongban simulate``, the benchmarks) and
sample applications generated from a definition's form."""
