"""The integration's settings, read once from the environment, and the
objects built from them (one per process)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Mapping, Optional

from .assertion import KeySet, Settings, Verifier
from .sync import Syncer

DEFAULT_SYNC_PATH = "/_auth/upstream-sync"


@dataclass
class State:
    settings: Settings
    verifier: Verifier
    syncer: Syncer
    sync_path: str


def build(env: Mapping[str, str]) -> State:
    """``ValueError`` naming the variable when a setting is wrong."""
    settings = Settings.from_env(env)
    org: Optional[int] = None
    raw = env.get("AUTHGATE_LS_ORGANIZATION", "").strip()
    if raw:
        if not raw.isdigit():
            raise ValueError(f"AUTHGATE_LS_ORGANIZATION must be an organization id (a number), got {raw!r}")
        org = int(raw)
    sync_path = env.get("AUTHGATE_SYNC_PATH", "").strip() or DEFAULT_SYNC_PATH
    if not sync_path.startswith("/"):
        raise ValueError(f"AUTHGATE_SYNC_PATH must be a path starting with '/', got {sync_path!r}")
    return State(settings=settings, verifier=Verifier(KeySet(settings)), syncer=Syncer(org), sync_path=sync_path)


_state: Optional[State] = None
_lock = threading.Lock()


def state() -> State:
    global _state
    with _lock:
        if _state is None:
            _state = build(os.environ)
        return _state
