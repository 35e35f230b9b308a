import subprocess
import sys
import wave

import numpy as np
import soundfile

SCRIPT = """
import os, signal, sys
import numpy as np
from livegen.engine import AudioFileWriter
writer = AudioFileWriter(sys.argv[1], 48000, channels=2)
for i in range(10):  # 2.5 s in quarter-second blocks, as the recorder's thread writes them
    writer.write(np.full((12000, 2), 0.25, np.float32))
os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, no final header
"""


def test_a_killed_recording_is_readable_short_of_at_most_a_second(tmp_path):
    path = tmp_path / "take.wav"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True)
    assert result.returncode == -9
    with wave.open(str(path)) as take:  # a plain reader trusts the header: it must be right
        frames = take.getnframes()
    assert 1.5 * 48000 <= frames <= 2.5 * 48000
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 48000 and len(audio) >= frames
    assert np.allclose(audio[:frames], 0.25, atol=1e-6)
