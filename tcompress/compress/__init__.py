"""Shared compression mechanisms: what two or more methods (``tcompress.methods``) are built from.

One module per mechanism: linear quantization (``linear_quant``, ``quantized``), quantization-aware
wrapping (``qat``), magnitude pruning (``pruning``), codebooks (``codebook``), integer inference,
bit packing, the ratio formulas and the artifact with its stored forms; ``walker`` selects a layer
group's modules and swaps them. A method imports the mechanism it uses and calls it; what serves
one method alone lives in that method's package. Nothing here imports a method, the plan or the
runner (tests/test_layers.py).
"""

# Read by tcompress.closure: the one loader (tcompress.loader) imports every module of this package,
# because a stored form registers itself when its module is imported.
LOADS_ALL_SUBMODULES = True

# Linear quantization's modes and widths (``linear_quant``), here because this package imports no
# torch: params.yaml's values are checked against them by the resolve stage, which runs without it.
MODES = ("sym", "asym")
MIN_BITS, MAX_BITS = 2, 16
