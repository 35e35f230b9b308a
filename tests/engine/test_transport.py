import pytest

from livegen.engine import Transport


def test_bar_lines_at_128_bpm():
    transport = Transport(48000, 128.0)
    bar = 4 * 60 / 128 * 48000  # 90000 frames
    assert transport.frames_per_bar() == pytest.approx(bar)
    assert transport.next_boundary(1, "1") == 90000
    assert transport.next_boundary(90000, "1") == 90000  # on the line: that line
    assert transport.next_boundary(90001, "2") == 180000
    assert transport.next_boundary(90001, "4") == 360000
    assert transport.next_boundary(90001, "beat") == 90000 + 22500
    assert transport.next_boundary(12345, "off") == 12345
    position = transport.position(90000 + 22500 * 2 + 11250)
    assert (position.bar, position.beat) == (1, 2) and position.phase == pytest.approx(0.5)


def test_start_at_moves_the_downbeat():
    transport = Transport(48000, 120.0)
    transport.start_at(1000)
    assert transport.next_boundary(1001, "1") == 1000 + 96000
    assert transport.position(999).bar == -1


def test_tempo_change_keeps_the_beat_count_continuous():
    transport = Transport(48000, 120.0)
    transport.set_bpm(60.0, at_sample=96000)  # after one bar at 120
    assert transport.beat_at(96000) == pytest.approx(4.0)
    assert transport.bpm_at(95999) == 120.0 and transport.bpm_at(96000) == 60.0
    # The next bar line after the change is one 60 BPM bar (192000 frames) later.
    assert transport.next_boundary(96001, "1") == 96000 + 192000
    assert transport.sample_of_beat(2.0) == pytest.approx(48000)
    transport.advance(100000)
    assert transport.beat_at(96000 + 48000) == pytest.approx(5.0)


def test_a_later_change_replaced_by_an_earlier_one():
    transport = Transport(48000, 120.0)
    transport.set_bpm(100.0, at_sample=10**9)
    assert transport.bpm == 100.0  # the tempo after the scheduled change
    transport.set_bpm(140.0, at_sample=48000)
    assert transport.bpm_at(48000) == 140.0 and transport.bpm_at(10**9 + 1) == 140.0


@pytest.mark.parametrize("bad", [0.0, 1000.0])
def test_tempo_out_of_range(bad):
    with pytest.raises(ValueError, match="BPM"):
        Transport(48000, bad)
    with pytest.raises(ValueError, match="quantise"):
        Transport(48000, 120).next_boundary(0, "3")


def test_one_table_of_limits_holds_for_the_transport_and_the_command_line():
    import subprocess
    import sys

    from livegen.limits import TEMPO

    Transport(48000, TEMPO.low), Transport(48000, TEMPO.high)  # the ends are in range
    with pytest.raises(ValueError, match=f"outside {TEMPO.low:g} to {TEMPO.high:g} BPM"):
        Transport(48000, 120).set_bpm(TEMPO.high + 1, at_sample=0)
    result = subprocess.run([sys.executable, "-m", "livegen.cli", "play", "--bpm", str(TEMPO.high + 1)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"outside {TEMPO.low:g} to {TEMPO.high:g} BPM" in result.stderr
