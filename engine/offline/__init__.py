"""Work without the clock: offline continuation (`jamtui generate`), simulated duets and benchmarks."""
