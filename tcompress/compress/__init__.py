"""Shared compression mechanisms: what two or more methods (``tcompress.methods``) are built from.

One module per mechanism: linear quantization (``linear_quant``, ``quantized``, ``calibration``),
post-training and quantization-aware wrapping (``ptq``, ``qat``), magnitude pruning (``pruning``),
codebooks and product quantization (``codebook``, ``product_quant``), FullyQT's activation
quantizers, node pruning, Quant-Noise, integer inference, bit packing and the artifact with its
stored forms; ``walker`` selects a layer group's modules and swaps them. A method imports the
mechanism it uses and calls it; nothing here imports a method, the plan or the runner
(tests/test_layers.py).
"""

# Read by tcompress.closure: the one artifact loader imports every module of this package, because
# a stored form registers itself when its module is imported.
LOADS_ALL_SUBMODULES = True
