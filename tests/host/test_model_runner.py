"""A compiled model through the host driver: ModelRunner on golden: (the device
model behind the real register map) equals Bundle.run on the golden ISS."""

import numpy as np
import pytest

from presil.host.compiler.bundle import compile_model
from presil.host.runtime import ModelRunner
from presil.host.zoo import build
from presil.host.zoo.digits import digits_split


@pytest.fixture(scope="module")
def digits_bundle():
    x_train, _, x_test, _ = digits_split()
    return compile_model(build("digits_cnn"), x_train[:64]), x_test[:6]


def test_model_runner_equals_bundle_run(digits_bundle):
    bundle, xs = digits_bundle
    name = bundle.manifest["inputs"][0]["name"]
    with ModelRunner(bundle, "golden:") as mr:
        for x in xs:
            want = bundle.run({name: x[None]})
            got = mr.run({name: x[None]})
            assert want.keys() == got.keys()
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])
        futs = [mr.submit({name: x[None]}) for x in xs]
        for x, f in zip(xs, futs):
            want = bundle.run({name: x[None]})
            for k, v in f.result(timeout=60).items():
                np.testing.assert_array_equal(v, want[k])
