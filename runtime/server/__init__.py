"""HTTP: the model-compose API, the OpenAI-compatible API, SSE."""
