"""What the OpenAI-compatible engine and the rubric judge share: the `openai` client (safe URLs: `harness.util.secrets`).

The API key is read from the environment variable the config names (`<option>.api_key_env`)
at the moment the client is built; it is never stored in a config, a record or a log. Local
OpenAI-compatible servers (vLLM, llama.cpp) usually take any key, so with a `base_url` and
no key set a placeholder is sent; without a `base_url` (the OpenAI API) a missing key is an
error naming the variable.
"""

from __future__ import annotations

import os
from typing import Any

from harness.errors import HarnessError
from harness.util import secrets


def openai_client(*, option: str, who: str, api_key_env: str, base_url: str | None, max_retries: int,
                  timeout: float) -> Any:
    """An `openai.OpenAI` client with the library's own retries and timeout.

    `option` is the config prefix the messages name (`engine`, `judge`); `who` says what needs
    the package ("engine=openai", "the rubric judge")."""
    try:
        from openai import OpenAI
    except ImportError:
        raise HarnessError(f"{who} needs the `openai` package: pip install openai") from None
    key = os.environ.get(api_key_env)
    secrets.register(key)
    secrets.public_url(base_url)  # registers a user:password in the URL
    if not key:
        if not base_url:
            raise HarnessError(
                f"{option}.api_key_env={api_key_env!r}: that environment variable is not set; export it, or point "
                f"{option}.base_url at a server that needs no key (e.g. http://127.0.0.1:8000/v1 for vllm serve)")
        key = "not-needed"  # local OpenAI-compatible servers (vLLM, llama.cpp) often take any key
    return OpenAI(api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout)

