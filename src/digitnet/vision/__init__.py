"""Real images: decoding, MNIST-style preprocessing of photos and drawings, reading numbers, and
the photo renderer used by tests and benchmarks."""
