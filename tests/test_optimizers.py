"""The fused Adam/AdamW must train exactly like Keras' own (the reference implementation)."""

import keras
import numpy as np
import pytest

from effunet.training import optimizers


def _train(optimizer, steps=5):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=steps, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize(
    "fused, reference",
    [
        (lambda: optimizers.Adam(learning_rate=0.01), lambda: keras.optimizers.Adam(learning_rate=0.01)),
        (
            lambda: optimizers.AdamW(learning_rate=0.01, weight_decay=0.1),
            lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.1),
        ),
    ],
)
def test_fused_update_matches_keras(fused, reference):
    ours, theirs = _train(fused()), _train(reference())
    assert int(ours.optimizer.iterations) == int(theirs.optimizer.iterations) == 20
    for a, b in zip(
        ours.get_weights() + [v.numpy() for v in ours.optimizer.variables],
        theirs.get_weights() + [v.numpy() for v in theirs.optimizer.variables],
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float rounding only
    moved = [np.abs(w0 - w1).max() for w0, w1 in zip(ours.get_weights(), _train(fused(), steps=1).get_weights())]
    assert max(moved) > 1e-3  # it does train


def test_a_saved_fused_optimizer_resumes(tmp_path):
    model = _train(optimizers.Adam(learning_rate=0.01), steps=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=True)
    assert type(loaded.optimizer) is optimizers.Adam
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
