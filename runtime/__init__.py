"""model-compose on llama.cpp: run model-compose workflow files on GGUF models."""

__version__ = "0.1.0"
