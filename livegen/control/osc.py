"""OSC: the same actions over UDP (python-osc), on 127.0.0.1 unless told otherwise.

    /livegen/trigger            /livegen/trigger 2         (genre index or name)
    /livegen/volume 0.7         (a float 0..1 for knob actions: their position)
    /livegen/quantise "beat"    (any other argument: the action's value)
"""

from __future__ import annotations

import threading

from .actions import ACTIONS, BUTTONS, KNOBS, Controls

PREFIX = "/livegen/"


class OscServer:
    def __init__(self, controls: Controls, host: str = "127.0.0.1", port: int = 9000):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.controls = controls
        dispatcher = Dispatcher()
        dispatcher.map(PREFIX + "*", self._handle)
        dispatcher.set_default_handler(self._unknown)
        self.server = ThreadingOSCUDPServer((host, port), dispatcher)
        self.address = self.server.server_address
        self._thread = threading.Thread(target=self.server.serve_forever, name="livegen-osc", daemon=True)

    def start(self) -> "OscServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, address: str, *args) -> None:
        action = address[len(PREFIX):]
        if action not in ACTIONS:
            self._unknown(address, *args)
            return
        argument = args[0] if args else None
        if action in KNOBS and isinstance(argument, float) and (action not in BUTTONS or 0.0 <= argument <= 1.0):
            self.controls.perform(action, amount=argument, source="osc")
        else:
            self.controls.perform(action, argument, source="osc")

    def _unknown(self, address: str, *args) -> None:
        self.controls.log.append(f"osc: unknown address {address} (use {PREFIX}<action>: "
                                 f"{', '.join(sorted(ACTIONS))})")
