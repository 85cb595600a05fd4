"""A model's memory and the process's, in words: `model-compose models` and
the Web UI's model panel say them the same way (sizes by
`convert.preflight.human`, decimal units)."""

from __future__ import annotations

from convert.preflight import human


def kv_in_use(used: int, allocated: int) -> str:
    """ "1.2 MB of 94.4 MB": the KV cache the slots hold of what is allocated."""
    return f"{human(used)} of {human(allocated)}"


def describe_model_memory(
    weights: int, weights_on_device: int, kv_used: int, kv_cache: int, compute: int
) -> str:
    """ "weights 92.1 MB, KV 1.2 MB of 94.4 MB, compute 18.6 MB"."""
    on_device = f" (+ {human(weights_on_device)} on the GPU)" if weights_on_device else ""
    return (
        f"weights {human(weights)}{on_device}, KV {kv_in_use(kv_used, kv_cache)}, "
        f"compute {human(compute)}"
    )


def describe_process_memory(rss: int, rss_anon: int, rss_file: int) -> str:
    """ "RSS 310.2 MB (210.1 MB anonymous, 100.1 MB file-backed)"."""
    return f"RSS {human(rss)} ({human(rss_anon)} anonymous, {human(rss_file)} file-backed)"
