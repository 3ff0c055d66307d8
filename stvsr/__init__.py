"""stvsr: space-time video super-resolution, from official checkpoints to TensorRT engines."""
__version__ = "0.1.0"
