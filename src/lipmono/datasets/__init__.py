"""Data sets: loaders for real tabular benchmarks, the bundled demo data and simulators.

Nothing here downloads: loaders read files shipped with the package or found in a
data folder the caller names.
"""

__all__: list[str] = []
