"""The HTTP reward server (`rewardlab serve`; needs the ``serve`` extra: FastAPI, uvicorn,
prometheus-client)."""

from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.openrlhf import QuerySplitter

__all__ = ["QuerySplitter", "ServeConfig", "create_app"]
