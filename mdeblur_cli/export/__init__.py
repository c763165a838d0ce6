"""Export: ONNX and TorchScript networks, and BioImage Model Zoo packages."""
