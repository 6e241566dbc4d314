"""offset_internal_movers: arrivals taken from origin units, persons conserved per sex × age."""
import numpy as np
import pytest

from forecast.errors import ForecastError
from forecast.migration import offset_internal_movers


def test_offsets_conserve_and_come_from_origins_only():
    rng = np.random.default_rng(1)
    pop = rng.uniform(0, 100, (4, 2, 5))
    movers = np.zeros((3, 4, 2, 5))
    movers[:, 0] = 10.0  # unit 0 receives 10 per sex × age per step
    net = offset_internal_movers(movers, pop, np.array([False, False, True, True]))
    assert np.allclose(net.sum(axis=1), 0)  # conserved for every step, sex and age
    assert np.allclose(net[:, 0], 10) and np.allclose(net[:, 1], 0)
    # origins give in proportion to their persons of that sex × age
    share2 = pop[2] / (pop[2] + pop[3])
    assert np.allclose(net[:, 2], -10 * share2)


def test_offsets_reject_no_origin():
    with pytest.raises(ForecastError, match="origin"):
        offset_internal_movers(np.zeros((1, 2, 2, 3)), np.ones((2, 2, 3)), np.array([False, False]))
