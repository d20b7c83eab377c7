"""Using a trained model: the predictor, its runtimes (PyTorch, ONNX), export, and image files."""
