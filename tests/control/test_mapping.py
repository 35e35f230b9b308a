import pytest

from livegen.control import MappingError, load_mapping, write_mapping
from livegen.control.mapping import Binding, mapping_for_port, parse_mapping
from livegen.presets import PRESETS_DIR

SHIPPED = sorted(p.stem for p in (PRESETS_DIR / "controllers").glob("*.toml"))


def test_at_least_three_controllers_and_a_generic_mapping_ship():
    assert "generic" in SHIPPED and len(SHIPPED) >= 4


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_mapping_loads_with_trigger_genre_and_steps(name):
    mapping = load_mapping(name)
    actions = {b.action for b in mapping.bindings}
    assert "trigger" in actions
    assert actions & {"select_genre", "trigger"}
    assert actions & {"steps", "steps_up"}
    assert mapping.source


def test_port_names_pick_their_mapping():
    assert mapping_for_port("APC MINI:APC MINI MIDI 1 20:0").name == "Akai APC mini"
    assert mapping_for_port("nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0").name == "Korg nanoKONTROL2"
    assert mapping_for_port("Some Synth").name == "Generic MIDI controller"


@pytest.mark.parametrize("text,line,key", [
    ('name = "x"\nports = []\n[[control]]\naction = "trigger"\nnote = 36\n\n[[control]]\naction = "jump"\nnote = 37\n',
     8, "action"),
    ('name = "x"\nports = []\n[[control]]\naction = "volume"\ncc = 300\n', 5, "cc"),
    ('name = "x"\nports = []\n[[control]]\naction = "volume"\nnote = 3\n', 4, "action"),
    ('name = "x"\nports = []\n[[control]]\naction = "trigger"\nnote = 36\ncolour = 3\n', 6, "colour"),
    ('name = "x"\nports = []\n[[control]]\naction = "trigger"\nnote = 36\n[[control]]\naction = "tap"\nnote = 36\n',
     8, "note"),
])
def test_a_malformed_mapping_names_file_line_and_key(tmp_path, text, line, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert str(path) in message and f"line {line}" in message and f"'{key}'" in message


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x\n')
    with pytest.raises(MappingError, match="broken.toml"):
        load_mapping(path)


def test_written_mapping_loads_back_the_same(tmp_path):
    mapping = load_mapping("korg-nanokontrol2")
    mapping.bind(Binding(action="morph", cc=70, channel=2, value=0.25))
    path = write_mapping(mapping, tmp_path / "learned.toml")
    again = load_mapping(path)
    assert again.bindings == mapping.bindings and again.leds == mapping.leds and again.name == mapping.name
    assert parse_mapping(path.read_text(), path).find("cc", 70, 2).action == "morph"
