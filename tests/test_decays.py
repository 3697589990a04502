"""Decay shaping: the redrum's output rings no longer than the source's drums do, and is never raised."""

import numpy as np
import pytest

from redrum_kit.decays import shape_decays, shape_to_rhythms

SR = 22050
TIMES = [0.25, 0.75, 1.25, 1.75, 2.25]


def hits(times, decay_s, seed=0, seconds=3.0):
    """Noise bursts at `times` dying away with time constant `decay_s`."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), np.float32)
    n = int(1.0 * SR)
    env = np.exp(-np.arange(n) / (decay_s * SR))
    for t in times:
        i = int(t * SR)
        y[i:i + n] += (0.5 * rng.standard_normal(n) * env)[:len(y) - i]
    return y


def level_db(y, t0, t1):
    seg = y[int(t0 * SR):int(t1 * SR)]
    return 10 * np.log10(np.mean(seg ** 2) + 1e-12)


def windows_db(y, start, end):
    return np.mean([level_db(y, t + start, t + end) for t in TIMES])


def test_a_tail_the_source_does_not_have_is_lowered_and_the_hits_kept():
    source = hits([0.1, 0.6, 1.1, 1.6, 2.1, 2.6], 0.01, seed=1)        # short electronic hats
    output = hits(TIMES, 0.15, seed=2)                                 # the same hats ringing on
    onsets = [(t, "hat") for t in TIMES]
    shaped = shape_decays(output, source, output, SR, [(t, "hat") for t in (0.1, 0.6, 1.1, 1.6, 2.1, 2.6)],
                          onsets)
    assert len(shaped) == len(output) and shaped.dtype == np.float32
    assert windows_db(shaped, 0.15, 0.3) < windows_db(output, 0.15, 0.3) - 10      # the tail goes
    assert windows_db(shaped, 0.0, 0.005) > windows_db(output, 0.0, 0.005) - 2     # the attack stays


def test_a_source_that_rings_as_long_leaves_the_output_alone():
    source = hits([0.1, 1.1, 2.1], 0.2, seed=1)
    output = hits(TIMES, 0.15, seed=2)
    shaped = shape_decays(output, source, output, SR, [(t, "cymbal") for t in (0.1, 1.1, 2.1)],
                          [(t, "cymbal") for t in TIMES])
    assert windows_db(shaped, 0.15, 0.3) > windows_db(output, 0.15, 0.3) - 1.0


def test_nothing_is_raised_and_a_drum_the_source_lacks_is_untouched():
    source = hits([0.1, 0.6, 1.1], 0.01, seed=1)
    output = hits(TIMES, 0.15, seed=2)
    shaped = shape_decays(output, source, output, SR, [(t, "kick") for t in (0.1, 0.6, 1.1)],
                          [(t, "tom") for t in TIMES])
    assert np.allclose(shaped, output, atol=1e-4)
    quiet = shape_decays(output, source, output, SR, [(t, "kick") for t in (0.1, 0.6, 1.1)],
                         [(t, "kick") for t in TIMES])
    for t0 in np.arange(0, 2.9, 0.1):
        assert level_db(quiet, t0, t0 + 0.1) <= level_db(output, t0, t0 + 0.1) + 0.5


@pytest.mark.parametrize("onsets", [[], [(0.5, "snare")]])
def test_without_source_hits_or_target_onsets_the_output_is_kept(onsets):
    output = hits(TIMES, 0.15, seed=2)
    shaped = shape_decays(output, np.zeros(SR, np.float32), output, SR, [], onsets)
    assert np.allclose(shaped, output, atol=1e-4)


def test_signals_shorter_than_one_frame_keep_their_length():
    y = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert len(shape_decays(y, y[:50], y[:10], SR, [(0.0, "kick")], [(0.0, "kick")])) == 100


def test_an_interpolation_step_keeps_the_hits_of_both_rhythms_and_shortens_their_tails():
    """A step between two rhythms plays A's hits fading out and B's fading in: shaped after A's hits
    alone, B's would be cut to silence; after both, each keeps its attack and loses its long tail."""
    source = hits([0.1, 0.6, 1.1, 1.6, 2.1, 2.6], 0.01, seed=1)
    src_onsets = [(t, "hat") for t in (0.1, 0.6, 1.1, 1.6, 2.1, 2.6)]
    a_times, b_times = TIMES, [t + 0.25 for t in TIMES[:-1]]
    step = hits(a_times + b_times, 0.15, seed=2)
    rhythm_a = (hits(a_times, 0.15, seed=3), [(t, "hat") for t in a_times])
    rhythm_b = (hits(b_times, 0.15, seed=4), [(t, "hat") for t in b_times])
    alone = shape_to_rhythms(step, source, SR, src_onsets, [rhythm_a])
    both = shape_to_rhythms(step, source, SR, src_onsets, [rhythm_a, rhythm_b])
    assert np.allclose(alone, shape_decays(step, source, rhythm_a[0], SR, src_onsets, rhythm_a[1]))

    def attacks(y, times):
        return np.mean([level_db(y, t, t + 0.01) for t in times])

    b_alone = shape_decays(hits(b_times, 0.15, seed=2), source, rhythm_b[0], SR, src_onsets, rhythm_b[1])
    assert attacks(alone, b_times) < attacks(both, b_times) - 10                   # B's hits lost
    assert abs(attacks(both, b_times) - attacks(b_alone, b_times)) < 1            # kept as in B's rhythm
    assert abs(attacks(both, a_times) - attacks(alone, a_times)) < 1              # and A's as in A's
    assert np.mean([level_db(both, t + 0.12, t + 0.24) for t in a_times[:-1]]) < \
        np.mean([level_db(step, t + 0.12, t + 0.24) for t in a_times[:-1]]) - 6   # the tails still go
