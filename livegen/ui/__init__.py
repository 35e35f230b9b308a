"""The performer's terminal: the dashboard (reads the engine's snapshot) and the keys typed into it."""

from livegen.ui.dashboard import Dashboard, ThumbnailCache, render_dashboard
from livegen.ui.keys import KeyReader, NotATerminalError

__all__ = ["Dashboard", "KeyReader", "NotATerminalError", "ThumbnailCache", "render_dashboard"]
