"""The performer's terminal: the dashboard (reads the engine's snapshot) and the keyboard as a controller."""

from livegen.ui.dashboard import Dashboard, ThumbnailCache, render_dashboard
from livegen.ui.keys import KEY_HELP, KEYMAP, KeyReader, NotATerminalError

__all__ = ["Dashboard", "KEY_HELP", "KEYMAP", "KeyReader", "NotATerminalError", "ThumbnailCache", "render_dashboard"]
