"""`scripts/bench`: throughput, time to first token and memory of our engine
against the serial baseline and the raw llama.cpp ceiling (issue #6)."""
