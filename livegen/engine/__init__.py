"""The live engine: worker process -> loop bank (shared memory) -> mixer (audio process) -> outputs."""

from .audio import RemoteMixer
from .buffers import LoopInfo
from .engine import Engine, EngineError
from .settings import EngineSettings
from .mixer import Launch, Mixer, MixerState, Ring, Voice, equal_power_fade
from .outputs import AudioFile, FileSink, OutputError, SoundCard, SoundCardOutput, output_devices
from .recorder import AudioFileWriter, Recorder
from .transport import QUANTISE_BARS, Transport

__all__ = ["Engine", "EngineError", "EngineSettings", "LoopInfo", "Launch", "Mixer", "MixerState", "RemoteMixer",
           "Ring", "Voice", "equal_power_fade", "AudioFile", "FileSink", "OutputError", "SoundCard",
           "SoundCardOutput", "output_devices", "AudioFileWriter", "Recorder", "QUANTISE_BARS", "Transport"]
