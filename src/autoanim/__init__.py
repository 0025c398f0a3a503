"""autoanim: uploaded videos become animated WebP/GIF clips (IMM in the cloud, PyAV offline)."""

__version__ = "0.1.0"
