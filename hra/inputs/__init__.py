"""Input readers, independent of the run configuration: each takes paths and arrays, validates
them and names file, row, column and fix on bad input.

- :mod:`hra.inputs.exposure`: building files (plain layout), validation, arrays for the kernels;
- :mod:`hra.inputs.edb`: the Groningen exposure database (EDB) layout and the V6 zonation;
- :mod:`hra.inputs.sites`: site-response zone polygons and the building -> zone assignment;
- :mod:`hra.inputs.source`: seismicity rate grids and the truncated Gutenberg-Richter magnitude model;
- :mod:`hra.inputs.modeldata`: the public Groningen model tables (location, SHA-256 registry, readers).
"""
