"""Models named by Hugging Face Hub id ("org/name"): downloaded when the network allows it.

A spec that is an existing path is used as it is. Otherwise an "org/name" spec is fetched with
huggingface_hub (its cache, $HF_HOME, $HF_ENDPOINT and $HF_HUB_OFFLINE apply), weights and
tokenizer files only. Offline, only what the cache already holds is found; anything else is one
clear error, never a hang or a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

from charter.errors import CharterError

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "tokenizer*", "*.txt", "*.jinja"]


def is_hub_name(spec: str | Path) -> bool:
    text = str(spec)
    return bool(HUB_NAME.match(text)) and not Path(text).expanduser().exists()


def local_model(spec: str | Path) -> Path:
    """A local folder or file for `spec`: the path itself, or a Hub snapshot of an "org/name"."""
    if not is_hub_name(spec):
        return Path(spec).expanduser()
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(huggingface_hub.snapshot_download(str(spec), allow_patterns=MODEL_FILES))
    except LocalEntryNotFoundError as exc:
        raise CharterError(f"model '{spec}' is neither a local path nor in the Hugging Face cache, and "
                           f"downloads are off (HF_HUB_OFFLINE or --offline) or the Hub is unreachable "
                           f"({exc.__class__.__name__}); download it once with network, or pass a local "
                           f"folder") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CharterError(f"model '{spec}' could not be fetched from the Hugging Face Hub "
                           f"({str(exc).splitlines()[0][:200]}); check the name and your access") from exc


def push_folder(folder: Path, repo: str, private: bool = False, message: str = "Upload from charter") -> str:
    """Upload an exported model folder to the Hub repo `repo` (made if missing); returns its URL.

    Uses huggingface_hub's own client, so $HF_TOKEN and $HF_ENDPOINT apply (a private Hub, or a
    test server). Offline, or without access, it is one clear error; nothing is half-pushed, since
    the Hub applies a commit whole or not at all."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        raise CharterError(f"cannot push {folder} to '{repo}': downloads and uploads are off (HF_HUB_OFFLINE)")
    if not HUB_NAME.match(repo):
        raise CharterError(f"'{repo}' is not a Hub repo name; use OWNER/NAME")
    api = huggingface_hub.HfApi()
    try:
        url = api.create_repo(repo, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=message)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CharterError(f"pushing {folder} to the Hub repo '{repo}' failed "
                           f"({str(exc).splitlines()[0][:200]}); check the name, HF_TOKEN and your access") from exc
    return str(url)
