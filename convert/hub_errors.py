"""huggingface_hub's exceptions, turned into messages a user can act on.

huggingface_hub's own messages carry request ids and URLs; ours say which model
was asked for and what to do next. Every call into huggingface_hub from
convert/ runs under `hub_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_token

from runtime.errors import ModelLoadError, ModelUnavailableError

# The user's way out when the Hub cannot help, appended to several messages.
LOCAL_FILE_HINT = "or point 'model:' at a local .gguf file"


class HubUnreachableError(ModelUnavailableError):
    """The Hub could not be reached (no network, a wrong HF_ENDPOINT, offline
    mode); resolution falls back to the cache when it sees this. `situation`
    says why, without the file that was being fetched."""

    def __init__(self, situation: str, what: str) -> None:
        self.situation = situation
        super().__init__(f"{situation}; cannot fetch {what}")


def gated_message(repository: str) -> str:
    page = f"https://huggingface.co/{repository}"
    if get_token() is None:
        return f"{repository} is gated: accept its license on {page} and set HF_TOKEN"
    return (
        f"{repository} is gated and your Hugging Face token has no access to it: "
        f"accept its license on {page} with the account the token belongs to"
    )


def unreachable_message(error: BaseException) -> str:
    return f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({type(error).__name__})"


@contextmanager
def hub_errors(
    repository: str, filename: str | None = None, revision: str | None = None
) -> Iterator[None]:
    """Re-raise huggingface_hub's errors about `repository` (and `filename`) as
    ModelUnavailableError (the user can fix it) or ModelLoadError (the Hub failed)."""
    what = f"{repository}/{filename}" if filename else repository
    try:
        yield
    except GatedRepoError as error:
        raise ModelUnavailableError(gated_message(repository)) from error
    except RepositoryNotFoundError as error:
        raise ModelUnavailableError(
            f"{repository} is not on the Hugging Face Hub, or is private "
            "(then set HF_TOKEN to a token that can read it)"
        ) from error
    except RevisionNotFoundError as error:
        raise ModelUnavailableError(f"{repository} has no revision {revision!r}") from error
    except RemoteEntryNotFoundError as error:
        raise ModelUnavailableError(f"{repository} has no file {filename}") from error
    except OfflineModeIsEnabled as error:
        raise HubUnreachableError("HF_HUB_OFFLINE=1 is set", what) from error
    except (httpx2.TransportError, TimeoutError, ConnectionError) as error:
        raise HubUnreachableError(unreachable_message(error), what) from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        detail = f": {error.server_message}" if error.server_message else ""
        message = f"the Hugging Face Hub answered {status} for {what}{detail}"
        raise ModelLoadError(message) from error
