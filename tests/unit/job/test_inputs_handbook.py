"""The handbook replay's customer subset: a neighbourhood of the map keeps the merchant windows'
traffic, where a random draw of the same size leaves each merchant a fraction of it."""

from __future__ import annotations

import numpy as np
from streamsense_local.job.inputs import neighbourhood_order, terminal_coverage

# (customer, terminal) per payment: customers 1-3 around terminals 10/11, 4-5 around 20/21,
# customer 6 between the two groups (terminals 11 and 20).
PAYMENTS = [(1, 10), (1, 10), (2, 10), (2, 11), (3, 11), (3, 11), (3, 11), (4, 20), (4, 21), (5, 21), (5, 21), (6, 11), (6, 20)]


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    c, t = zip(*PAYMENTS, strict=True)
    return np.array(c), np.array(t)


def test_neighbourhood_grows_by_the_share_of_payments_at_reached_terminals() -> None:
    c, t = _arrays()
    # seed: fewest distinct terminals, lowest id (1); then 2 (1 of 2 payments at t10), 3 (3 of 3
    # at t11, reached through 2), 6 (1 of 2 at t11), 4 (1 of 2 at t20, reached through 6), 5
    assert neighbourhood_order(c, t, 6).tolist() == [1, 2, 3, 6, 4, 5]
    assert neighbourhood_order(c, t, 3).tolist() == [1, 2, 3]  # a shorter order is a prefix
    assert neighbourhood_order(c, t, 99).tolist() == [1, 2, 3, 6, 4, 5]
    # the arrival order of the payments does not matter
    perm = np.random.default_rng(0).permutation(len(c))
    assert neighbourhood_order(c[perm], t[perm], 6).tolist() == [1, 2, 3, 6, 4, 5]


def test_terminal_coverage() -> None:
    c, t = _arrays()
    kept = np.isin(c, [1, 2, 3])
    # terminals 10 and 11: 8 payments, 7 of them by customers 1-3 (one by customer 6)
    assert terminal_coverage(t, kept) == 7 / 8
    assert terminal_coverage(t, np.zeros(len(t), dtype=bool)) == 0.0


def test_a_neighbourhood_covers_its_terminals_where_a_random_draw_does_not() -> None:
    # customers and terminals on a 40 x 40 map, each customer paying at the terminals within 4
    rng = np.random.default_rng(1)
    homes, shops = rng.uniform(0, 40, (400, 2)), rng.uniform(0, 40, (800, 2))
    near = np.linalg.norm(homes[:, None] - shops[None], axis=2) < 4
    cust, term = np.nonzero(near)
    order = neighbourhood_order(cust, term, 40)
    hood = terminal_coverage(term, np.isin(cust, order))
    draw = terminal_coverage(term, np.isin(cust, rng.choice(400, 40, replace=False)))
    assert len(set(order.tolist())) == 40
    assert draw < 0.2 and hood > 0.6
