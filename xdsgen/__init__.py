"""xdsgen: a compact, checked inventory becomes Envoy v3 file-based xDS."""

__version__ = "0.1.0"
