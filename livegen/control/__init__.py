"""The control surface: actions, the keyboard, MIDI controllers and their mappings, clock sync, OSC."""

from .actions import ACTIONS, BUTTONS, KNOBS, ActionError, Controls
from .mapping import Binding, Mapping, MappingError, load_mapping, mapping_for_port, write_mapping

__all__ = ["ACTIONS", "BUTTONS", "KNOBS", "ActionError", "Controls", "Binding", "Mapping", "MappingError",
           "load_mapping", "mapping_for_port", "write_mapping"]
