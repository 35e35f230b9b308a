"""Controllers through real JACK MIDI ports, driving a real engine (shipped model, file sink)."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from livegen.control import Controls, load_mapping
from livegen.control.clock import TICKS_PER_BEAT, bar_phase_error, sample_heard_at
from livegen.control.midi import MidiControl
from livegen.engine import AudioFile, Engine, EngineSettings
from livegen.presets import PRESETS_DIR
from tests.waiting import wait_for

SHIPPED = sorted(p.stem for p in (PRESETS_DIR / "controllers").glob("*.toml"))
SENDER = "livegen-test-sender"


@pytest.fixture(scope="module")
def jack_midi(jack_server):
    """This process talks to the test JACK server (libjack reads these when a client opens)."""
    saved = {k: os.environ.get(k) for k in jack_server.env}
    os.environ.update({k: jack_server.env[k] for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")})
    yield jack_server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def sender(jack_midi):
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, SENDER)
    out.open_virtual_port("out")
    yield out
    out.close_port()
    out.delete()  # a JACK client left in the graph would slow every later cycle


@pytest.fixture(scope="module")
def engine(jack_midi, tmp_path_factory):
    folder = tmp_path_factory.mktemp("set")
    engine = Engine(EngineSettings(genres=["techno", "house"], bpm=120.0, depth=2, seed=5, quantise="off",
                                   gain=0.5, blocksize=256), AudioFile(folder / "set.wav", blocksize=256))
    engine.start()
    engine.wait_until_playing(timeout=240)
    yield engine
    engine.stop()
    engine.close()


def press(sender, binding):
    """What the controller sends for a press of ``binding``'s pad or button."""
    channel = (binding.channel or 1) - 1
    if binding.note is not None:
        sender.send_message([0x90 | channel, binding.note, 127])
        sender.send_message([0x80 | channel, binding.note, 0])
    else:
        sender.send_message([0xB0 | channel, binding.cc, 127])
        sender.send_message([0xB0 | channel, binding.cc, 0])


def first(mapping, action, value="any"):
    for binding in mapping.bindings:
        if binding.action == action and (value == "any" or binding.value == value):
            return binding
    return None


@pytest.mark.parametrize("name", SHIPPED)
def test_each_mapping_triggers_swaps_genre_and_changes_steps(name, engine, sender, tmp_path):
    mapping = load_mapping(name)
    control = MidiControl(Controls(engine), mapping, port=SENDER, api="jack").start()
    try:
        # Genre swap: a select button for genre 1, else its trigger pad.
        swap = first(mapping, "select_genre", 1) or first(mapping, "trigger", 1)
        back = first(mapping, "select_genre", 0) or first(mapping, "trigger", 0)
        press(sender, swap)
        wait_for(lambda: engine.snapshot()["genre"] == "house", 10, f"{name}: genre swap to house")
        press(sender, back)
        wait_for(lambda: engine.snapshot()["genre"] == "techno", 10, f"{name}: genre swap back to techno")

        # Steps: a knob (absolute) or the up button.
        knob = first(mapping, "steps")
        if knob is not None:
            sender.send_message([0xB0 | ((knob.channel or 1) - 1), knob.cc, 38])
            expected = 1 + round(38 / 127 * 49)
        else:
            expected = engine.effective("steps") + 1
            press(sender, first(mapping, "steps_up"))
        wait_for(lambda: engine.snapshot()["steps"] == expected, 10, f"{name}: steps {expected}")

        # The set's key, where the controller has its buttons: up and down a semitone, the lock.
        if first(mapping, "key_up") is not None:
            engine.choose_key("8A")
            wait_for(lambda: engine.snapshot()["key"]["key"] == "8A", 10, "the set key 8A")
            press(sender, first(mapping, "key_up"))
            wait_for(lambda: engine.snapshot()["key"]["key"] == "3A", 10, f"{name}: key up to 3A")
            press(sender, first(mapping, "key_down"))
            wait_for(lambda: engine.snapshot()["key"]["key"] == "8A", 10, f"{name}: key down to 8A")
            press(sender, first(mapping, "key_mode"))
            wait_for(lambda: engine.snapshot()["key"]["mode"] == "shift", 10, f"{name}: key mode to shift")
            press(sender, first(mapping, "key_lock"))
            wait_for(lambda: engine.snapshot()["key"]["mode"] == "off", 10, f"{name}: key lock off")

        # Trigger: the next loop launches (quantise is off in this set).
        wait_for(lambda: engine.snapshot()["buffer"]["techno"] >= 1, 60, "a techno loop ready")
        recording = engine.start_recording(tmp_path / "take.wav")
        launches = engine.mixer.launch_count
        playing = engine.snapshot()["playing"]["id"]
        press(sender, first(mapping, "trigger", None) or first(mapping, "trigger", 0))
        wait_for(lambda: engine.mixer.launch_count > launches and engine.snapshot()["playing"]["id"] != playing,
                 10, f"{name}: trigger")
        info = engine.playing
        audio = np.array(engine.bank.view(info.slot, info.frames))
        launch = [e for e in engine.events if e["event"] == "launch" and e["loop"] == info.loop_id][-1]
        time.sleep(0.5)
        start = engine.recorder.start_sample
        engine.stop_recording()
    finally:
        control.stop()
    # The trigger is in the audio: from its launch sample on, the take is the new loop from its top.
    take, _ = soundfile.read(recording, dtype="float32")
    at = launch["sample"] - start
    np.testing.assert_allclose(take[at:at + 4800, 0], audio[:4800] * 0.5, atol=2e-4)


def test_midi_learn_round_trip(engine, sender, tmp_path):
    path = tmp_path / "learned.toml"
    control = MidiControl(Controls(engine), load_mapping("generic"), port=SENDER, api="jack").start()
    try:
        control.learn("trigger", 1, save_to=path)  # the next control moved launches genre 1
        sender.send_message([0xB0, 102, 127])
        wait_for(path.exists, 10, "the learned mapping to be written")
    finally:
        control.stop()
    learned = load_mapping(path)
    assert learned.find("cc", 102, 1).action == "trigger"
    control = MidiControl(Controls(engine), learned, port=SENDER, api="jack").start()
    try:
        engine.select_genre("techno")
        wait_for(lambda: engine.snapshot()["buffer"]["house"] >= 1, 60, "a house loop ready")
        launches = engine.mixer.launch_count
        sender.send_message([0xB0, 102, 0])
        sender.send_message([0xB0, 102, 127])
        wait_for(lambda: engine.snapshot()["genre"] == "house" and engine.mixer.launch_count > launches, 10,
                 "the learned control to launch house")
        wait_for(lambda: engine.snapshot()["playing"]["genre"] == "house", 5, "house playing")
    finally:
        control.stop()
        engine.select_genre("techno")


def test_keyboard_learn_binds_the_next_keys_action_to_the_next_control_moved(engine, sender, tmp_path):
    from livegen.control.keyboard import KeyboardControl

    path = tmp_path / "learned.toml"
    controls = Controls(engine)
    control = MidiControl(controls, load_mapping("generic"), port=SENDER, api="jack").start()
    keyboard = KeyboardControl(controls, control, learn_to=path)
    try:
        assert keyboard.press("l") and keyboard.learning
        assert keyboard.press(".") and not keyboard.learning  # volume up: learned, not done
        sender.send_message([0xB0, 103, 127])
        wait_for(path.exists, 10, "the learned mapping to be written")
        gain = engine.snapshot()["gain"]
        assert keyboard.press(".")  # now it is done, through the action table
        wait_for(lambda: abs(engine.snapshot()["gain"] - min(gain + 0.05, 2.0)) < 1e-6, 5, "volume up by a step")
        assert not keyboard.press("Q")  # ends the set
    finally:
        control.stop()
        engine.set_gain(0.5)
    binding = load_mapping(path).find("cc", 103, 1)
    assert (binding.action, binding.value) == ("volume_step", 0.05)
    without_file = KeyboardControl(controls, control, learn_to=None)
    without_file.press("l")
    assert not without_file.learning and "--learn FILE" in controls.log[-1]


def test_a_flood_of_messages_is_coalesced_and_the_set_plays_on(engine, sender):
    controls = Controls(engine)
    control = MidiControl(controls, load_mapping("generic"), port=SENDER, api="jack").start()
    volume = first(control.mapping, "volume")
    try:
        clock = engine.mixer.clock
        for i in range(3000):  # 3000 a second, as a fast-turned encoder bank might send
            sender.send_message([0xB0 | ((volume.channel or 1) - 1), volume.cc, i % 128])
            if i % 30 == 29:
                time.sleep(0.01)
        sender.send_message([0xB0 | ((volume.channel or 1) - 1), volume.cc, 100])
        wait_for(lambda: control.received >= 3001, 10, "all 3001 messages")
        wait_for(lambda: abs(engine.mixer.gain - 100 / 127) < 1e-6, 5, "the last volume to win")
        # a knob's messages that arrive together are one action (the last value): the engine is not
        # asked 3001 times (101 here: one a burst)
        assert 0 < controls.performed["volume"] <= 3001 // 5, controls.performed
        assert engine.mixer.clock > clock  # still playing
    finally:
        control.stop()
        engine.set_gain(0.5)


def test_unplugged_controller_reconnects(engine, jack_midi):
    import rtmidi

    def plug():
        port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "livegen-test-pluggable")
        port.open_virtual_port("out")
        return port

    device = plug()
    control = MidiControl(Controls(engine), load_mapping("generic"), port="livegen-test-pluggable",
                          api="jack").start()
    try:
        device.close_port()
        device.delete()
        wait_for(lambda: not control.connected, 5, "the unplug to be seen")
        device = plug()
        wait_for(lambda: control.connected, 5, "the controller to reconnect")
        assert control.reconnects == 1
        engine.set_quantise("off")
        device.send_message([0x90, 36 + 8, 127])  # any pad: proves messages flow again
        wait_for(lambda: control.received >= 1, 5, "a message after reconnecting")
    finally:
        control.stop()
        device.close_port()
        device.delete()


def test_midi_clock_locks_tempo_and_keeps_bar_phase(engine, sender):
    control = MidiControl(Controls(engine), load_mapping("generic"), port=SENDER, api="jack",
                          follow_clock=True).start()
    bpm = 126.0
    period = 60.0 / (bpm * TICKS_PER_BEAT)
    bar_seconds = 4 * 60.0 / bpm
    sent: list[tuple[float, int]] = []

    def play_clock(bars: float):
        sender.send_message([0xFA])  # start
        begin = time.perf_counter()
        for tick in range(int(bars * 4 * TICKS_PER_BEAT)):
            due = begin + tick * period
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.002))
            sender.send_message([0xF8])
            sent.append((time.perf_counter(), tick))

    try:
        assert abs(engine.snapshot()["bpm"] - bpm) > 3
        thread = threading.Thread(target=play_clock, args=(4,))
        started = time.perf_counter()
        thread.start()
        wait_for(lambda: abs(engine.snapshot()["bpm"] - bpm) <= 0.5, 2 * bar_seconds, "tempo lock within two bars")
        locked_after = time.perf_counter() - started
        thread.join()
        assert engine.snapshot()["sync"]["source"] == "midi"
        sender.send_message([0xFC])  # stop
        time.sleep(0.7)
        sent.clear()
        thread = threading.Thread(target=play_clock, args=(2,))
        thread.start()
        thread.join()
        time.sleep(0.2)
        # After stop and start, the bar lines sit where the clock's are (checked over the last bar, on the
        # line through the send times: the sender's own jitter is not the engine's error).
        ticks = np.array([tick for _, tick in sent])
        times = np.polyval(np.polyfit(ticks, [t for t, _ in sent], 1), ticks)
        errors = [bar_phase_error(tick / TICKS_PER_BEAT, engine.transport.beat_at(sample_heard_at(engine, t)), 4)
                  for t, tick in zip(times, ticks) if tick >= 4 * TICKS_PER_BEAT]
        assert max(abs(e) for e in errors) < 0.1, (locked_after, max(errors), min(errors),
                                                   [e for e in engine.events if e["event"] == "sync"][-3:])
    finally:
        control.stop()


def test_osc_drives_the_same_actions(engine):
    from pythonosc.udp_client import SimpleUDPClient

    from livegen.control.osc import OscServer

    server = OscServer(Controls(engine), port=0).start()
    try:
        client = SimpleUDPClient(*server.address)
        client.send_message("/livegen/volume", 0.25)
        client.send_message("/livegen/quantise", "beat")
        client.send_message("/livegen/select_genre", 1)
        wait_for(lambda: abs(engine.mixer.gain - 0.25) < 1e-6 and engine.quantise == "beat"
                 and engine.snapshot()["genre"] == "house", 5, "the OSC actions")
        assert server.address[0] == "127.0.0.1"
    finally:
        server.stop()
        engine.set_gain(0.5)
        engine.set_quantise("off")
        engine.select_genre("techno")


@pytest.mark.parametrize("width,height", [(40, 12), (80, 24), (160, 50)])
def test_dashboard_renders_the_real_engine_state(engine, width, height):
    from rich.console import Console

    from livegen.ui.dashboard import loop_thumbnail, render_dashboard

    state = engine.snapshot()
    info = engine.playing
    thumbnail = loop_thumbnail(engine.bank.view(info.slot, info.frames), engine.settings.sample_rate)
    console = Console(record=True, width=width, height=height, force_terminal=True)
    console.print(render_dashboard(state, thumbnail, log=["note 36 trigger"], height=height))
    text = console.export_text()
    assert len(text.splitlines()) <= height
    assert f"{state['bpm']:.1f}" in text  # the master tempo
    assert state["playing"]["genre"] in text
    if width >= 80:
        assert "house" in text and str(state["playing"]["seed"]) in text and "underflows" in text


def test_link_joins_a_session_without_changing_its_tempo(engine):
    import asyncio

    import aalink

    from livegen.control.clock import LinkSync

    result = {}

    def other_app(stop):
        async def run():
            peer = aalink.Link(100.0)  # a session already playing at 100 BPM
            peer.quantum = 4
            peer.enabled = True
            while not stop.is_set():
                await asyncio.sleep(0.05)
                result["tempo"], result["peers"] = peer.tempo, peer.num_peers
            peer.enabled = False
        asyncio.run(run())

    stop = threading.Event()
    thread = threading.Thread(target=other_app, args=(stop,))
    thread.start()
    wait_for(lambda: "tempo" in result, 5, "the other app's Link session")
    time.sleep(1.5)  # it has been playing a while when we join
    sync = LinkSync(engine).start()
    try:
        wait_for(lambda: result.get("peers", 0) > 0, 10, "Link peers to find each other")
        try:
            wait_for(lambda: abs(engine.snapshot()["bpm"] - 100.0) < 0.5, 20, "the set to take the session tempo")
        finally:
            assert result["tempo"] == pytest.approx(100.0)  # we joined; the session kept its tempo
        assert engine.snapshot()["sync"]["source"] == "link"
    finally:
        sync.stop()
        stop.set()
        thread.join()


RECEIVER = """
import sys, time, rtmidi
receiver = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, sys.argv[1])
receiver.ignore_types(sysex=False, timing=False, active_sense=True)
receiver.set_callback(lambda event, data=None: print(time.perf_counter(), *event[0], flush=True))
receiver.open_virtual_port("in")
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin; the client goes with the process
"""


def open_receiver(name):
    """A JACK MIDI input standing in for a controller's LEDs or a drum machine following our clock;
    returns its process and the (perf_counter time, message) pairs it received (a system-wide clock).

    It runs in a process of its own: closing an rtmidi JACK input races JACK's process thread, which
    may still read the port being unregistered, and that aborted a whole clean-clone CI run here once."""
    process = subprocess.Popen([sys.executable, "-c", RECEIVER, name], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    got, ready = [], threading.Event()

    def read():
        for line in process.stdout:
            if line.strip() == "ready":
                ready.set()
                continue
            at, *message = line.split()
            got.append((float(at), [int(byte) for byte in message]))

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(30), f"the receiver {name} did not open its port"
    return process, got


def close_receiver(process) -> None:
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_leds_show_genres_and_toggles(engine, sender):
    receiver, got = open_receiver("livegen-test-leds")
    mapping = load_mapping("akai-apc-mini")
    control = MidiControl(Controls(engine), mapping, port=SENDER, api="jack", led_port="livegen-test-leds").start()
    try:
        engine.select_genre("techno")
        genre_pads = [b for b in mapping.bindings if b.led == "genre" and b.note is not None]
        wait_for(lambda: len(got) >= len(genre_pads), 5, "the LED states to be sent")
        lit = {message[1]: message[2] for _, message in got if message[0] & 0xF0 == 0x90}
        techno = [b.note for b in genre_pads if b.value in (0, "techno")]
        house = [b.note for b in genre_pads if b.value in (1, "house")]
        assert all(lit[n] == mapping.leds["selected"] for n in techno)
        assert all(lit[n] in (mapping.leds["ready"], mapping.leds["empty"]) for n in house)
        record = next(b for b in mapping.bindings if b.led == "record")
        assert lit[record.note] == mapping.leds["off"]
        got.clear()
        engine.select_genre("house")  # the pads follow the selection
        wait_for(lambda: any(m[1] in house and m[2] == mapping.leds["selected"] for _, m in got), 5,
                 "house pads lit as selected")
    finally:
        control.stop()
        close_receiver(receiver)
        engine.select_genre("techno")


def test_clock_out_ticks_at_the_set_tempo(engine):
    import mido

    from livegen.control.clock import MidiClockSender
    from livegen.control.midi import midi_backend

    receiver, got = open_receiver("livegen-test-drum-machine")
    port = midi_backend("jack").open_output("livegen-test-drum-machine:in")
    # JACK connects the ports a little after they open: what is sent before that is lost (seen in
    # CI: the start message). A note goes through first, then the clock starts.
    wait_for(lambda: port.send(mido.Message("note_off", note=0)) or got, 5, "the port to connect")
    sender = MidiClockSender(engine, port.send).start()
    try:
        time.sleep(3.0)
    finally:
        sender.stop()
        port.close()
        close_receiver(receiver)
    kinds = [message[0] for _, message in got if message[0] in (0xFA, 0xF8, 0xFC)]  # not the notes above
    assert kinds[0] == 0xFA and kinds[-1] == 0xFC  # start ... stop
    ticks = [t for t, message in got if message[0] == 0xF8]
    # 24 ticks to each beat the transport moved on (whatever tempo the set is at).
    beats = (engine.transport.beat_at(sample_heard_at(engine, ticks[-1]))
             - engine.transport.beat_at(sample_heard_at(engine, ticks[0])))
    assert len(ticks) - 1 == pytest.approx(TICKS_PER_BEAT * beats, rel=0.02)


class WatchedEngine(Engine):
    """The real engine, noting which thread sets each of its attributes while ``watch`` is a list."""

    watch = None

    def __setattr__(self, name, value):
        if self.watch is not None:
            self.watch.append((name, threading.current_thread().name))
        object.__setattr__(self, name, value)


def test_only_the_control_thread_writes_engine_state_while_everything_drives_it(jack_midi, sender, tmp_path):
    """MIDI knobs and pads, MIDI clock, a Link session, keys and OSC at once: every change to the
    engine's state is made by its control thread (the others queue commands)."""
    from pythonosc.udp_client import SimpleUDPClient

    from livegen.control.clock import LinkSync
    from livegen.control.keyboard import KeyboardControl
    from livegen.control.osc import OscServer

    engine = WatchedEngine(EngineSettings(genres=["techno-fast", "house-fast"], bpm=120.0, depth=1, seed=8),
                           AudioFile(tmp_path / "set.wav", blocksize=256))
    engine.start()
    try:
        engine.wait_until_playing(timeout=240)
        writes: list[tuple[str, str]] = []
        object.__setattr__(engine, "watch", writes)
        controls = Controls(engine)
        midi = MidiControl(controls, load_mapping("generic"), port=SENDER, api="jack", follow_clock=True).start()
        link = LinkSync(engine).start()
        osc = OscServer(controls, port=0).start()
        keyboard = KeyboardControl(controls, midi)
        try:
            volume, steps = first(midi.mapping, "volume"), first(midi.mapping, "steps_up")
            client = SimpleUDPClient(*osc.address)
            sender.send_message([0xFA])  # clock start
            period = 60.0 / (124.0 * TICKS_PER_BEAT)
            for tick in range(2 * 4 * TICKS_PER_BEAT):  # two bars of clock at 124 BPM, everything else between
                sender.send_message([0xF8])
                if tick % 8 == 0:
                    sender.send_message([0xB0 | ((volume.channel or 1) - 1), volume.cc, tick % 128])
                    client.send_message("/livegen/filter", (tick % 96) / 96)
                    keyboard.press("[" if tick % 16 else "]")
                if tick % 48 == 0:
                    press(sender, steps)
                    client.send_message("/livegen/quantise", "beat")
                    keyboard.press("b")
                time.sleep(period)
            wait_for(lambda: engine.snapshot()["sync"]["source"] in ("midi", "link"), 5, "a sync source")
            time.sleep(0.5)  # the last commands land
        finally:
            object.__setattr__(engine, "watch", None)
            for part in (osc, link, midi):
                part.stop()
        by_thread = {thread for _, thread in writes}
        assert by_thread == {"livegen-control"}, sorted({(n, t) for n, t in writes if t != "livegen-control"})
        assert {"sync_source", "filter", "quantise"} <= {name for name, _ in writes}  # it did the work
        assert engine.snapshot()["controller"] == load_mapping("generic").name
    finally:
        engine.stop()
        engine.close()
