
import numpy as np
import pytest
import torch

from livegen.audio import CodecError, MelCodec, MelConfig
from livegen.audio.bands import mel_filterbank
from livegen.audio.griffinlim import GriffinLim, spectral_convergence
from tests.synth import drum_pattern

CONFIGS = [MelConfig(), MelConfig(x_res=256, y_res=128), MelConfig(x_res=64, y_res=32, n_fft=512, hop_length=256)]


def _signal(seconds, sample_rate=22050):
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8))
    return (drum_pattern(124, seconds, sample_rate) + chord + rng.normal(0, 0.003, len(t))).astype(np.float32)


@pytest.mark.parametrize("config", CONFIGS, ids=["256x256", "128x256", "32x64"])
def test_images_equal_audio_diffusion_mel(config):
    diffusers = pytest.importorskip("diffusers")
    audio = _signal(13.0, config.sample_rate)
    ours = MelCodec(config).audio_to_images(audio)
    reference = diffusers.Mel(**{k: getattr(config, k) for k in
                                 ("x_res", "y_res", "sample_rate", "n_fft", "hop_length", "top_db", "n_iter")})
    reference.load_audio(raw_audio=audio)
    theirs = np.stack([np.asarray(reference.audio_slice_to_image(i)) for i in range(reference.get_number_of_slices())])
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    assert ours.shape[1:] == (config.y_res, config.x_res)
    np.testing.assert_array_equal(ours, theirs)


def test_short_audio_is_padded_to_one_slice():
    config = CONFIGS[2]
    images = MelCodec(config).audio_to_images(_signal(0.2))
    assert images.shape == (1, config.y_res, config.x_res)


def test_stereo_is_mixed_to_mono_and_ints_are_refused():
    config = CONFIGS[2]
    mono = _signal(1.0)
    codec = MelCodec(config)
    np.testing.assert_array_equal(codec.audio_to_images(np.stack([mono, mono], axis=1)), codec.audio_to_images(mono))
    with pytest.raises(CodecError, match="floating-point"):
        codec.audio_to_images((mono * 1000).astype(np.int16))


def test_config_round_trip_and_diffusers_reads_it(tmp_path):
    config = MelConfig(x_res=128, y_res=64, hop_length=256)
    config.save(tmp_path)
    assert MelConfig.load(tmp_path) == config
    diffusers = pytest.importorskip("diffusers")
    assert diffusers.Mel.from_pretrained(tmp_path).config.hop_length == 256


def test_bad_config_names_the_file(tmp_path):
    (tmp_path / "mel_config.json").write_text('{"x_res": 256, "y_res": -4}')
    with pytest.raises(CodecError, match=r"mel_config\.json.*y_res"):
        MelConfig.load(tmp_path)
    (tmp_path / "mel_config.json").write_text("{not json")
    with pytest.raises(CodecError, match=r"mel_config\.json: not valid JSON"):
        MelConfig.load(tmp_path)


@pytest.mark.parametrize("config", CONFIGS, ids=["256", "128", "32"])
def test_filterbank_equals_librosa(config):
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(config.sample_rate, config.n_fft, config.y_res)
    theirs = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.y_res)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)


def test_griffin_lim_converges_like_librosa():
    """Same spectral convergence as librosa's mel_to_audio (within 5%), on a drum-and-chord slice.

    Both start from random phase, so each is averaged over three starts.
    """
    librosa = pytest.importorskip("librosa")
    config = CONFIGS[1]
    codec = MelCodec(config)
    image = codec.audio_to_images(_signal(6.0))[0]
    power = codec.image_to_mel_power(image).numpy()
    ours, theirs = [], []
    for seed in range(3):
        clip = codec.images_to_audio(image, seed=seed)
        ours.append(spectral_convergence(clip, power, config))
        np.random.seed(seed)  # librosa draws its starting phase from the global generator
        reference = librosa.feature.inverse.mel_to_audio(power, sr=config.sample_rate, n_fft=config.n_fft,
                                                         hop_length=config.hop_length, n_iter=config.n_iter)
        theirs.append(spectral_convergence(reference, power, config))
    assert np.mean(ours) < 0.5  # far below noise's ~1
    assert np.mean(ours) <= np.mean(theirs) * 1.05
    assert len(clip) == (config.x_res - 1) * config.hop_length
    assert np.isfinite(clip).all() and abs(np.abs(clip).max() - 0.9) < 1e-5


def test_batch_inverts_like_one_by_one():
    config = CONFIGS[2]
    codec = MelCodec(config)
    images = codec.audio_to_images(_signal(3.0))
    assert len(images) >= 3
    batch = codec.images_to_audio(images, seed=7)
    for image, clip in zip(images, batch):
        np.testing.assert_allclose(codec.images_to_audio(image, seed=7), clip, atol=1e-4)


def test_more_iterations_converge_further():
    config = CONFIGS[2]
    codec = MelCodec(config)
    image = codec.audio_to_images(_signal(1.0))[0]
    power = codec.image_to_mel_power(image).numpy()
    few = spectral_convergence(codec.images_to_audio(image, n_iter=2), power, config)
    many = spectral_convergence(codec.images_to_audio(image, n_iter=64), power, config)
    assert many < few


def test_inverter_is_cached_per_config_and_device():
    config = CONFIGS[2]
    assert GriffinLim.for_config(config) is GriffinLim.for_config(config, device=torch.device("cpu"))


SEMITONE = MelConfig(y_res=64, frequency_scale="semitone")  # the "lite-keys" codec


def _tone(notes, seconds=3.0, sample_rate=22050):
    """Organ-like notes (MIDI numbers): each a fundamental and two partials."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return sum(0.1 / k * np.sin(2 * np.pi * k * 440.0 * 2 ** ((n - 69) / 12) * t)
               for n in notes for k in (1, 2, 3)).astype(np.float32)


def test_semitone_rows_are_bins_below_the_chords_then_tempered_pitches():
    from livegen.audio.bands import SEMITONE_TOP, band_edges

    edges = band_edges("semitone", 22050, 2048, 64)
    assert len(edges) == 66 and np.all(np.diff(edges) > 0) and edges[-1] == 11025
    bin_hz = 22050 / 2048
    low = edges[edges < 180]
    np.testing.assert_allclose(np.diff(low), bin_hz)  # kick and bass: the STFT's own bins
    pitched = edges[(edges > 190) & (edges <= SEMITONE_TOP)]
    midi = 69 + 12 * np.log2(pitched / 440.0)
    np.testing.assert_allclose(midi, np.round(midi), atol=1e-9)  # on the notes, a semitone apart
    np.testing.assert_allclose(np.diff(np.round(midi)), 1)


def test_a_semitone_image_tells_neighbouring_notes_apart_where_a_mel_image_cannot():
    semitone, mel = MelCodec(SEMITONE), MelCodec(MelConfig(y_res=64))

    def loudest_row(codec, note):
        return int(codec.audio_to_images(_tone([note]))[0][:, 20:-20].mean(axis=1).argmax())

    octave = range(57, 69)  # A3 .. G#4, where the demo corpus's chords sit
    rows = [loudest_row(semitone, note) for note in octave]
    np.testing.assert_array_equal(np.diff(rows), 1)  # each note a row up from the last
    assert len({loudest_row(mel, note) for note in octave}) <= 5  # 64 mel rows are ~60 Hz wide here


def test_semitone_codec_round_trip_and_config(tmp_path):
    codec = MelCodec(SEMITONE)
    audio = _signal(6.5) + _tone([57, 60, 64], 6.5)
    image = codec.audio_to_images(audio)[0]
    assert image.shape == (64, 256) and image.dtype == np.uint8
    clip = codec.images_to_audio(image)
    assert spectral_convergence(clip, codec.image_to_mel_power(image).numpy(), SEMITONE) < 0.5
    assert GriffinLim.for_config(SEMITONE) is not GriffinLim.for_config(MelConfig(y_res=64))
    SEMITONE.save(tmp_path / "semitone")
    assert MelConfig.load(tmp_path / "semitone") == SEMITONE
    MelConfig(y_res=64).save(tmp_path / "mel")  # a mel config stays in teticio's layout
    assert "frequency_scale" not in (tmp_path / "mel" / "mel_config.json").read_text()
    (tmp_path / "mel_config.json").write_text('{"y_res": 64, "frequency_scale": "bark"}')
    with pytest.raises(CodecError, match=r"mel_config\.json.*frequency_scale.*bark"):
        MelConfig.load(tmp_path)
