"""The live engine: worker process -> loop bank (shared memory) -> mixer (audio callback) -> outputs."""

from .engine import Engine, EngineError, EngineSettings, LoopInfo
from .mixer import Launch, Mixer, Ring, Voice, equal_power_fade
from .outputs import FileSink, OutputError, SoundCardOutput, output_devices
from .recorder import AudioFileWriter, Recorder
from .transport import QUANTISE_BARS, Transport

__all__ = ["Engine", "EngineError", "EngineSettings", "LoopInfo", "Launch", "Mixer", "Ring", "Voice",
           "equal_power_fade", "FileSink", "OutputError", "SoundCardOutput", "output_devices", "AudioFileWriter",
           "Recorder", "QUANTISE_BARS", "Transport"]
