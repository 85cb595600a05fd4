"""Model references → GGUF files on this machine."""
